/// What went wrong building the guest test kit; each message names the missing piece and what
/// to do.
public enum GuestKitError: Error, Sendable, Equatable, CustomStringConvertible {
    case toolMissing(tool: String, debianPackage: String)
    case packageNotFound(package: String)
    case downloadFailed(package: String, detail: String)
    case commandFailed(command: String, status: Int32, detail: String)
    case missingFromPackage(item: String, package: String)
    case fileSystem(path: String, reason: String)

    public var description: String {
        switch self {
        case .toolMissing(let tool, let package):
            "'\(tool)' is not installed; install it with 'apt-get install \(package)' (or run the README's set-up command)"
        case .packageNotFound(let package):
            "the Debian package '\(package)' is not in apt's package lists; run 'apt-get update' and try again"
        case .downloadFailed(let package, let detail):
            "could not download the Debian package '\(package)' (\(detail)); check the network access to Debian's mirrors and run 'apt-get update'"
        case .commandFailed(let command, let status, let detail):
            "'\(command)' failed with status \(status): \(detail)"
        case .missingFromPackage(let item, let package):
            "\(item) is missing from the package \(package); the guest kit expects Debian's cloud kernel layout"
        case .fileSystem(let path, let reason):
            "cannot write \(path): \(reason)"
        }
    }
}
