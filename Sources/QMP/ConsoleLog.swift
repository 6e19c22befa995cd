import Foundation

/// Follows the serial console log QEMU writes, for boot markers and probe output.
public struct ConsoleLog: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// Everything logged so far (empty before QEMU created the file).
    public func contents() -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
}

extension QEMUProcess {
    /// Waits until the guest prints `text` on its serial console and returns how long after
    /// QEMU's launch it was seen (within 0.1 s). On a timeout or an early exit, QEMU is killed.
    ///
    /// - Throws: ``QEMUError/consoleTimeout(expected:seconds:consoleLog:)``,
    ///   ``QEMUError/exitedEarly(status:detail:stderrLog:)``.
    @discardableResult
    public func waitForConsole(containing text: String, timeout: Duration) async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        let log = ConsoleLog(path: configuration.consoleLog)
        // Read only what is new, keeping enough of the old to catch a marker split across reads.
        var offset: UInt64 = 0
        var window = ""
        while true {
            if let handle = FileHandle(forReadingAtPath: log.path) {
                try? handle.seek(toOffset: offset)
                if let data = try? handle.readToEnd() {
                    offset += UInt64(data.count)
                    window += String(decoding: data, as: UTF8.self)
                }
                try? handle.close()
            }
            if window.contains(text) {
                return clock.now - launchedAt
            }
            window = String(window.suffix(max(text.count * 2, 4096)))
            if let status = exitCode {
                throw QEMUError.exitedEarly(status: status, detail: stderrTail(), stderrLog: stderrLog)
            }
            if clock.now - start >= timeout {
                await kill()
                throw QEMUError.consoleTimeout(expected: text, seconds: timeout.seconds, consoleLog: log.path)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
