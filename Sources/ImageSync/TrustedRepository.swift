import Foundation

/// The client's view of a repository, in the manner of TUF's client workflow: it starts from a
/// pinned root, keeps the newest metadata it has verified in `stateDirectory`, and accepts new
/// metadata only if it is signed by the right keys, no older than what it had, not expired, and
/// exactly the file its parent pins.
public final class TrustedRepository: @unchecked Sendable {
    // @unchecked: used by one task at a time (a pull holds it for its duration).
    public let transport: any RepositoryTransport
    public let stateDirectory: URL
    let now: @Sendable () -> Date

    public private(set) var root: RootMetadata
    public private(set) var timestamp: TimestampMetadata?
    public private(set) var snapshot: SnapshotMetadata?
    public private(set) var targets: TargetsMetadata?

    /// - Parameters:
    ///   - pinnedRoot: the root file a client trusts first (from `hearth image init`); once the
    ///     client has followed rotations, the newer root in `stateDirectory` is used instead.
    public init(transport: any RepositoryTransport, pinnedRoot: URL, stateDirectory: URL,
                now: @escaping @Sendable () -> Date = { Date() }) throws(ImageSyncError) {
        self.transport = transport
        self.stateDirectory = stateDirectory
        self.now = now
        do {
            try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .io(path: stateDirectory.path, operation: "create the trust folder", reason: "\(error)")
        }
        let stored = stateDirectory.appendingPathComponent("root.json")
        let rootData: Data
        if let data = FileManager.default.contents(atPath: stored.path) {
            rootData = data
        } else if let data = FileManager.default.contents(atPath: pinnedRoot.path) {
            rootData = data
        } else {
            throw .untrusted(role: "root", reason: "cannot read the pinned root \(pinnedRoot.path)")
        }
        // A root vouches for itself; it is trusted because it was pinned or verified before.
        let unverified = try Envelope.unverifiedPayload(rootData, as: RootMetadata.self)
        guard let rootKeys = unverified.keys(for: .root) else {
            throw .untrusted(role: "root", reason: "names no root keys")
        }
        root = try Envelope.verify(rootData, as: RootMetadata.self, keys: rootKeys.keys, threshold: rootKeys.threshold)
        timestamp = loadTrusted("timestamp.json", as: TimestampMetadata.self)
        snapshot = loadTrusted("snapshot.json", as: SnapshotMetadata.self)
        targets = loadTrusted("targets.json", as: TargetsMetadata.self)
    }

    /// Metadata verified in an earlier run; dropped when it no longer verifies under the
    /// current root (its key was rotated).
    private func loadTrusted<T: SignedRole>(_ file: String, as type: T.Type) -> T? {
        guard let data = FileManager.default.contents(atPath: stateDirectory.appendingPathComponent(file).path),
              let keys = root.keys(for: T.role) else { return nil }
        return try? Envelope.verify(data, as: type, keys: keys.keys, threshold: keys.threshold)
    }

    private func persist(_ data: Data, as file: String) throws(ImageSyncError) {
        try AtomicFile.write(data, to: stateDirectory.appendingPathComponent(file), mode: 0o600)
    }

    private func checkExpiry<T: SignedRole>(_ value: T) throws(ImageSyncError) {
        let now = now()
        if value.expires <= now {
            let role = T.role.rawValue
            throw .untrusted(role: role, reason: "expired at \(value.expires.ISO8601Format()) (now \(now.ISO8601Format())); the repository, or a mirror or cache in front of it, serves stale metadata — a freeze. Ask its publisher to run `hearth image refresh`")
        }
    }

    /// Brings root, timestamp, snapshot and targets up to date, in that order.
    @discardableResult
    public func refresh() async throws(ImageSyncError) -> TargetsMetadata {
        try await updateRoot()
        let timestamp = try await updateTimestamp()
        let snapshot = try await updateSnapshot(timestamp)
        return try await updateTargets(snapshot)
    }

    private func updateRoot() async throws(ImageSyncError) {
        for _ in 0..<RepositoryLayout.maximumRootRotations {
            let next = root.version + 1
            guard let data = try await transport.fetch(RepositoryLayout.root(next), maxLength: RepositoryLayout.maximumRootLength) else { break }
            guard let oldKeys = root.keys(for: .root) else { throw .untrusted(role: "root", reason: "names no root keys") }
            // Signed by the keys we trust now …
            _ = try Envelope.verify(data, as: RootMetadata.self, keys: oldKeys.keys, threshold: oldKeys.threshold)
            // … and by its own.
            let unverified = try Envelope.unverifiedPayload(data, as: RootMetadata.self)
            guard let newKeys = unverified.keys(for: .root) else { throw .untrusted(role: "root", reason: "version \(next) names no root keys") }
            let newRoot = try Envelope.verify(data, as: RootMetadata.self, keys: newKeys.keys, threshold: newKeys.threshold)
            guard newRoot.version == next else {
                throw .untrusted(role: "root", reason: "\(RepositoryLayout.root(next)) says it is version \(newRoot.version)")
            }
            // A rotated timestamp or snapshot key means starting those afresh (TUF 5.3.11).
            if newRoot.roles[Role.timestamp.rawValue] != root.roles[Role.timestamp.rawValue] ||
                newRoot.roles[Role.snapshot.rawValue] != root.roles[Role.snapshot.rawValue] {
                timestamp = nil
                snapshot = nil
                unlink(stateDirectory.appendingPathComponent("timestamp.json").path)
                unlink(stateDirectory.appendingPathComponent("snapshot.json").path)
            }
            root = newRoot
            try persist(data, as: "root.json")
        }
        try checkExpiry(root)
    }

    private func updateTimestamp() async throws(ImageSyncError) -> TimestampMetadata {
        guard let data = try await transport.fetch(RepositoryLayout.timestamp, maxLength: RepositoryLayout.maximumTimestampLength) else {
            throw .repository("\(transport.location) has no \(RepositoryLayout.timestamp); is it a Hearth image repository?")
        }
        guard let keys = root.keys(for: .timestamp) else { throw .untrusted(role: "root", reason: "names no timestamp keys") }
        let new = try Envelope.verify(data, as: TimestampMetadata.self, keys: keys.keys, threshold: keys.threshold)
        guard let pinned = new.meta["snapshot.json"] else { throw .untrusted(role: "timestamp", reason: "names no snapshot") }
        if let old = timestamp {
            if new.version < old.version {
                throw .untrusted(role: "timestamp", reason: "version \(new.version) is older than version \(old.version) already seen: a rollback")
            }
            if let oldPinned = old.meta["snapshot.json"], pinned.version < oldPinned.version {
                throw .untrusted(role: "timestamp", reason: "names snapshot \(pinned.version), older than snapshot \(oldPinned.version) already seen: a rollback")
            }
        }
        try checkExpiry(new)
        timestamp = new
        try persist(data, as: "timestamp.json")
        return new
    }

    private func updateSnapshot(_ timestamp: TimestampMetadata) async throws(ImageSyncError) -> SnapshotMetadata {
        let pinned = timestamp.meta["snapshot.json"]!
        let path = RepositoryLayout.snapshot(pinned.version)
        guard let data = try await transport.fetch(path, maxLength: pinned.length) else {
            throw .repository("\(transport.location) has no \(path), which its timestamp names")
        }
        guard data.count == pinned.length, Digest.of(data) == pinned.sha256 else {
            throw .untrusted(role: "snapshot", reason: "\(path) is not the file the timestamp pins (length or hash differ): altered, or mixed from another state of the repository")
        }
        guard let keys = root.keys(for: .snapshot) else { throw .untrusted(role: "root", reason: "names no snapshot keys") }
        let new = try Envelope.verify(data, as: SnapshotMetadata.self, keys: keys.keys, threshold: keys.threshold)
        guard new.version == pinned.version else {
            throw .untrusted(role: "snapshot", reason: "is version \(new.version), the timestamp pins \(pinned.version)")
        }
        guard let newTargets = new.meta["targets.json"] else { throw .untrusted(role: "snapshot", reason: "names no targets") }
        if let old = snapshot {
            if new.version < old.version {
                throw .untrusted(role: "snapshot", reason: "version \(new.version) is older than version \(old.version) already seen: a rollback")
            }
            if let oldTargets = old.meta["targets.json"], newTargets.version < oldTargets.version {
                throw .untrusted(role: "snapshot", reason: "names targets \(newTargets.version), older than targets \(oldTargets.version) already seen: a rollback")
            }
        }
        try checkExpiry(new)
        snapshot = new
        try persist(data, as: "snapshot.json")
        return new
    }

    private func updateTargets(_ snapshot: SnapshotMetadata) async throws(ImageSyncError) -> TargetsMetadata {
        let pinned = snapshot.meta["targets.json"]!
        if let targets, targets.version == pinned.version,
           let data = FileManager.default.contents(atPath: stateDirectory.appendingPathComponent("targets.json").path),
           data.count == pinned.length, Digest.of(data) == pinned.sha256 {
            try checkExpiry(targets)
            return targets
        }
        let path = RepositoryLayout.targets(pinned.version)
        guard let data = try await transport.fetch(path, maxLength: pinned.length) else {
            throw .repository("\(transport.location) has no \(path), which its snapshot names")
        }
        guard data.count == pinned.length, Digest.of(data) == pinned.sha256 else {
            throw .untrusted(role: "targets", reason: "\(path) is not the file the snapshot pins (length or hash differ): altered, or mixed from another state of the repository")
        }
        guard let keys = root.keys(for: .targets) else { throw .untrusted(role: "root", reason: "names no targets keys") }
        let new = try Envelope.verify(data, as: TargetsMetadata.self, keys: keys.keys, threshold: keys.threshold)
        guard new.version == pinned.version else {
            throw .untrusted(role: "targets", reason: "is version \(new.version), the snapshot pins \(pinned.version)")
        }
        try checkExpiry(new)
        targets = new
        try persist(data, as: "targets.json")
        return new
    }

    /// The signed entry for an image version (the newest when `version` is nil).
    public func target(name: String, version: String?) throws(ImageSyncError) -> TargetFile {
        guard let targets else { throw .invalidRequest("refresh the repository's metadata first") }
        if let version {
            guard let target = targets.targets["\(name)/\(version)"] else {
                if targets.targets.values.contains(where: { $0.custom.name == name }) {
                    throw .unknownTarget(name: name, version: version)
                }
                throw .unknownTarget(name: name, version: nil)
            }
            return target
        }
        guard let newest = targets.targets.values.filter({ $0.custom.name == name }).max(by: { $0.custom.sequence < $1.custom.sequence }) else {
            throw .unknownTarget(name: name, version: nil)
        }
        return newest
    }

    /// Downloads and checks a version's block index: no more bytes than signed, and the signed
    /// hash.
    public func index(for target: TargetFile) async throws(ImageSyncError) -> (data: Data, index: BlockIndex) {
        let path = RepositoryLayout.index(target.sha256)
        guard let data = try await transport.fetch(path, maxLength: target.length) else {
            throw .repository("\(transport.location) has no \(path), the index of \(target.custom.name) \(target.custom.version)")
        }
        guard data.count == target.length, Digest.of(data) == target.sha256 else {
            throw .corruptData("the index of \(target.custom.name) \(target.custom.version) does not match its signed hash (\(path) from \(transport.location))")
        }
        let index = try BlockIndex(decoding: Array(data))
        guard index.virtualSize == target.custom.virtualSize, index.blockSize == target.custom.blockSize else {
            throw .corruptData("the index of \(target.custom.name) \(target.custom.version) disagrees with its signed description")
        }
        return (data, index)
    }
}
