import Crypto
import Foundation
import VirtualDisk

/// Writes one pack file: blocks appended one after another, hashed as they go, then fsynced
/// and renamed to its content address. Until then it is a temporary file nobody names.
final class PackWriter {
    private let directory: URL
    private let limit: Int
    private var descriptor: Int32 = -1
    private var temporaryPath = ""
    private var hasher = SHA256()
    private var buffer: [UInt8] = []
    private(set) var size: UInt64 = 0

    init(directory: URL, limit: Int) throws(ImageSyncError) {
        self.directory = directory
        self.limit = limit
    }

    deinit {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            unlink(temporaryPath)
        }
    }

    var isFull: Bool { size >= UInt64(limit) }

    /// Appends `bytes`; returns their offset in the pack.
    func append(_ bytes: UnsafeRawBufferPointer) throws(ImageSyncError) -> UInt64 {
        if descriptor < 0 {
            temporaryPath = directory.path + "/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).pack"
            descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw .fromErrno(path: temporaryPath, operation: "create") }
            hasher = SHA256()
            size = 0
        }
        let offset = size
        hasher.update(bufferPointer: bytes)
        buffer.append(contentsOf: bytes)
        size += UInt64(bytes.count)
        if buffer.count >= 4 << 20 { try flush() }
        return offset
    }

    private func flush() throws(ImageSyncError) {
        let (fd, path) = (descriptor, temporaryPath)
        try buffer.withBytes { bytes throws(ImageSyncError) in try FileIO.writeAll(fd, bytes, path: path) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Finishes the pack; `nil` when nothing was appended.
    func close() throws(ImageSyncError) -> Digest? {
        guard descriptor >= 0 else { return nil }
        try flush()
        guard fsync(descriptor) == 0 else { throw .fromErrno(path: temporaryPath, operation: "fsync") }
        Glibc.close(descriptor)
        descriptor = -1
        let digest = Digest(hasher.finalize())
        let final = directory.appendingPathComponent("\(digest.hex).pack").path
        guard rename(temporaryPath, final) == 0 else {
            let error = ImageSyncError.fromErrno(path: final, operation: "rename into place")
            unlink(temporaryPath)
            throw error
        }
        AtomicFile.syncDirectory(directory.path)
        return digest
    }
}

/// A batch of blocks read in order, zero-checked and hashed on every core; then the blocks new to
/// the repository are compressed, in runs, into frames (also on every core).
struct BlockBatch {
    let capacity: Int
    let blockSize: Int
    private(set) var count = 0
    private var data: [UInt8]
    var offsets: [UInt64]
    var lengths: [Int]
    var digests: [Digest]
    var isZero: [Bool]

    /// What goes into a pack for some of the batch's blocks.
    struct Frame {
        /// Slots of the blocks it holds, in order.
        var slots: [Int]
        /// The stored bytes: a zstd frame, or one raw block.
        var bytes: [UInt8]
        var compressed: Bool
    }

    init(capacity: Int, blockSize: Int) {
        self.capacity = capacity
        self.blockSize = blockSize
        data = [UInt8](repeating: 0, count: capacity * blockSize)
        offsets = Array(repeating: 0, count: capacity)
        lengths = Array(repeating: 0, count: capacity)
        digests = Array(repeating: Digest.of([UInt8]()), count: capacity)
        isZero = Array(repeating: true, count: capacity)
    }

    mutating func reset() { count = 0 }

    mutating func read(from image: any DiskImage, at offset: UInt64, length: Int) throws(VirtualDiskError) {
        let slot = count
        var failure: VirtualDiskError?
        data.withUnsafeMutableBytes { all in
            let target = UnsafeMutableRawBufferPointer(rebasing: all[slot * blockSize..<slot * blockSize + length])
            do throws(VirtualDiskError) { try image.read(at: offset, into: target) } catch { failure = error }
        }
        if let failure { throw failure }
        offsets[slot] = offset
        lengths[slot] = length
        count += 1
    }

    /// Zero check and SHA-256 for every block, in parallel.
    mutating func hash() {
        let count = self.count
        let blockSize = self.blockSize
        let results = UnsafeMutableBufferPointer<(Digest, Bool)>.allocate(capacity: count)
        defer { results.deallocate() }
        data.withUnsafeBytes { all in
            let lengths = self.lengths
            // Each iteration touches only its own slot of both buffers.
            nonisolated(unsafe) let input = all
            nonisolated(unsafe) let results = results
            DispatchQueue.concurrentPerform(iterations: count) { slot in
                let block = UnsafeRawBufferPointer(rebasing: input[slot * blockSize..<slot * blockSize + lengths[slot]])
                let zero = BlockBatch.allZero(block)
                (results.baseAddress! + slot).initialize(to: (zero ? Digest.of([UInt8]()) : Digest.of(block), zero))
            }
        }
        for slot in 0..<count { (digests[slot], isZero[slot]) = results[slot] }
        results.baseAddress!.deinitialize(count: count)
    }

    /// Compresses the blocks in `slots` (in order) into frames: runs of whole blocks as one zstd
    /// frame each, within the index's limits; a run that does not shrink is stored block by
    /// block, and a block that does not shrink raw. Runs of the slots are compressed in parallel.
    func frames(of slots: [Int], level: Int32) -> [Frame] {
        let perFrame = BlockIndex.maximumFrameBlocks(blockSize: blockSize)
        let segmentLength = 2 * perFrame
        let segments = stride(from: 0, to: slots.count, by: segmentLength).map { Array(slots[$0..<min(slots.count, $0 + segmentLength)]) }
        let results = UnsafeMutableBufferPointer<[Frame]>.allocate(capacity: segments.count)
        defer { results.deallocate() }
        data.withUnsafeBytes { all in
            nonisolated(unsafe) let input = all
            nonisolated(unsafe) let results = results
            DispatchQueue.concurrentPerform(iterations: segments.count) { number in
                (results.baseAddress! + number).initialize(to: compress(segments[number], from: input, level: level, perFrame: perFrame))
            }
        }
        let frames = results.flatMap { $0 }
        results.baseAddress!.deinitialize(count: segments.count)
        return frames
    }

    private func compress(_ slots: [Int], from input: UnsafeRawBufferPointer, level: Int32, perFrame: Int) -> [Frame] {
        func block(_ slot: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: input[slot * blockSize..<slot * blockSize + lengths[slot]])
        }
        func alone(_ slot: Int) -> Frame {
            var output: [UInt8] = []
            if let written = Zstd.compress(block(slot), level: level, into: &output) {
                return Frame(slots: [slot], bytes: Array(output[0..<written]), compressed: true)
            }
            return Frame(slots: [slot], bytes: Array(block(slot)), compressed: false)
        }
        let compressor = Zstd.FrameCompressor(level: level, blockSize: blockSize)
        var frames: [Frame] = []
        var run: [Int] = []
        func endRun() {
            guard !run.isEmpty else { return }
            let bytes = compressor.finish()
            if bytes.count < run.count * blockSize {
                frames.append(Frame(slots: run, bytes: bytes, compressed: true))
            } else {
                frames.append(contentsOf: run.map(alone))
            }
            run.removeAll()
        }
        for slot in slots {
            if lengths[slot] < blockSize {
                // The image's short last block travels alone.
                endRun()
                frames.append(alone(slot))
                continue
            }
            if !run.isEmpty, run.count == perFrame || !compressor.fits(maximumStored: BlockIndex.maximumFrameStored) {
                endRun()
            }
            compressor.add(block(slot))
            run.append(slot)
        }
        endRun()
        return frames
    }

    static func allZero(_ block: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let words = block.count / 8
        while index < words {
            if block.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self) != 0 { return false }
            index += 1
        }
        for byte in block[(words * 8)...] where byte != 0 { return false }
        return true
    }
}
