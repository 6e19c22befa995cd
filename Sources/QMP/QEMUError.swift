/// What went wrong starting, talking to or stopping a QEMU process. Each message names the
/// missing piece or the deadline and what to do about it.
public enum QEMUError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidConfiguration(field: String, reason: String)
    case executableNotFound(String)
    case launchFailed(executable: String, reason: String)
    /// QEMU ended before it was ready; `detail` is the end of its stderr.
    case exitedEarly(status: Int32, detail: String, stderrLog: String)
    case qmpSocketTimeout(path: String, seconds: Double, stderrLog: String)
    case consoleTimeout(expected: String, seconds: Double, consoleLog: String)
    /// An encrypted disk could not be opened or created; `reason` is QEMU's (it names no key).
    case encryptedDisk(id: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let field, let reason):
            "invalid VM configuration, \(field): \(reason)"
        case .executableNotFound(let name):
            "QEMU is not installed: '\(name)' was not found on PATH; install it with 'apt-get install qemu-system-x86' (or run the README's set-up command)"
        case .launchFailed(let executable, let reason):
            "could not start \(executable): \(reason)"
        case .exitedEarly(let status, let detail, let stderrLog):
            "QEMU exited with status \(status) before the VM was ready: \(detail.isEmpty ? "it printed nothing" : detail) (full log: \(stderrLog))"
        case .qmpSocketTimeout(let path, let seconds, let stderrLog):
            "QEMU's QMP socket \(path) did not accept a connection within \(seconds) s; the process was stopped (QEMU's log: \(stderrLog))"
        case .consoleTimeout(let expected, let seconds, let consoleLog):
            "the guest did not print '\(expected)' on its console within \(seconds) s; the VM was stopped (console log: \(consoleLog))"
        case .encryptedDisk(let id, let path, let reason):
            "the encrypted disk '\(id)' (\(path)) could not be opened: \(reason)"
        }
    }
}
