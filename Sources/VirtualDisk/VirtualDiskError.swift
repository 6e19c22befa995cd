/// What went wrong with a disk image: the file, the field or offset, and what to do.
public enum VirtualDiskError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The image is damaged or hostile: `field` at byte `offset` of `path` is wrong.
    case corrupt(path: String, field: String, offset: UInt64, reason: String)
    /// A valid image using a feature this library does not handle.
    case unsupported(path: String, feature: String)
    /// The bytes are not the named format.
    case notFormat(path: String, format: DiskFormat)
    /// The image names a file (backing file, extent, data file) the caller did not allow.
    case accessDenied(path: String, referencedBy: String, role: String)
    /// A backing chain that loops or is deeper than the limit.
    case backingChainTooDeep(path: String, limit: Int)
    /// The operating system refused: open, read, write, sync.
    case io(path: String, operation: String, reason: String)
    /// The caller asked for something the image cannot do.
    case invalidRequest(String)

    public var description: String {
        switch self {
        case .corrupt(let path, let field, let offset, let reason):
            "\(path) is corrupt: \(field) at byte \(offset): \(reason); the image cannot be used as it is (try 'hearth disk check', or restore it from a copy)"
        case .unsupported(let path, let feature):
            "\(path) uses \(feature), which Hearth does not support; convert it with qemu-img first"
        case .notFormat(let path, let format):
            "\(path) is not a \(format.rawValue) image; name the right format with --from, or leave it out to let Hearth detect it"
        case .accessDenied(let path, let referencedBy, let role):
            "\(referencedBy) names \(path) as its \(role), which is outside the folders allowed for this operation; allow its folder explicitly if you trust the image"
        case .backingChainTooDeep(let path, let limit):
            "the backing chain of \(path) is longer than \(limit) images or loops back on itself"
        case .io(let path, let operation, let reason):
            "cannot \(operation) \(path): \(reason)"
        case .invalidRequest(let message):
            message
        }
    }
}
