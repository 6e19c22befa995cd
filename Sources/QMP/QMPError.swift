/// What went wrong talking QMP.
public enum QMPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No connection could be made to the socket.
    case connectionFailed(path: String, reason: String)
    /// The peer did not greet as a QMP server does.
    case notQMP(path: String, detail: String)
    /// No reply within the deadline.
    case timeout(command: String, seconds: Double)
    /// QEMU answered with an error object.
    case commandFailed(command: String, errorClass: String, description: String)
    /// The connection closed while a command waited for its reply.
    case disconnected(command: String?)
    /// A message was not JSON, was too long, or a reply did not have the expected shape.
    case malformedMessage(detail: String)

    public var description: String {
        switch self {
        case .connectionFailed(let path, let reason):
            "cannot connect to the QMP socket \(path): \(reason)"
        case .notQMP(let path, let detail):
            "\(path) did not greet as a QMP server: \(detail)"
        case .timeout(let command, let seconds):
            "QEMU did not answer '\(command)' within \(seconds) s"
        case .commandFailed(let command, let errorClass, let description):
            "QEMU refused '\(command)': \(description) (\(errorClass))"
        case .disconnected(let command):
            if let command {
                "the QMP connection closed before QEMU answered '\(command)'"
            } else {
                "the QMP connection is closed"
            }
        case .malformedMessage(let detail):
            "QEMU sent a malformed QMP message: \(detail)"
        }
    }
}
