import Foundation
import ImageSync

/// A one-line progress bar on standard error, drawn only when standard error is a terminal
/// and at most ten times a second: bytes done, rate and time left.
final class ProgressBar {
    private let label: String
    private let enabled: Bool
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var lastDraw: ContinuousClock.Instant

    init(_ label: String, enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.enabled = enabled
        start = clock.now
        lastDraw = start - .seconds(1)
    }

    func update(_ done: UInt64, of total: UInt64) {
        guard enabled, clock.now - lastDraw >= .milliseconds(100) || done == total else { return }
        lastDraw = clock.now
        let elapsed = max(Narrator.seconds(clock.now - start), 0.001)
        let rate = Double(done) / elapsed
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let left = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r%@ [%@] %3.0f%% %@ of %@, %@/s, %@ left ", label, bar, fraction * 100, Self.bytes(done), Self.bytes(total), Self.bytes(UInt64(rate)), Self.duration(left))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func bytes(_ count: UInt64) -> String {
        ByteFormat.string(count)
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 60 ? String(format: "%.0f s", seconds) : String(format: "%.0f min", seconds / 60)
    }
}
