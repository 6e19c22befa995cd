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

/// A batch of blocks read in order, then zero-checked, hashed and compressed on every core.
struct BlockBatch {
    let capacity: Int
    let blockSize: Int
    private(set) var count = 0
    private var data: [UInt8]
    var offsets: [UInt64]
    var lengths: [Int]
    var digests: [Digest]
    var isZero: [Bool]
    private var compressed: [[UInt8]]
    private var compressedLengths: [Int?]

    init(capacity: Int, blockSize: Int) {
        self.capacity = capacity
        self.blockSize = blockSize
        data = [UInt8](repeating: 0, count: capacity * blockSize)
        offsets = Array(repeating: 0, count: capacity)
        lengths = Array(repeating: 0, count: capacity)
        digests = Array(repeating: Digest.of([UInt8]()), count: capacity)
        isZero = Array(repeating: true, count: capacity)
        compressed = Array(repeating: [], count: capacity)
        compressedLengths = Array(repeating: nil, count: capacity)
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

    /// Zero check, SHA-256 and zstd for every block, in parallel.
    mutating func process(level: Int32) {
        let count = self.count
        let blockSize = self.blockSize
        let results = UnsafeMutableBufferPointer<(Digest, Bool, [UInt8], Int?)>.allocate(capacity: count)
        defer { results.deallocate() }
        data.withUnsafeBytes { all in
            let lengths = self.lengths
            // Each iteration touches only its own slot of both buffers.
            nonisolated(unsafe) let input = all
            nonisolated(unsafe) let results = results
            DispatchQueue.concurrentPerform(iterations: count) { slot in
                let block = UnsafeRawBufferPointer(rebasing: input[slot * blockSize..<slot * blockSize + lengths[slot]])
                if BlockBatch.allZero(block) {
                    (results.baseAddress! + slot).initialize(to: (Digest.of([UInt8]()), true, [], nil))
                    return
                }
                var output: [UInt8] = []
                let written = Zstd.compress(block, level: level, into: &output)
                (results.baseAddress! + slot).initialize(to: (Digest.of(block), false, output, written))
            }
        }
        for slot in 0..<count {
            let (digest, zero, output, written) = results[slot]
            digests[slot] = digest
            isZero[slot] = zero
            compressed[slot] = output
            compressedLengths[slot] = written
        }
        results.baseAddress!.deinitialize(count: count)
    }

    /// Appends a block's stored form to `writer`: its zstd frame, or the raw block when that
    /// is not smaller. Returns the offset, the stored length and whether it is compressed.
    func append(_ slot: Int, to writer: PackWriter) throws(ImageSyncError) -> (offset: UInt64, stored: UInt32, compressed: Bool) {
        var result: Result<(UInt64, UInt32, Bool), ImageSyncError> = .failure(.invalidRequest("unreachable"))
        if let length = compressedLengths[slot] {
            compressed[slot].withUnsafeBytes { bytes in
                result = Result { () throws(ImageSyncError) in
                    (try writer.append(UnsafeRawBufferPointer(rebasing: bytes[0..<length])), UInt32(length), true)
                }
            }
        } else {
            let length = lengths[slot]
            data.withUnsafeBytes { bytes in
                result = Result { () throws(ImageSyncError) in
                    (try writer.append(UnsafeRawBufferPointer(rebasing: bytes[slot * blockSize..<slot * blockSize + length])), UInt32(length), false)
                }
            }
        }
        return try result.get()
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
