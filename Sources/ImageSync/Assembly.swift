import Foundation

/// A version being assembled in `NAME/.VERSION.partial/`: the sparse image, the verified index,
/// and a journal of the blocks written and made durable. After a kill the journal says what
/// need not be fetched or hashed again; a journal for another index is discarded.
final class Assembly {
    let directory: URL
    private let imagePath: String
    private let journalPath: String
    private let image: Int32
    private let journal: Int32
    private let index: BlockIndex
    private(set) var done: [Bool]
    /// Written but not yet durable.
    private var unjournaled: [Int] = []

    static let journalMagic: [UInt8] = Array("HRTHJNL1".utf8)

    init(directory: URL, index: BlockIndex, indexData: Data, digest: Digest) throws(ImageSyncError) {
        self.directory = directory
        self.index = index
        imagePath = directory.appendingPathComponent("system.img").path
        journalPath = directory.appendingPathComponent("journal").path
        var digestBytes = [UInt8](repeating: 0, count: 32)
        digestBytes.withUnsafeMutableBytes { digest.write(to: $0, at: 0) }
        let header = Self.journalMagic + digestBytes

        var done = [Bool](repeating: false, count: index.entries.count)
        let existing = FileManager.default.contents(atPath: journalPath).map(Array.init)
        var validLength = 0
        if let existing, existing.count >= header.count, Array(existing[0..<header.count]) == header,
           FileManager.default.fileExists(atPath: imagePath) {
            // Resume: every whole record names a block written and synced before it.
            var offset = header.count
            validLength = header.count
            while offset + 4 <= existing.count {
                let number = Int(UInt32(existing[offset]) | UInt32(existing[offset + 1]) << 8 |
                                 UInt32(existing[offset + 2]) << 16 | UInt32(existing[offset + 3]) << 24)
                guard number < done.count else { validLength = 0; break }
                done[number] = true
                offset += 4
                validLength = offset
            }
        }
        if validLength == 0 {
            // Start afresh: nothing here can be trusted.
            done = [Bool](repeating: false, count: index.entries.count)
            try? FileManager.default.removeItem(at: directory)
            guard mkdir(directory.path, 0o755) == 0 else { throw .fromErrno(path: directory.path, operation: "create") }
        }
        self.done = done
        let indexFile = directory.appendingPathComponent("index")
        if !FileManager.default.fileExists(atPath: indexFile.path) {
            try AtomicFile.write(indexData, to: indexFile)
        }

        image = open(imagePath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard image >= 0 else { throw .fromErrno(path: imagePath, operation: "open") }
        journal = open(journalPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard journal >= 0 else {
            let error = ImageSyncError.fromErrno(path: journalPath, operation: "open")
            close(image)
            throw error
        }
        guard ftruncate(image, off_t(index.virtualSize)) == 0 else {
            throw .fromErrno(path: imagePath, operation: "size", needed: index.virtualSize)
        }
        if validLength == 0 {
            guard ftruncate(journal, 0) == 0 else { throw .fromErrno(path: journalPath, operation: "truncate") }
            let (fd, path) = (journal, journalPath)
            try header.withBytes { bytes throws(ImageSyncError) in try FileIO.writeAll(fd, bytes, at: 0, path: path) }
            guard fsync(journal) == 0 else { throw .fromErrno(path: journalPath, operation: "fsync") }
            AtomicFile.syncDirectory(directory.path)
        } else {
            // Drop a torn last record.
            guard ftruncate(journal, off_t(validLength)) == 0 else { throw .fromErrno(path: journalPath, operation: "truncate") }
        }
    }

    deinit {
        close(image)
        close(journal)
    }

    /// Writes a verified block at every place the index puts it.
    func write(_ bytes: UnsafeRawBufferPointer, entries numbers: [Int]) throws(ImageSyncError) {
        for number in numbers {
            try FileIO.writeAll(image, bytes, at: index.entries[number].block * UInt64(index.blockSize), path: imagePath)
            unjournaled.append(number)
        }
    }

    /// Makes written blocks durable, then records them in the journal.
    func checkpoint() throws(ImageSyncError) {
        guard !unjournaled.isEmpty else { return }
        guard fdatasync(image) == 0 else { throw .fromErrno(path: imagePath, operation: "sync") }
        var records = [UInt8]()
        records.reserveCapacity(unjournaled.count * 4)
        for number in unjournaled {
            let value = UInt32(number)
            records.append(contentsOf: [UInt8(value & 0xff), UInt8(value >> 8 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 24)])
        }
        let end = UInt64(lseek(journal, 0, SEEK_END))
        let (fd, path) = (journal, journalPath)
        try records.withBytes { bytes throws(ImageSyncError) in try FileIO.writeAll(fd, bytes, at: end, path: path) }
        guard fdatasync(journal) == 0 else { throw .fromErrno(path: journalPath, operation: "sync") }
        for number in unjournaled { done[number] = true }
        unjournaled.removeAll(keepingCapacity: true)
    }

    /// Publishes the whole version: `version.json` written, everything synced, and the folder
    /// renamed to its final name in one step.
    func finish(installed: InstalledVersion, into final: URL) throws(ImageSyncError) {
        try checkpoint()
        guard fsync(image) == 0 else { throw .fromErrno(path: imagePath, operation: "sync") }
        let data: Data
        do { data = try Envelope.encoder().encode(installed) } catch { throw .invalidRequest("\(error)") }
        try AtomicFile.write(data, to: directory.appendingPathComponent("version.json"))
        guard rename(directory.path, final.path) == 0 else {
            throw .fromErrno(path: final.path, operation: "rename the assembled version to")
        }
        AtomicFile.syncDirectory(final.deletingLastPathComponent().path)
        unlink(final.appendingPathComponent("journal").path)
    }
}
