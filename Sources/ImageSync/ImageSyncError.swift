import Foundation

/// Everything that can go wrong publishing or pulling an image, each with what to do about it.
public enum ImageSyncError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A name or version that cannot be used (it becomes a folder name on every laptop).
    case invalidName(String, reason: String)
    /// A file or folder could not be read or written.
    case io(path: String, operation: String, reason: String)
    /// No space left while writing; the pull can resume once space is freed.
    case diskFull(path: String, needed: UInt64?)
    /// Keys: missing, unreadable, too widely readable, or malformed.
    case keys(String)
    /// The repository is not there or not a Hearth repository.
    case repository(String)
    /// A version that is already published (versions are immutable).
    case alreadyPublished(name: String, version: String)
    /// The signed targets do not list this image or version.
    case unknownTarget(name: String, version: String?)
    /// Metadata failed a trust check: signatures, versions, expiry, hashes or lengths.
    case untrusted(role: String, reason: String)
    /// Downloaded data did not match the signed index.
    case corruptData(String)
    /// A server or file answered something other than what was asked for.
    case badResponse(url: String, reason: String)
    /// The server is so slow that the pull gave up (a slow-retrieval attack or a dying link).
    case tooSlow(url: String, bytesPerSecond: Double, minimum: Double)
    /// The connection failed or was cut; the pull resumes where it stopped.
    case transport(url: String, reason: String)
    /// Another pull or publish holds the lock.
    case busy(String)
    /// The disk image could not be read.
    case disk(String)
    /// A caller error.
    case invalidRequest(String)

    public var description: String {
        switch self {
        case let .invalidName(name, reason):
            return "'\(name)' cannot be used as an image name or version: \(reason)"
        case let .io(path, operation, reason):
            return "\(operation) \(path): \(reason)"
        case let .diskFull(path, needed):
            let amount = needed.map { " (\(ByteFormat.string($0)) still to write)" } ?? ""
            return "no space left on the device holding \(path)\(amount); free some space and run the pull again — it resumes where it stopped"
        case let .keys(message):
            return message
        case let .repository(message):
            return message
        case let .alreadyPublished(name, version):
            return "\(name) \(version) is already published and versions are immutable; publish under a new version"
        case let .unknownTarget(name, version):
            if let version { return "the repository's signed targets have no version \(version) of \(name)" }
            return "the repository's signed targets have no image named \(name)"
        case let .untrusted(role, reason):
            return "\(role) metadata rejected: \(reason)"
        case let .corruptData(message):
            return message
        case let .badResponse(url, reason):
            return "\(url): \(reason)"
        case let .tooSlow(url, rate, minimum):
            return String(format: "%@: the server sends %.0f bytes/s, below the minimum of %.0f bytes/s; gave up (run the pull again later, it resumes)", url, rate, minimum)
        case let .transport(url, reason):
            return "\(url): \(reason); run the pull again, it resumes where it stopped"
        case let .busy(message):
            return message
        case let .disk(message):
            return message
        case let .invalidRequest(message):
            return message
        }
    }

    static func fromErrno(path: String, operation: String, needed: UInt64? = nil) -> ImageSyncError {
        let code = errno
        if code == ENOSPC || code == EDQUOT {
            return .diskFull(path: path, needed: needed)
        }
        return .io(path: path, operation: operation, reason: String(cString: strerror(code)))
    }
}

/// Byte counts for people: 1.5 GiB, 640 KiB.
public enum ByteFormat {
    public static func string(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// Names and versions become folder names on every laptop and paths in every repository.
enum NameRules {
    static func check(_ value: String, what: String) throws(ImageSyncError) {
        guard !value.isEmpty, value.utf8.count <= 64 else {
            throw .invalidName(value, reason: "\(what) must be 1 to 64 characters")
        }
        guard value.utf8.first.map({ $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "-") }) ?? false else {
            throw .invalidName(value, reason: "\(what) must not start with '.' or '-'")
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                throw .invalidName(value, reason: "\(what) may hold only letters, digits, '.', '_' and '-'")
            }
        }
    }
}
