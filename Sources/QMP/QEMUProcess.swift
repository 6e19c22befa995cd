import Foundation
import Logging
import NIOConcurrencyHelpers

/// One running QEMU: started from a ``QEMUConfiguration`` with a minimal environment, its
/// stdout and stderr captured to a file, its serial console logged by QEMU itself.
///
/// Every failure path that this type reports stops the process first, so a caller that gives
/// up on a VM never leaves a stray QEMU behind.
public final class QEMUProcess: Sendable {
    public let configuration: QEMUConfiguration
    /// QEMU's own stdout and stderr.
    public let stderrLog: String
    /// The process id, for logs and for `ps`.
    public let pid: Int32
    public let executable: String
    /// When the process was started, for boot-time figures.
    public let launchedAt: ContinuousClock.Instant

    private let process: ProcessBox
    private let exitStatus: NIOLockedValueBox<Int32?>
    private let logger: Logger

    /// The executable used when the caller names none.
    public static let defaultExecutable = "qemu-system-x86_64"

    private init(configuration: QEMUConfiguration, stderrLog: String, executable: String, process: ProcessBox, exitStatus: NIOLockedValueBox<Int32?>, logger: Logger) {
        self.configuration = configuration
        self.stderrLog = stderrLog
        self.executable = executable
        self.process = process
        self.pid = process.process.processIdentifier
        self.launchedAt = ContinuousClock.now
        self.exitStatus = exitStatus
        self.logger = logger
    }

    /// Starts QEMU. Returns as soon as the process runs; use ``connectQMP(timeout:)`` to wait
    /// until it is ready.
    ///
    /// - Parameters:
    ///   - executable: a path, or a name looked up on `PATH`.
    ///   - stderrLog: where QEMU's output goes (truncated first).
    /// - Throws: ``QEMUError/invalidConfiguration(field:reason:)``,
    ///   ``QEMUError/executableNotFound(_:)``, ``QEMUError/launchFailed(executable:reason:)``.
    public static func launch(
        _ configuration: QEMUConfiguration,
        executable: String = defaultExecutable,
        stderrLog: String,
        runAs user: Credentials? = nil,
        logger: Logger = Logger(label: "hearth.qemu")
    ) throws(QEMUError) -> QEMUProcess {
        let arguments = try QEMUArguments.build(for: configuration)
        guard let path = resolve(executable) else {
            throw .executableNotFound(executable)
        }
        // Stale sockets from an earlier run would make a fresh QEMU look ready before it is.
        for socket in [configuration.qmpSocket, configuration.consoleSocket] {
            try? FileManager.default.removeItem(atPath: socket)
        }
        guard FileManager.default.createFile(atPath: stderrLog, contents: nil),
              let output = FileHandle(forWritingAtPath: stderrLog)
        else {
            throw .launchFailed(executable: path, reason: "cannot create its log file \(stderrLog)")
        }
        defer { try? output.close() }

        let process = Process()
        // A child inherits blocked and ignored signals, and a daemon's process has them: the
        // signal sources that wait for SIGTERM and SIGINT block those. `env --default-signal`
        // (coreutils) unblocks every signal and resets it to the default, then execs, so that
        // QEMU stops on SIGTERM as it documents (at a system shutdown, say).
        guard let env = resolve("/usr/bin/env") else {
            throw .executableNotFound("/usr/bin/env")
        }
        process.executableURL = URL(fileURLWithPath: env)
        if let user {
            // setpriv (util-linux) drops to the user, with no supplementary groups beyond those
            // named and no way back to privileges, then execs QEMU in the same process.
            guard let setpriv = resolve("setpriv") else {
                throw .executableNotFound("setpriv")
            }
            let groups = user.supplementaryGroups.isEmpty ? ["--clear-groups"] : ["--groups=\(user.supplementaryGroups.map(String.init).joined(separator: ","))"]
            process.arguments = ["--default-signal", setpriv, "--reuid=\(user.uid)", "--regid=\(user.gid)"] + groups + ["--no-new-privs", "--", path] + arguments
        } else {
            process.arguments = ["--default-signal", path] + arguments
        }
        // QEMU needs nothing from the caller's environment; secrets held there stay there.
        process.environment = ["LC_ALL": "C"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        let exitStatus = NIOLockedValueBox<Int32?>(nil)
        process.terminationHandler = { finished in
            exitStatus.withLockedValue { $0 = finished.terminationStatus }
        }
        do {
            try process.run()
        } catch {
            throw .launchFailed(executable: path, reason: "\(error.localizedDescription)")
        }
        logger.info("QEMU started", metadata: ["vm.name": "\(configuration.name)", "qemu.pid": "\(process.processIdentifier)", "qemu.accel": "\(configuration.accelerator.rawValue)"])
        return QEMUProcess(configuration: configuration, stderrLog: stderrLog, executable: path, process: ProcessBox(process: process), exitStatus: exitStatus, logger: logger)
    }

    /// The exit status once QEMU has ended, `nil` while it runs.
    public var exitCode: Int32? {
        exitStatus.withLockedValue { $0 }
    }

    /// Waits up to `timeout` for QEMU to end; returns its status, or `nil` if it still runs.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = exitCode {
                return status
            }
            if ContinuousClock.now >= deadline {
                return nil
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Sends SIGKILL and waits for the process to be reaped. Safe to call more than once.
    public func kill() async {
        guard exitCode == nil else { return }
        _ = Foundation.kill(pid, SIGKILL)
        _ = await waitForExit(timeout: .seconds(10))
        logger.info("QEMU killed", metadata: ["vm.name": "\(configuration.name)", "qemu.pid": "\(pid)"])
    }

    /// Connects to QEMU's QMP socket, retrying until it appears. On failure QEMU is killed.
    ///
    /// - Throws: ``QEMUError/exitedEarly(status:detail:stderrLog:)`` when QEMU ends first,
    ///   ``QEMUError/qmpSocketTimeout(path:seconds:stderrLog:)`` past the deadline.
    public func connectQMP(timeout: Duration = .seconds(30)) async throws -> QMPClient {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = exitCode {
                throw QEMUError.exitedEarly(status: status, detail: stderrTail(), stderrLog: stderrLog)
            }
            if FileManager.default.fileExists(atPath: configuration.qmpSocket) {
                do {
                    return try await QMPClient.connect(socketPath: configuration.qmpSocket, timeout: .seconds(5), logger: logger)
                } catch QMPError.connectionFailed {
                    // The socket file exists a moment before QEMU listens on it.
                } catch {
                    // QEMU may open its monitor and then exit on a configuration it refuses: say
                    // why it ended rather than that the connection closed.
                    for _ in 0..<40 where exitCode == nil { try await Task.sleep(for: .milliseconds(50)) }
                    if let status = exitCode {
                        throw QEMUError.exitedEarly(status: status, detail: stderrTail(), stderrLog: stderrLog)
                    }
                    throw error
                }
            }
            if ContinuousClock.now >= deadline {
                await kill()
                throw QEMUError.qmpSocketTimeout(path: configuration.qmpSocket, seconds: timeout.seconds, stderrLog: stderrLog)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The last lines QEMU printed, for error messages.
    public func stderrTail(maximumLines: Int = 5) -> String {
        guard let text = try? String(contentsOfFile: stderrLog, encoding: .utf8) else { return "" }
        return text.split(separator: "\n").suffix(maximumLines).joined(separator: " | ")
    }

    public static func resolve(_ executable: String) -> String? {
        if executable.contains("/") {
            return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(directory)/\(executable)"
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }
}

/// The unprivileged user a QEMU runs as.
public struct Credentials: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    /// Extra groups, such as `kvm` for /dev/kvm.
    public var supplementaryGroups: [UInt32]

    public init(uid: UInt32, gid: UInt32, supplementaryGroups: [UInt32] = []) {
        self.uid = uid
        self.gid = gid
        self.supplementaryGroups = supplementaryGroups
    }
}

/// `Process` is mutable before `run()` and only read afterwards; this box carries the launched
/// process across tasks.
private final class ProcessBox: @unchecked Sendable {
    let process: Process

    init(process: Process) {
        self.process = process
    }
}
