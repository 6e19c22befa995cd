import Foundation

/// Which files an image may make the library open on its behalf: backing files, VMDK extents,
/// qcow2 external data files. An image from the network must not be able to read `/etc/shadow`
/// or a block device by naming it; the caller lists the folders it trusts.
public struct DiskAccessPolicy: Sendable {
    /// Folders (and everything below them) whose files an image may reference.
    public var allowedDirectories: [String]
    /// The longest backing chain accepted, counting the top image.
    public var maximumChainDepth: Int

    public init(allowedDirectories: [String], maximumChainDepth: Int = 16) {
        self.allowedDirectories = allowedDirectories.map(Self.canonical)
        self.maximumChainDepth = maximumChainDepth
    }

    /// No references at all: an image with a backing file or a separate extent fails to open.
    public static let standalone = DiskAccessPolicy(allowedDirectories: [])

    /// Only files in the same folder as the top image (the usual layout of a chain).
    public static func sameDirectory(as path: String) -> DiskAccessPolicy {
        DiskAccessPolicy(allowedDirectories: [(canonical(path) as NSString).deletingLastPathComponent])
    }

    /// Resolves `name` as `referencedBy` names it (relative to that file's folder), and checks
    /// it against the allowed folders after following symbolic links.
    func resolve(_ name: String, referencedBy: String, role: String) throws(VirtualDiskError) -> String {
        let base = (referencedBy as NSString).deletingLastPathComponent
        let joined = name.hasPrefix("/") ? name : (base as NSString).appendingPathComponent(name)
        let resolved = Self.canonical(joined)
        let allowed = allowedDirectories.contains { directory in
            resolved == directory || resolved.hasPrefix(directory.hasSuffix("/") ? directory : directory + "/")
        }
        guard allowed else {
            throw .accessDenied(path: resolved, referencedBy: referencedBy, role: role)
        }
        return resolved
    }

    static func canonical(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: absolute).standardizedFileURL.resolvingSymlinksInPath().path
    }
}
