import Crypto
import Foundation
import VirtualDisk

/// How long each role's metadata stays valid after it is signed.
public struct ExpiryPolicy: Sendable {
    public var root: TimeInterval = 365 * 86400
    public var targets: TimeInterval = 365 * 86400
    public var snapshot: TimeInterval = 30 * 86400
    /// Short, so a mirror that stops updating shows by its age (a freeze attack). Refresh with
    /// `hearth image refresh`.
    public var timestamp: TimeInterval = 7 * 86400

    public init() {}
}

/// Options for turning a disk into a version.
public struct PublishOptions: Sendable {
    /// Fixed, aligned blocks; see docs/IMAGES.md for why and the measurements.
    public var blockSize = 64 << 10
    /// zstd's level for new frames, 1 to 19. 9 by default: on the Debian image pair of
    /// docs/PERFORMANCE.md it moves 5% fewer bytes than 3, for publishing 2.5 times slower.
    public var compressionLevel: Int32 = 9
    /// Packs close once past this size (at the end of a 16 MiB batch of blocks).
    public var packSize = 64 << 20
    public var expiry = ExpiryPolicy()
    /// The clock (tests move it).
    public var now = Date()

    public init() {}
}

public struct PublishResult: Sendable {
    public var name: String
    public var version: String
    public var info: ImageVersionInfo
    public var index: Digest
    /// Blocks new to the repository, and the compressed bytes they added in new packs.
    public var newBlocks: Int
    public var newBytes: UInt64
    public var newPacks: [Digest]
}

/// Where a block the repository holds (or the pack being written will hold) is stored.
struct StoredBlock {
    /// `nil` while its pack is still being written.
    var pack: Digest?
    var offset: UInt64
    var stored: UInt32
    var compressed: Bool
    var frameBlocks: UInt8
    var frameSlot: UInt8

    init(pack: Digest?, offset: UInt64, stored: UInt32, compressed: Bool, frameBlocks: UInt8, frameSlot: UInt8) {
        self.pack = pack
        self.offset = offset
        self.stored = stored
        self.compressed = compressed
        self.frameBlocks = frameBlocks
        self.frameSlot = frameSlot
    }

    init(pack: Digest, entry: BlockIndex.Entry) {
        self.init(pack: pack, offset: entry.packOffset, stored: entry.storedLength, compressed: entry.compressed,
                  frameBlocks: entry.frameBlocks, frameSlot: entry.frameSlot)
    }

    func entry(block: UInt64, length: UInt32, digest: Digest, pack number: UInt32) -> BlockIndex.Entry {
        BlockIndex.Entry(block: block, length: length, digest: digest, pack: number, packOffset: offset, storedLength: stored,
                         compressed: compressed, frameBlocks: frameBlocks, frameSlot: frameSlot)
    }
}

/// The publishing side of a repository in a local folder: keys in, signed versions out.
public struct Publisher: Sendable {
    public let repository: URL
    public let keys: KeyStore

    public init(repository: URL, keys: KeyStore) {
        self.repository = repository
        self.keys = keys
    }

    func path(_ relative: String) -> URL { repository.appendingPathComponent(relative) }

    /// Creates keys and the repository's first metadata; returns the root file a client pins.
    public func initialize(expiry: ExpiryPolicy = ExpiryPolicy(), now: Date = Date()) throws(ImageSyncError) -> URL {
        if FileManager.default.fileExists(atPath: path(RepositoryLayout.timestamp).path) {
            throw .repository("\(repository.path) already holds a repository")
        }
        for folder in ["", "metadata", "indexes", "packs"] {
            let url = path(folder)
            if mkdir(url.path, 0o755) != 0 && errno != EEXIST {
                throw .fromErrno(path: url.path, operation: "create")
            }
        }
        let created = try keys.create()
        var rootKeys: [String: PublicKeyEntry] = [:]
        var roles: [String: RoleKeys] = [:]
        for role in Role.allCases {
            let key = created[role]!
            rootKeys[key.keyID] = key.publicKey
            roles[role.rawValue] = RoleKeys(keyids: [key.keyID], threshold: 1)
        }
        let root = RootMetadata(version: 1, expires: now + expiry.root, keys: rootKeys, roles: roles)
        let signedRoot = try Envelope.sign(root, with: [created[.root]!])
        try AtomicFile.write(signedRoot, to: path(RepositoryLayout.root(1)))
        try AtomicFile.write(signedRoot, to: path(RepositoryLayout.currentRoot))
        let targets = TargetsMetadata(version: 1, expires: now + expiry.targets, targets: [:])
        try commit(targets: targets, signers: created, expiry: expiry, now: now, previous: nil)
        return path(RepositoryLayout.root(1))
    }

    /// The repository's current metadata, as written by this publisher.
    struct State {
        var root: RootMetadata
        var timestamp: TimestampMetadata
        var snapshot: SnapshotMetadata
        var targets: TargetsMetadata
    }

    func read(_ relative: String) throws(ImageSyncError) -> Data {
        guard let data = FileManager.default.contents(atPath: path(relative).path) else {
            throw .repository("\(path(relative).path) is missing; is \(repository.path) a repository made by `hearth image init`?")
        }
        return data
    }

    func state() throws(ImageSyncError) -> State {
        let root = try Envelope.unverifiedPayload(read(RepositoryLayout.currentRoot), as: RootMetadata.self)
        let timestamp = try Envelope.unverifiedPayload(read(RepositoryLayout.timestamp), as: TimestampMetadata.self)
        guard let snapshotVersion = timestamp.meta["snapshot.json"]?.version else {
            throw .repository("timestamp.json names no snapshot")
        }
        let snapshot = try Envelope.unverifiedPayload(read(RepositoryLayout.snapshot(snapshotVersion)), as: SnapshotMetadata.self)
        guard let targetsVersion = snapshot.meta["targets.json"]?.version else {
            throw .repository("snapshot names no targets")
        }
        let targets = try Envelope.unverifiedPayload(read(RepositoryLayout.targets(targetsVersion)), as: TargetsMetadata.self)
        return State(root: root, timestamp: timestamp, snapshot: snapshot, targets: targets)
    }

    /// Writes targets, then a snapshot pinning it, then the timestamp pinning that: the
    /// timestamp's rename is the moment the new state becomes visible.
    func commit(targets: TargetsMetadata, signers: [Role: SigningKey], expiry: ExpiryPolicy, now: Date, previous: State?) throws(ImageSyncError) {
        let targetsData = try Envelope.sign(targets, with: [signers[.targets]!])
        try AtomicFile.write(targetsData, to: path(RepositoryLayout.targets(targets.version)))
        let snapshot = SnapshotMetadata(
            version: (previous?.snapshot.version ?? 0) + 1, expires: now + expiry.snapshot,
            meta: ["targets.json": MetaFile(version: targets.version, length: targetsData.count, sha256: .of(targetsData))])
        let snapshotData = try Envelope.sign(snapshot, with: [signers[.snapshot]!])
        try AtomicFile.write(snapshotData, to: path(RepositoryLayout.snapshot(snapshot.version)))
        try writeTimestamp(snapshot: MetaFile(version: snapshot.version, length: snapshotData.count, sha256: .of(snapshotData)),
                           version: (previous?.timestamp.version ?? 0) + 1, key: signers[.timestamp]!, expiry: expiry, now: now)
    }

    func writeTimestamp(snapshot: MetaFile, version: Int, key: SigningKey, expiry: ExpiryPolicy, now: Date) throws(ImageSyncError) {
        let timestamp = TimestampMetadata(version: version, expires: now + expiry.timestamp, meta: ["snapshot.json": snapshot])
        try AtomicFile.write(Envelope.sign(timestamp, with: [key]), to: path(RepositoryLayout.timestamp))
    }

    func lock() throws(ImageSyncError) -> FileLock {
        try FileLock(path: path(".publish.lock").path, busy: "another publish is changing \(repository.path); wait for it to finish")
    }

    /// Re-signs the timestamp (and, with `snapshot`, a new snapshot) so clients see the
    /// repository as fresh. Run it well within the timestamp's expiry.
    public func refresh(snapshot refreshSnapshot: Bool = false, expiry: ExpiryPolicy = ExpiryPolicy(), now: Date = Date()) throws(ImageSyncError) -> Date {
        let lock = try lock()
        defer { withExtendedLifetime(lock) {} }
        let state = try state()
        if refreshSnapshot {
            var signers: [Role: SigningKey] = [:]
            for role in [Role.targets, .snapshot, .timestamp] { signers[role] = try keys.load(role) }
            var targets = state.targets
            targets.version += 1
            targets.expires = now + expiry.targets
            try commit(targets: targets, signers: signers, expiry: expiry, now: now, previous: state)
        } else {
            guard let pinned = state.timestamp.meta["snapshot.json"] else { throw .repository("timestamp.json names no snapshot") }
            try writeTimestamp(snapshot: pinned, version: state.timestamp.version + 1, key: keys.load(.timestamp), expiry: expiry, now: now)
        }
        return now + expiry.timestamp
    }

    /// Replaces one role's key. A new root is signed by the old root key and by the new root
    /// key (when root itself rotates), so clients can follow the chain; the old key stops
    /// counting at once. Returns the new root version.
    public func rotateKey(_ role: Role, expiry: ExpiryPolicy = ExpiryPolicy(), now: Date = Date()) throws(ImageSyncError) -> Int {
        let lock = try lock()
        defer { withExtendedLifetime(lock) {} }
        let state = try state()
        let oldRootKey = try keys.load(.root)
        let oldKey = try keys.load(role)
        let newKey = SigningKey()
        var root = state.root
        root.keys[newKey.keyID] = newKey.publicKey
        root.roles[role.rawValue] = RoleKeys(keyids: [newKey.keyID], threshold: 1)
        let stillUsed = Set(root.roles.values.flatMap(\.keyids))
        root.keys = root.keys.filter { stillUsed.contains($0.key) }
        root.version += 1
        root.expires = now + expiry.root
        let signers = role == .root ? [oldRootKey, newKey] : [oldRootKey]
        let signed = try Envelope.sign(root, with: signers)
        try keys.retire(role, key: oldKey)
        try keys.save(newKey, for: role)
        try AtomicFile.write(signed, to: path(RepositoryLayout.root(root.version)))
        try AtomicFile.write(signed, to: path(RepositoryLayout.currentRoot))
        // Re-sign what the rotated key signed, so the repository is consistent at once.
        if role != .root {
            var signerKeys: [Role: SigningKey] = [:]
            for each in [Role.targets, .snapshot, .timestamp] { signerKeys[each] = try keys.load(each) }
            var targets = state.targets
            targets.version += 1
            try commit(targets: targets, signers: signerKeys, expiry: expiry, now: now, previous: state)
        }
        return root.version
    }

    /// The versions the repository lists, oldest first.
    public func versions() throws(ImageSyncError) -> [TargetFile] {
        try state().targets.targets.values.sorted { $0.custom.sequence < $1.custom.sequence }
    }

    /// Reads and checks an index of this repository.
    func loadIndex(_ target: TargetFile) throws(ImageSyncError) -> BlockIndex {
        let data = try read(RepositoryLayout.index(target.sha256))
        guard data.count == target.length, Digest.of(data) == target.sha256 else {
            throw .corruptData("\(RepositoryLayout.index(target.sha256)) does not match its signed hash; the repository is damaged")
        }
        return try BlockIndex(decoding: Array(data))
    }

    /// Turns a disk image into a published version; blocks the repository already holds (from
    /// any image) are not stored again.
    @discardableResult
    public func publish(disk: String, format: DiskFormat? = nil, name: String, version: String,
                        options: PublishOptions = PublishOptions(),
                        progress: ((UInt64, UInt64) -> Void)? = nil) throws(ImageSyncError) -> PublishResult {
        try NameRules.check(name, what: "an image name")
        try NameRules.check(version, what: "a version")
        guard options.blockSize >= BlockIndex.minimumBlockSize, options.blockSize <= BlockIndex.maximumBlockSize,
              options.blockSize & (options.blockSize - 1) == 0 else {
            throw .invalidRequest("block size must be a power of two from 4 KiB to 4 MiB")
        }
        guard (1...19).contains(options.compressionLevel) else {
            throw .invalidRequest("compression level \(options.compressionLevel) is out of range; use 1 (fastest) to 19 (smallest)")
        }
        let lock = try lock()
        defer { withExtendedLifetime(lock) {} }
        let state = try state()
        if state.targets.targets["\(name)/\(version)"] != nil {
            throw .alreadyPublished(name: name, version: version)
        }
        var signers: [Role: SigningKey] = [:]
        for role in [Role.targets, .snapshot, .timestamp] { signers[role] = try keys.load(role) }

        // Every block the repository holds, wherever it is.
        var known: [Digest: StoredBlock] = [:]
        for target in state.targets.targets.values {
            let index = try loadIndex(target)
            for entry in index.entries where known[entry.digest] == nil {
                known[entry.digest] = StoredBlock(pack: index.packs[Int(entry.pack)], entry: entry)
            }
        }

        let image: any DiskImage
        do { image = try DiskOpener.open(disk, format: format, policy: .sameDirectory(as: disk)) } catch {
            throw .disk("cannot read \(disk): \(error)")
        }
        let writer = try PackWriter(directory: path("packs"), limit: options.packSize)
        var packTable: [Digest] = []
        var packNumbers: [Digest: UInt32] = [:]
        func packNumber(_ digest: Digest) -> UInt32 {
            if let number = packNumbers[digest] { return number }
            packTable.append(digest)
            packNumbers[digest] = UInt32(packTable.count - 1)
            return UInt32(packTable.count - 1)
        }
        var entries: [BlockIndex.Entry] = []
        // Entries pointing into the pack being written: their pack digest is known only when
        // it closes.
        var pendingEntries: [Int] = []
        var newBlocks = 0
        var newBytes: UInt64 = 0
        var newPacks: [Digest] = []

        // Blocks already written to the pack still open, by digest: repeats inside this image
        // point at them too.
        var openPack: [Digest: StoredBlock] = [:]

        func closePack() throws(ImageSyncError) {
            guard let digest = try writer.close() else { return }
            let number = packNumber(digest)
            for position in pendingEntries {
                entries[position].pack = number
                known[entries[position].digest] = StoredBlock(pack: digest, entry: entries[position])
            }
            pendingEntries.removeAll()
            openPack.removeAll()
            newPacks.append(digest)
        }

        let blockSize = UInt64(options.blockSize)
        let batchBlocks = max(1, (16 << 20) / options.blockSize)
        let virtualSize = image.virtualSize
        var batch = BlockBatch(capacity: batchBlocks, blockSize: options.blockSize)
        var position: UInt64 = 0
        while position < virtualSize {
            // Gather up to a batch of blocks that may hold data, skipping runs the image says
            // are zero without reading them.
            batch.reset()
            while batch.count < batchBlocks && position < virtualSize {
                let length = min(blockSize, virtualSize - position)
                let run: Extent
                do { run = try image.resolvedExtent(at: position, maxLength: virtualSize - position) } catch {
                    throw .disk("cannot read \(disk): \(error)")
                }
                if run.kind != .data && run.length >= length {
                    // Skip the whole blocks inside the zero run.
                    position += max((run.length / blockSize) * blockSize, length)
                    position = min(position, virtualSize)
                    continue
                }
                do { try batch.read(from: image, at: position, length: Int(length)) } catch {
                    throw .disk("cannot read \(disk) at offset \(position): \(error)")
                }
                position += length
            }
            batch.hash()
            // The blocks the repository lacks, each once, compressed together in runs.
            var fresh: [Int] = []
            var freshDigests = Set<Digest>()
            for slot in 0..<batch.count where !batch.isZero[slot] {
                let digest = batch.digests[slot]
                if known[digest] == nil, openPack[digest] == nil, freshDigests.insert(digest).inserted { fresh.append(slot) }
            }
            for frame in batch.frames(of: fresh, level: options.compressionLevel) {
                let offset = try frame.bytes.withBytes { bytes throws(ImageSyncError) in try writer.append(bytes) }
                newBlocks += frame.slots.count
                newBytes += UInt64(frame.bytes.count)
                for (place, slot) in frame.slots.enumerated() {
                    openPack[batch.digests[slot]] = StoredBlock(
                        pack: nil, offset: offset, stored: UInt32(frame.bytes.count), compressed: frame.compressed,
                        frameBlocks: UInt8(frame.slots.count), frameSlot: UInt8(place))
                }
            }
            for slot in 0..<batch.count where !batch.isZero[slot] {
                let digest = batch.digests[slot]
                let block = batch.offsets[slot] / blockSize
                let length = UInt32(batch.lengths[slot])
                if let existing = known[digest] {
                    entries.append(existing.entry(block: block, length: length, digest: digest, pack: packNumber(existing.pack!)))
                } else {
                    entries.append(openPack[digest]!.entry(block: block, length: length, digest: digest, pack: UInt32.max))
                    pendingEntries.append(entries.count - 1)
                }
            }
            if writer.isFull { try closePack() }
            progress?(position, virtualSize)
        }
        try closePack()

        let index = BlockIndex(virtualSize: virtualSize, blockSize: options.blockSize, packs: packTable, entries: entries)
        let indexData = Data(index.encoded())
        let indexDigest = Digest.of(indexData)
        try AtomicFile.write(indexData, to: path(RepositoryLayout.index(indexDigest)))
        let sequence = (state.targets.targets.values.map(\.custom.sequence).max() ?? 0) + 1
        let info = ImageVersionInfo(name: name, version: version, virtualSize: virtualSize, blockSize: options.blockSize,
                                    blocks: entries.count, dataBytes: index.dataBytes, storedBytes: index.storedBytes,
                                    sequence: sequence, published: options.now)
        var targets = state.targets
        targets.version += 1
        targets.expires = options.now + options.expiry.targets
        targets.targets["\(name)/\(version)"] = TargetFile(length: indexData.count, sha256: indexDigest, custom: info)
        try commit(targets: targets, signers: signers, expiry: options.expiry, now: options.now, previous: state)
        return PublishResult(name: name, version: version, info: info, index: indexDigest,
                             newBlocks: newBlocks, newBytes: newBytes, newPacks: newPacks)
    }
}

