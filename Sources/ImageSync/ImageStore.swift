import Foundation

/// A version pulled onto this machine.
public struct InstalledVersion: Codable, Equatable, Sendable {
    public var name: String
    public var version: String
    public var index: Digest
    public var virtualSize: UInt64
    public var pulled: Date
}

/// The folder a client pulls into: `NAME/VERSION/system.img` beside its verified `index` and
/// `version.json`, written in `NAME/.VERSION.partial/` and renamed into place when whole. The
/// Engine's `images/` folder is such a store.
public struct ImageStore: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    public func directory(name: String, version: String) -> URL {
        root.appendingPathComponent(name).appendingPathComponent(version)
    }

    public func imagePath(name: String, version: String) -> URL {
        directory(name: name, version: version).appendingPathComponent("system.img")
    }

    func partialDirectory(name: String, version: String) -> URL {
        root.appendingPathComponent(name).appendingPathComponent(".\(version).partial")
    }

    func lockPath(name: String, version: String) -> String {
        root.appendingPathComponent(name).appendingPathComponent(".\(version).lock").path
    }

    /// Where the client keeps the metadata it trusts for the repository `anchor` names.
    public func trustDirectory(anchor: Data) -> URL {
        root.appendingPathComponent(".trust").appendingPathComponent(String(Digest.of(anchor).hex.prefix(16)))
    }

    func makeDirectories(name: String) throws(ImageSyncError) {
        for url in [root, root.appendingPathComponent(".trust"), root.appendingPathComponent(name)] {
            if mkdir(url.path, 0o755) != 0 && errno != EEXIST {
                throw .fromErrno(path: url.path, operation: "create")
            }
        }
    }

    /// Every complete version in the store.
    public func installed() -> [InstalledVersion] {
        let manager = FileManager.default
        var result: [InstalledVersion] = []
        guard let names = try? manager.contentsOfDirectory(atPath: root.path) else { return [] }
        for name in names.sorted() where !name.hasPrefix(".") {
            guard let versions = try? manager.contentsOfDirectory(atPath: root.appendingPathComponent(name).path) else { continue }
            for version in versions.sorted() where !version.hasPrefix(".") {
                let file = directory(name: name, version: version).appendingPathComponent("version.json")
                guard let data = manager.contents(atPath: file.path),
                      let info = try? Envelope.decoder().decode(InstalledVersion.self, from: data),
                      info.name == name, info.version == version else { continue }
                result.append(info)
            }
        }
        return result
    }

    /// An installed version's block index, checked against the digest recorded at pull time.
    func index(of installed: InstalledVersion) -> BlockIndex? {
        let file = directory(name: installed.name, version: installed.version).appendingPathComponent("index")
        guard let data = FileManager.default.contents(atPath: file.path), Digest.of(data) == installed.index else { return nil }
        return try? BlockIndex(decoding: Array(data))
    }
}
