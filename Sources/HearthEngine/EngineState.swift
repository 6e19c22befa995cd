import Foundation
import HearthCore

/// What the Engine must remember across a restart or a kill -9: each VM's phase, which image
/// version it booted, the one before (for a rollback), and the QEMU it runs in.
public struct EngineState: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

    public struct VMRecord: Codable, Sendable, Equatable {
        public var lifecycle = VMLifecycle()
        /// The image version the VM last booted successfully.
        public var bootedImage: ImageReference?
        /// The version before it, kept for a rollback.
        public var previousImage: ImageReference?
        /// Why the last image switch was rolled back, if it was.
        public var rollbackReason: String?
        /// The QEMU process while one runs.
        public var pid: Int32?
        /// The image that QEMU was started on, until its boot is confirmed (an Engine killed in
        /// between learns from it what its successor adopts).
        public var launchedImage: ImageReference?

        public init() {}
    }

    public var formatVersion = EngineState.currentFormatVersion
    public var vms: [String: VMRecord] = [:]
    /// Why IT locked this PC (a lock or a wipe command); no VM starts while it is set.
    public var lock: String?

    public init() {}
}

/// Reads and writes `EngineState` so that a kill -9 at any moment leaves a whole file: the new
/// state goes to a temporary file, is synced, and renamed over the old one.
public struct EngineStateStore: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The stored state; an empty one when there is none yet.
    public func load() throws -> EngineState {
        guard let data = FileManager.default.contents(atPath: path) else { return EngineState() }
        let state: EngineState
        do {
            state = try JSONDecoder().decode(EngineState.self, from: data)
        } catch {
            throw EngineError.unreadableState(path: path, reason: "\(error)")
        }
        guard state.formatVersion == EngineState.currentFormatVersion else {
            throw EngineError.unreadableState(path: path, reason: "format version \(state.formatVersion) is not known to this Hearth (expected \(EngineState.currentFormatVersion)); upgrade Hearth")
        }
        return state
    }

    public func save(_ state: EngineState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(try encoder.encode(state), to: path)
    }
}

/// Whole files or nothing: the new content goes to a temporary file beside the target, is
/// synced, and renamed over it; then the folder is synced. A kill -9 or a power cut leaves the
/// old file or the new one.
enum DurableFile {
    static func write(_ data: Data, to path: String, mode: mode_t = 0o600) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(directory)/.\((path as NSString).lastPathComponent)-\(UUID().uuidString.prefix(8))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw EngineError.io(path: temporary, reason: String(cString: strerror(errno))) }
        var written = 0
        while written < data.count {
            let n = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            written += n
        }
        let writeError = written == data.count ? 0 : errno
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(writeError != 0 ? writeError : errno))
            unlink(temporary)
            throw EngineError.io(path: path, reason: reason == "No space left on device" ? "the disk is full; free space and try again" : reason)
        }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }
}

/// What went wrong in the Engine.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadableState(path: String, reason: String)
    case io(path: String, reason: String)
    case invalidDefinition([String])
    case unknownVM(String)
    case imageMissing(ImageReference, path: String)
    case rejected(vm: String, reason: String)
    case notAllowed(vm: String, reason: String)
    case unreachable(path: String, reason: String)
    case security(String)

    public var description: String {
        switch self {
        case .unreadableState(let path, let reason):
            "the Engine's state file \(path) cannot be read: \(reason)"
        case .io(let path, let reason):
            "cannot write \(path): \(reason)"
        case .invalidDefinition(let problems):
            "the VM definitions are not valid: \(problems.joined(separator: "; "))"
        case .unknownVM(let name):
            "there is no VM named '\(name)'"
        case .imageMissing(let image, let path):
            "image \(image) is not on this machine (expected \(path)); pull it first"
        case .rejected(let vm, let reason):
            "\(vm): \(reason)"
        case .notAllowed(let vm, let reason):
            "\(vm): \(reason)"
        case .security(let reason):
            "security zone: \(reason)"
        case .unreachable(let path, let reason):
            "no Engine answers at \(path) (\(reason)); start it with 'hearth engine run', or name its socket with --control"
        }
    }
}
