import Crypto
import Foundation
import HearthCore

/// Where the device stands with its lease.
public enum LeaseStanding: Sendable, Equatable, CustomStringConvertible {
    /// No lease yet: the device has not checked in since it enrolled.
    case none
    case valid(until: Date)
    case expired(since: Date)
    /// The lease file cannot be trusted (the TPM says it was restored from an older copy).
    case untrusted(String)

    public var description: String {
        switch self {
        case .none: return "no lease yet: the Engine has not checked in with its Center"
        case .valid(let until): return "valid until \(until.ISO8601Format())"
        case .expired(let since): return "ran out on \(since.ISO8601Format())"
        case .untrusted(let reason): return "is not trusted: \(reason)"
        }
    }
}

/// What a TPM gives the lease (docs/SECURITY.md): a clock the operating system cannot set back,
/// and a counter that says whether the lease file is the latest one written.
public protocol LeaseAnchor: Sendable {
    /// Milliseconds the TPM has been powered; never goes back.
    func clockMilliseconds() throws -> UInt64
    /// The counter's value now.
    func generation() throws -> UInt64
    /// Moves the counter on and returns its new value.
    func advanceGeneration() throws -> UInt64
}

/// Keeps the Center's lease (checked against the lease key pinned at enrollment) and the time
/// the lease is judged by: a clock that setting the system clock back does not wind back.
///
/// The trusted time is the latest of the wall clock, the latest time this Engine ever saw (its
/// own clock's and the Center's, kept on disk as a high-water mark), and that mark plus the time
/// elapsed on the monotonic clock since it was taken. So a clock set back, before or after a
/// restart, leaves the lease running out when it would have.
///
/// With a TPM (a ``LeaseAnchor``), the mark is kept with the TPM's clock at the moment it was
/// taken, and the time is never earlier than the mark plus the TPM time elapsed since: a copy of
/// an old lease file, restored with the clock set back, still ages by every hour the PC ran.
/// And each lease that moves the expiry by a day or more moves a TPM counter, whose value the
/// file keeps: a file from before the counter last moved is a restored copy, and its lease is
/// not trusted until the next check-in.
public final class LeaseKeeper: @unchecked Sendable {
    // @unchecked: every field is behind `lock`.
    struct Stored: Codable {
        var lease: Lease?
        var highWater: Date
        /// The TPM's clock when `highWater` was last written, with a TPM.
        var tpmClock: UInt64?
        /// The TPM counter's value this file was written with, and the lease expiry then.
        var generation: UInt64?
        var generationExpiry: Date?
    }

    public let path: String
    let deviceID: String
    let key: Curve25519.Signing.PublicKey
    let wallClock: @Sendable () -> Date
    private let lock = NSLock()
    private var stored: Stored
    private var anchor: (wall: Date, monotonic: ContinuousClock.Instant)
    private var persistedHighWater: Date
    private let anchorTPM: LeaseAnchor?
    /// Why the lease file is not trusted, when the TPM says it is a restored copy.
    private var restored: String?

    public init(path: String, leaseKey: String, deviceID: String, now: @escaping @Sendable () -> Date = { Date() },
                tpm: LeaseAnchor? = nil) throws {
        anchorTPM = tpm
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
        if let tpm, let written = stored.generation {
            let current = try tpm.generation()
            if written != current {
                restored = "the lease file was written at TPM count \(written), but the TPM stands at \(current): it is an older copy put back; a check-in with the Center renews the lease"
            }
        }
    }

    /// The mark plus the TPM time elapsed since it was taken; nil without a TPM (or after the
    /// TPM was cleared, when its clock went back).
    private func tpmTimeLocked() -> Date? {
        guard let anchorTPM, let mark = stored.tpmClock, let clock = try? anchorTPM.clockMilliseconds(), clock >= mark else { return nil }
        return persistedHighWater.addingTimeInterval(Double(clock - mark) / 1000)
    }

    /// The time leases are judged by (see the type's description).
    public func now() -> Date {
        lock.withLock {
            let elapsed = ContinuousClock.now - anchor.monotonic
            let (seconds, attoseconds) = elapsed.components
            let fromAnchor = anchor.wall.addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
            let trusted = max(wallClock(), stored.highWater, fromAnchor, tpmTimeLocked() ?? .distantPast)
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
            if let restored { return .untrusted(restored) }
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
            // The counter moves when the expiry moved a day or more since it last did: often
            // enough that a restored copy gains at most a day, rarely enough to spare the TPM's
            // NV memory (a check-in every few minutes would wear it).
            if let anchorTPM, restored != nil || stored.generation == nil
                || terms.expires.timeIntervalSince(stored.generationExpiry ?? .distantPast) >= 86_400 {
                stored.generation = try anchorTPM.advanceGeneration()
                stored.generationExpiry = terms.expires
            }
            restored = nil
            try persistLocked()
        }
    }

    private func persistLocked() throws {
        if let anchorTPM, let clock = try? anchorTPM.clockMilliseconds() { stored.tpmClock = clock }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(try encoder.encode(stored), to: path, mode: 0o600)
        persistedHighWater = stored.highWater
    }
}
