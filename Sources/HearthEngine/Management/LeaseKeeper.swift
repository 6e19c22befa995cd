import Crypto
import Foundation
import HearthCore

/// Where the device stands with its lease.
public enum LeaseStanding: Sendable, Equatable, CustomStringConvertible {
    /// No lease yet: the device has not checked in since it enrolled.
    case none
    case valid(until: Date)
    case expired(since: Date)

    public var description: String {
        switch self {
        case .none: return "no lease yet: the Engine has not checked in with its Center"
        case .valid(let until): return "valid until \(until.ISO8601Format())"
        case .expired(let since): return "ran out on \(since.ISO8601Format())"
        }
    }
}

/// Keeps the Center's lease (checked against the lease key pinned at enrollment) and the time
/// the lease is judged by: a clock that setting the system clock back does not wind back.
///
/// The trusted time is the latest of the wall clock, the latest time this Engine ever saw (its
/// own clock's and the Center's, kept on disk as a high-water mark), and that mark plus the time
/// elapsed on the monotonic clock since it was taken. So a clock set back, before or after a
/// restart, leaves the lease running out when it would have. (The TPM clock joins this in the
/// security zone, against a restored copy of the state file.)
public final class LeaseKeeper: @unchecked Sendable {
    // @unchecked: every field is behind `lock`.
    struct Stored: Codable {
        var lease: Lease?
        var highWater: Date
    }

    public let path: String
    let deviceID: String
    let key: Curve25519.Signing.PublicKey
    let wallClock: @Sendable () -> Date
    private let lock = NSLock()
    private var stored: Stored
    private var anchor: (wall: Date, monotonic: ContinuousClock.Instant)
    private var persistedHighWater: Date

    public init(path: String, leaseKey: String, deviceID: String, now: @escaping @Sendable () -> Date = { Date() }) throws {
        guard let raw = Data(base64Encoded: leaseKey), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw ManagementError.badLease("the pinned lease key is not an Ed25519 public key; enroll the device again")
        }
        self.path = path
        self.deviceID = deviceID
        self.key = key
        wallClock = now
        let wall = now()
        if let data = FileManager.default.contents(atPath: path) {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            guard let value = try? decoder.decode(Stored.self, from: data) else {
                throw EngineError.unreadableState(path: path, reason: "the lease file is damaged; the Engine gets a new lease at its next check-in (remove the file to let it)")
            }
            stored = value
        } else {
            stored = Stored(lease: nil, highWater: wall)
        }
        persistedHighWater = stored.highWater
        anchor = (max(wall, stored.highWater), ContinuousClock.now)
    }

    /// The time leases are judged by (see the type's description).
    public func now() -> Date {
        lock.withLock {
            let elapsed = ContinuousClock.now - anchor.monotonic
            let (seconds, attoseconds) = elapsed.components
            let fromAnchor = anchor.wall.addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
            let trusted = max(wallClock(), stored.highWater, fromAnchor)
            stored.highWater = trusted
            // Written at most once a minute: a kill -9 loses at most that much of the mark.
            if trusted.timeIntervalSince(persistedHighWater) >= 60 {
                try? persistLocked()
            }
            return trusted
        }
    }

    public var standing: LeaseStanding {
        let now = now()
        return lock.withLock {
            guard let terms = stored.lease?.unverifiedTerms else { return .none }
            return terms.expires > now ? .valid(until: terms.expires) : .expired(since: terms.expires)
        }
    }

    /// Takes a lease from a check-in: its signature must verify under the pinned key, it must be
    /// for this device, and not older than the one held (a replayed old answer changes nothing).
    public func accept(_ lease: Lease) throws {
        guard let payload = Data(base64Encoded: lease.payload), let signature = Data(base64Encoded: lease.signature),
              key.isValidSignature(signature, for: payload) else {
            throw ManagementError.badLease("its signature does not verify under the lease key pinned at enrollment")
        }
        guard let terms = lease.unverifiedTerms else { throw ManagementError.badLease("its terms cannot be read") }
        guard terms.deviceID == deviceID else {
            throw ManagementError.badLease("it was issued to device \(terms.deviceID), not to this one (\(deviceID))")
        }
        guard terms.expires > terms.issued else { throw ManagementError.badLease("it expires before it was issued") }
        try lock.withLock {
            if let held = stored.lease?.unverifiedTerms, held.issued > terms.issued { return }
            stored.lease = lease
            // The Center's signed clock also moves the mark: a device clock set back is caught at once.
            stored.highWater = max(stored.highWater, terms.issued)
            try persistLocked()
        }
    }

    private func persistLocked() throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(try encoder.encode(stored), to: path, mode: 0o600)
        persistedHighWater = stored.highWater
    }
}
