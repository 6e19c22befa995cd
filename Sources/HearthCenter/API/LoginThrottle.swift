import Foundation
import NIOConcurrencyHelpers

/// Slows password guessing: after `perUser` failed logins for one username, or `perAddress` from
/// one address, within `window`, further attempts are refused (429) until the oldest failure
/// leaves the window. Kept in memory by each Center; a success clears the username's count.
final class LoginThrottle: Sendable {
    let perUser: Int
    let perAddress: Int
    let window: TimeInterval
    private let failures = NIOLockedValueBox<[String: [Date]]>([:])

    init(perUser: Int = 5, perAddress: Int = 20, window: TimeInterval = 15 * 60) {
        self.perUser = perUser
        self.perAddress = perAddress
        self.window = window
    }

    /// Seconds to wait before trying again, or nil when an attempt may go ahead.
    func wait(username: String, address: String, now: Date) -> TimeInterval? {
        failures.withLockedValue { failures in
            var longest: TimeInterval?
            for (key, limit) in [("user:\(username)", perUser), ("address:\(address)", perAddress)] {
                let recent = (failures[key] ?? []).filter { now.timeIntervalSince($0) < window }
                failures[key] = recent.isEmpty ? nil : recent
                if recent.count >= limit, let oldest = recent.first {
                    longest = max(longest ?? 0, window - now.timeIntervalSince(oldest))
                }
            }
            return longest
        }
    }

    func failed(username: String, address: String, now: Date) {
        failures.withLockedValue { failures in
            for key in ["user:\(username)", "address:\(address)"] {
                failures[key, default: []].append(now)
            }
            // Bounded memory whatever an attacker sends: forget the stalest keys past 100,000.
            if failures.count > 100_000 {
                let stale = failures.filter { $0.value.last.map { now.timeIntervalSince($0) >= window } ?? true }.map(\.key)
                for key in stale { failures[key] = nil }
            }
        }
    }

    func succeeded(username: String) {
        failures.withLockedValue { $0["user:\(username)"] = nil }
    }
}
