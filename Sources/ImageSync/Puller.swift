import Foundation
import NIOCore

/// Where a pull stands, for a progress bar or the Engine's `--json` events.
public struct PullProgress: Codable, Sendable {
    public enum Phase: String, Codable, Sendable {
        case metadata, planning, copying, fetching, finishing, done
    }

    public var phase: Phase
    public var name: String
    public var version: String
    public var bytesFetched: UInt64 = 0
    public var bytesToFetch: UInt64 = 0
    public var bytesCopied: UInt64 = 0
    public var bytesToCopy: UInt64 = 0
}

/// What a pull did.
public struct PullResult: Codable, Sendable {
    public var name: String
    public var version: String
    public var image: String
    public var virtualSize: UInt64
    /// Bytes downloaded from the repository, and in how many requests.
    public var bytesFetched: UInt64
    public var requests: Int
    /// Blocks taken from versions already on this machine, and their bytes.
    public var blocksFromLocal: Int
    public var bytesFromLocal: UInt64
    /// Blocks an interrupted earlier pull had already verified and written.
    public var blocksResumed: Int
    public var blocks: Int
    /// The version was already complete here; nothing was done.
    public var alreadyPresent: Bool
}

/// Pulls image versions into a store: the fewest bytes given everything the store holds, every
/// block verified against the signed index, resumable after a kill or a cut connection, and
/// published by one rename.
public final class Puller: @unchecked Sendable {
    // @unchecked: one pull at a time per Puller; state lives in the pull's own locals.
    public let repository: TrustedRepository
    public let store: ImageStore
    /// Downloaded bytes between durable checkpoints: at most this much is fetched again after
    /// a kill.
    public var checkpointBytes: UInt64 = 1 << 20
    public var progress: (@Sendable (PullProgress) -> Void)?

    public init(repository: TrustedRepository, store: ImageStore) {
        self.repository = repository
        self.store = store
    }

    public func pull(name: String, version: String?) async throws(ImageSyncError) -> PullResult {
        try NameRules.check(name, what: "an image name")
        if let version { try NameRules.check(version, what: "a version") }
        report(PullProgress(phase: .metadata, name: name, version: version ?? "latest"))
        try await repository.refresh()
        let target = try repository.target(name: name, version: version)
        let version = target.custom.version
        try store.makeDirectories(name: name)
        let lock = try FileLock(path: store.lockPath(name: name, version: version),
                                busy: "another pull of \(name) \(version) into \(store.root.path) is running; wait for it to finish")
        defer { withExtendedLifetime(lock) {} }

        let final = store.directory(name: name, version: version)
        if let existing = store.installed().first(where: { $0.name == name && $0.version == version }) {
            guard existing.index == target.sha256 else {
                throw .corruptData("\(final.path) holds a \(name) \(version) whose index differs from the one the repository signs; remove that folder and pull again")
            }
            report(PullProgress(phase: .done, name: name, version: version))
            return PullResult(name: name, version: version, image: store.imagePath(name: name, version: version).path,
                              virtualSize: target.custom.virtualSize, bytesFetched: 0, requests: 0, blocksFromLocal: 0,
                              bytesFromLocal: 0, blocksResumed: 0, blocks: target.custom.blocks, alreadyPresent: true)
        }

        let (indexData, index) = try await repository.index(for: target)
        report(PullProgress(phase: .planning, name: name, version: version))
        let assembly = try Assembly(directory: store.partialDirectory(name: name, version: version), index: index,
                                    indexData: indexData, digest: target.sha256)
        var byDigest: [Digest: [Int]] = [:]
        for (number, entry) in index.entries.enumerated() where !assembly.done[number] {
            byDigest[entry.digest, default: []].append(number)
        }
        let resumed = assembly.done.filter { $0 }.count

        // Space: every block still to write, as the file is sparse.
        let pendingBytes = byDigest.values.reduce(UInt64(0)) { sum, numbers in
            sum + numbers.reduce(UInt64(0)) { $0 + UInt64(index.entries[$1].length) }
        }
        try Self.checkSpace(at: assembly.directory.path, needed: pendingBytes)

        // Blocks this machine already holds, in any complete version.
        var local: [Digest: (path: String, offset: UInt64, length: UInt32)] = [:]
        for installed in store.installed() {
            guard let other = store.index(of: installed) else { continue }
            let path = store.imagePath(name: installed.name, version: installed.version).path
            for entry in other.entries where byDigest[entry.digest] != nil && local[entry.digest] == nil {
                local[entry.digest] = (path, entry.block * UInt64(other.blockSize), entry.length)
            }
        }
        var status = PullProgress(phase: .copying, name: name, version: version)
        status.bytesToCopy = local.keys.reduce(0) { $0 + UInt64(index.entries[byDigest[$1]![0]].length) }
        report(status)
        var blocksFromLocal = 0
        var bytesFromLocal: UInt64 = 0
        var sources: [String: Int32] = [:]
        defer { for fd in sources.values { close(fd) } }
        var block = [UInt8](repeating: 0, count: index.blockSize)
        var sinceCheckpoint: UInt64 = 0
        for (digest, source) in local.sorted(by: { ($0.value.path, $0.value.offset) < ($1.value.path, $1.value.offset) }) {
            let fd: Int32
            if let open = sources[source.path] { fd = open } else {
                fd = Glibc.open(source.path, O_RDONLY | O_CLOEXEC)
                sources[source.path] = fd
            }
            let length = Int(source.length)
            let read = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, off_t(source.offset)) }
            // A local copy that is damaged or changed is fetched instead.
            guard fd >= 0, read == length, block.withUnsafeBytes({ Digest.of(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }) == digest else { continue }
            let numbers = byDigest.removeValue(forKey: digest)!
            try block.withBytes { bytes throws(ImageSyncError) in
                try assembly.write(UnsafeRawBufferPointer(rebasing: bytes[0..<length]), entries: numbers)
            }
            blocksFromLocal += numbers.count
            bytesFromLocal += UInt64(length * numbers.count)
            sinceCheckpoint += UInt64(length)
            if sinceCheckpoint >= 64 << 20 {
                try assembly.checkpoint()
                sinceCheckpoint = 0
            }
            status.bytesCopied = bytesFromLocal
            report(status)
        }
        try assembly.checkpoint()

        // The rest from the repository.
        let requests = PullPlan.requests(for: Set(byDigest.keys), in: index)
        status.phase = .fetching
        status.bytesToFetch = requests.reduce(0) { $0 + UInt64($1.range.count) }
        report(status)
        var fetched: UInt64 = 0
        var frame = [UInt8](repeating: 0, count: index.entries.map { $0.frameLength(blockSize: index.blockSize) }.max() ?? 0)
        do {
            for request in requests {
                var parser = RangeParser(request: request)
                let path = RepositoryLayout.pack(request.pack)
                let location = "\(repository.transport.location)/\(path)"
                // Where the last checkpoint left this request: a kill or a cut loses what came
                // after it, so a checkpoint is taken before that could pass `checkpointBytes`.
                var committed = request.range.lowerBound
                try await repository.transport.fetchRange(path, range: request.range) { buffer throws(ImageSyncError) in
                    fetched += UInt64(buffer.readableBytes)
                    try parser.feed(buffer) { number, item, stored throws(ImageSyncError) in
                        try self.accept(item, stored: stored, scratch: &frame, blockSize: index.blockSize, from: location,
                                        into: assembly, byDigest: &byDigest)
                        if number + 1 < request.items.count, request.items[number + 1].end - committed > self.checkpointBytes {
                            try assembly.checkpoint()
                            committed = item.end
                        }
                    }
                    status.bytesFetched = fetched
                    self.report(status)
                }
                try assembly.checkpoint()
            }
        } catch {
            // Blocks verified and written before the failure are kept for the next attempt.
            try? assembly.checkpoint()
            throw error
        }
        guard byDigest.isEmpty else {
            throw .corruptData("\(byDigest.count) block(s) of \(name) \(version) were not delivered; the repository is incomplete")
        }

        status.phase = .finishing
        report(status)
        let installed = InstalledVersion(name: name, version: version, index: target.sha256, virtualSize: index.virtualSize, pulled: Date())
        try assembly.finish(installed: installed, into: final)
        status.phase = .done
        report(status)
        return PullResult(name: name, version: version, image: store.imagePath(name: name, version: version).path,
                          virtualSize: index.virtualSize, bytesFetched: fetched, requests: requests.count,
                          blocksFromLocal: blocksFromLocal, bytesFromLocal: bytesFromLocal, blocksResumed: resumed,
                          blocks: index.entries.count, alreadyPresent: false)
    }

    /// Decompresses a frame, checks every wanted block in it against its signed hash, and writes
    /// them; nothing is written from a frame unless all its wanted blocks check.
    private func accept(_ item: RangeRequest.Item, stored: UnsafeRawBufferPointer, scratch: inout [UInt8], blockSize: Int,
                        from location: String, into assembly: Assembly, byDigest: inout [Digest: [Int]]) throws(ImageSyncError) {
        let frameLength = item.frameBlocks > 1 ? Int(item.frameBlocks) * blockSize : Int(item.members[0].length)
        let verified: Bool = scratch.withUnsafeMutableBytes { out in
            guard frameLength <= out.count else { return false }
            let target = UnsafeMutableRawBufferPointer(rebasing: out[0..<frameLength])
            if item.compressed {
                guard Zstd.decompressExactly(stored, into: target) else { return false }
            } else {
                guard stored.count == frameLength else { return false }
                target.copyMemory(from: stored)
            }
            return item.members.allSatisfy { member in
                let start = Int(member.slot) * blockSize
                guard start + Int(member.length) <= frameLength else { return false }
                return Digest.of(UnsafeRawBufferPointer(rebasing: out[start..<start + Int(member.length)])) == member.digest
            }
        }
        guard verified else {
            throw .corruptData("a block at offset \(item.packOffset) of \(location) does not match its signed hash: the server, or a cache in front of it, sent corrupted or altered data. Nothing unverified was kept; pull again (from another server if it repeats)")
        }
        for member in item.members {
            guard let numbers = byDigest.removeValue(forKey: member.digest) else { continue }
            let start = Int(member.slot) * blockSize
            try scratch.withBytes { bytes throws(ImageSyncError) in
                try assembly.write(UnsafeRawBufferPointer(rebasing: bytes[start..<start + Int(member.length)]), entries: numbers)
            }
        }
    }

    private func report(_ status: PullProgress) { progress?(status) }

    static func checkSpace(at path: String, needed: UInt64) throws(ImageSyncError) {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return }
        let free = UInt64(info.f_bavail) * UInt64(info.f_frsize)
        if free < needed {
            throw .diskFull(path: path, needed: needed - free)
        }
    }
}

/// Splits a range's bytes into the frames it carries, skipping the gaps between them.
struct RangeParser {
    let request: RangeRequest
    private var position: UInt64
    private var next = 0
    private var pending: [UInt8] = []

    init(request: RangeRequest) {
        self.request = request
        position = request.range.lowerBound
    }

    /// Calls `deliver` with each whole frame: its number in the request, the item, the bytes.
    mutating func feed(_ buffer: ByteBuffer, deliver: (Int, RangeRequest.Item, UnsafeRawBufferPointer) throws(ImageSyncError) -> Void) throws(ImageSyncError) {
        var failure: ImageSyncError?
        buffer.withUnsafeReadableBytes { bytes in
            var cursor = 0
            while cursor < bytes.count, next < request.items.count {
                let item = request.items[next]
                if position < item.packOffset {
                    let skip = Int(min(UInt64(bytes.count - cursor), item.packOffset - position))
                    cursor += skip
                    position += UInt64(skip)
                    continue
                }
                let wanted = Int(item.storedLength) - pending.count
                let take = min(wanted, bytes.count - cursor)
                if pending.isEmpty && take == Int(item.storedLength) {
                    // The whole block is in this buffer: no copy.
                    do throws(ImageSyncError) {
                        try deliver(next, item, UnsafeRawBufferPointer(rebasing: bytes[cursor..<cursor + take]))
                    } catch { failure = error; return }
                } else {
                    pending.append(contentsOf: bytes[cursor..<cursor + take])
                    if pending.count == Int(item.storedLength) {
                        let whole = pending
                        pending.removeAll(keepingCapacity: true)
                        do throws(ImageSyncError) {
                            try whole.withBytes { buffer throws(ImageSyncError) in try deliver(next, item, buffer) }
                        } catch { failure = error; return }
                    }
                }
                cursor += take
                position += UInt64(take)
                if pending.isEmpty && position >= item.packOffset + UInt64(item.storedLength) { next += 1 }
            }
            position += UInt64(bytes.count - cursor)
        }
        if let failure { throw failure }
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body with typed throws.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(ImageSyncError) -> R) throws(ImageSyncError) -> R {
        var result: Result<R, ImageSyncError>!
        withUnsafeBytes { bytes in
            result = Result { () throws(ImageSyncError) in try body(bytes) }
        }
        return try result.get()
    }
}
