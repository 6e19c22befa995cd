import Foundation

/// What re-reading a pulled version against its signed block index found.
public struct VerifyReport: Codable, Sendable {
    public var name: String
    public var version: String
    public var image: String
    /// Blocks the index names, each re-hashed.
    public var blocks: Int
    /// Bytes hashed (the data blocks); the rest of the image is checked to be zero.
    public var bytesHashed: UInt64
    /// Bytes read in all, holes included.
    public var bytesRead: UInt64
    public var seconds: Double
    /// Of `seconds`, the time spent hashing.
    public var hashSeconds: Double
    /// Block numbers whose data differs from the index (at most the first 100).
    public var damagedBlocks: [UInt64]
    /// How many blocks differ in all.
    public var damaged: Int
    public var intact: Bool { damaged == 0 }
}

extension ImageStore {
    /// Re-reads `name` `version` in order, on one thread, and checks every block against the
    /// index recorded when it was pulled: data blocks by SHA-256, all other blocks for zeros.
    /// `progress` gets bytes read so far and the total.
    public func verify(name: String, version: String,
                       progress: ((UInt64, UInt64) -> Void)? = nil) throws(ImageSyncError) -> VerifyReport {
        try NameRules.check(name, what: "an image name")
        try NameRules.check(version, what: "a version")
        guard let installed = installed().first(where: { $0.name == name && $0.version == version }) else {
            throw .invalidRequest("\(name) \(version) is not in \(root.path) (`hearth image list --into \(root.path)` shows what is)")
        }
        guard let index = index(of: installed) else {
            throw .corruptData("the block index of \(name) \(version) in \(root.path) does not match the one recorded at pull time; remove \(directory(name: name, version: version).path) and pull it again")
        }
        let path = imagePath(name: name, version: version).path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .fromErrno(path: path, operation: "open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .fromErrno(path: path, operation: "inspect") }
        guard UInt64(info.st_size) == index.virtualSize else {
            throw .corruptData("\(path) is \(info.st_size) bytes where its index says \(index.virtualSize); remove \(directory(name: name, version: version).path) and pull it again")
        }
        let blockSize = index.blockSize
        let blockCount = Int((index.virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize))
        var expected = [Int32](repeating: -1, count: blockCount)
        for (number, entry) in index.entries.enumerated() where entry.block < UInt64(blockCount) {
            expected[Int(entry.block)] = Int32(number)
        }

        let started = ContinuousClock.now
        let perRead = max(1, (8 << 20) / blockSize)
        var buffer = [UInt8](repeating: 0, count: perRead * blockSize)
        let zeros = [UInt8](repeating: 0, count: blockSize)
        var report = VerifyReport(name: name, version: version, image: path, blocks: index.entries.count, bytesHashed: 0,
                                  bytesRead: 0, seconds: 0, hashSeconds: 0, damagedBlocks: [], damaged: 0)
        var block = 0
        while block < blockCount {
            let offset = UInt64(block) * UInt64(blockSize)
            let length = Int(min(UInt64(buffer.count), index.virtualSize - offset))
            let read = buffer.withUnsafeMutableBytes { FileIO.readFully(fd, into: $0.baseAddress!, count: length, at: offset) }
            guard read == length else {
                if read < 0 { throw .fromErrno(path: path, operation: "read") }
                throw .corruptData("\(path) ended early at byte \(offset + UInt64(max(read, 0))); remove it and pull again")
            }
            buffer.withUnsafeBytes { bytes in
                zeros.withUnsafeBytes { zero in
                    var start = 0
                    while start < length {
                        let size = min(blockSize, length - start)
                        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<start + size])
                        let good: Bool
                        if expected[block] >= 0 {
                            let entry = index.entries[Int(expected[block])]
                            let hashing = ContinuousClock.now
                            good = Int(entry.length) == size && Digest.of(slice) == entry.digest
                            report.hashSeconds += (ContinuousClock.now - hashing).seconds
                            report.bytesHashed += UInt64(size)
                        } else {
                            good = memcmp(slice.baseAddress!, zero.baseAddress!, size) == 0
                        }
                        if !good {
                            report.damaged += 1
                            if report.damagedBlocks.count < 100 { report.damagedBlocks.append(UInt64(block)) }
                        }
                        start += size
                        block += 1
                    }
                }
            }
            report.bytesRead += UInt64(length)
            progress?(report.bytesRead, index.virtualSize)
        }
        report.seconds = (ContinuousClock.now - started).seconds
        return report
    }
}
