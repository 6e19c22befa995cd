import Foundation

/// swtpm, the software TPM, on loopback: for the tests and the demo, on machines without a TPM
/// device. Its state lives in a folder; started again on the same folder it is the same TPM
/// after a reboot (its seeds kept, its PCRs at zero).
public final class SoftwareTPM: @unchecked Sendable {
    public static let binary = "/usr/bin/swtpm"
    public static var installed: Bool { FileManager.default.isExecutableFile(atPath: binary) }
    public let state: String
    public let port: Int

    /// A new TPM, or with `state` the same TPM after a reboot (its seeds kept, its PCRs zero).
    public init(state: String? = nil) throws {
        self.state = state ?? FileManager.default.temporaryDirectory.appendingPathComponent("hearth-swtpm-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: self.state, withIntermediateDirectories: true)
        var lastError: Error?
        for _ in 0..<5 {
            let port = Int.random(in: 20000..<60000)
            let process = Process()
            // Through env --default-signal: a process that blocks SIGTERM (the test runner, a CLI
            // waiting for signals) passes that on, and the child would never stop.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["--default-signal", Self.binary, "socket", "--tpm2", "--server", "type=tcp,port=\(port),bindaddr=127.0.0.1",
                                 "--ctrl", "type=tcp,port=\(port + 1),bindaddr=127.0.0.1", "--tpmstate", "dir=\(self.state)",
                                 "--flags", "not-need-init,startup-clear"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Ready once it accepts a TPM connection.
            for _ in 0..<50 {
                if (try? TPM(tcti: "swtpm:host=127.0.0.1,port=\(port)")) != nil {
                    self.port = port
                    self.processBox = process
                    return
                }
                guard process.isRunning else { break }
                usleep(100_000)
            }
            process.terminate()
            lastError = TPMError.unreachable("swtpm on port \(port)", "did not start")
        }
        throw lastError!
    }

    private var processBox: Process?
    public var tcti: String { "swtpm:host=127.0.0.1,port=\(port)" }

    /// Powers it off, keeping its state for a reboot.
    public func powerOff() {
        processBox?.terminate()
        // Not waitUntilExit: it spins on a cooperative thread.
        for _ in 0..<100 where processBox?.isRunning == true { usleep(50_000) }
    }

    public func stop() {
        powerOff()
        try? FileManager.default.removeItem(atPath: state)
    }
}

