import Foundation

/// Tells a person at a terminal what a long command is doing: one line per step, with its
/// timing. Lines go to standard output, warnings among them.
final class Narrator {
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    let totalSteps: Int
    private(set) var step = 0

    init(totalSteps: Int) {
        self.totalSteps = totalSteps
        self.start = clock.now
    }

    /// Runs one step, printing its title, then its outcome and duration.
    func step<T>(_ title: String, _ body: () async throws -> (T, String)) async throws -> T {
        step += 1
        let prefix = "[\(step)/\(totalSteps)]"
        say("\(prefix) \(title) …")
        let began = clock.now
        do {
            let (value, outcome) = try await body()
            say("\(String(repeating: " ", count: prefix.count)) \(outcome) (\(Self.format(clock.now - began)))")
            return value
        } catch {
            say("\(String(repeating: " ", count: prefix.count)) FAILED after \(Self.format(clock.now - began)): step \(step), \(title.lowercased())")
            throw error
        }
    }

    /// A detail line under the current step.
    func detail(_ text: String) {
        say("      \(text)")
    }

    /// A warning, in line with the steps so that it reads in order.
    func warn(_ text: String) {
        say(text)
    }

    /// A line out at once, also when standard output is a pipe or a file (a CI log).
    private func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    var elapsed: Duration { clock.now - start }

    static func format(_ duration: Duration) -> String {
        String(format: "%.1f s", seconds(duration))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
