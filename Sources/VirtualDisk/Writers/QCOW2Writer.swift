import Foundation

/// Writes a qcow2 version 3 image: header, L1 table, then data and L2 tables in the order
/// they arrive, and at the end refcount blocks that count every cluster once. Also makes
/// empty overlays over a backing file.
final class QCOW2Writer: DiskWriter {
    let file: DiskFile
    /// Data clusters go around the page cache where aligned; metadata through it.
    private let data: DirectWriter
    let virtualSize: UInt64
    let clusterBits: UInt32
    let backingFile: String?
    let backingFormat: DiskFormat?
    var granularity: UInt64 { clusterSize }

    private let clusterSize: UInt64
    private let l2Entries: UInt64
    private let l1Offset: UInt64
    private var l1: [UInt64]
    /// L2 tables not yet written, by L1 index; flushed when more than a few are open.
    private var openTables: [Int: [UInt64]] = [:]
    private var nextFree: UInt64

    static let maximumOpenTables = 16

    /// - Parameters:
    ///   - clusterSize: a power of two from 512 B to 2 MiB.
    init(file: DiskFile, virtualSize: UInt64, clusterSize: UInt64 = 64 << 10, backingFile: String? = nil, backingFormat: DiskFormat? = nil) throws(VirtualDiskError) {
        guard clusterSize >= 512, clusterSize <= 2 << 20, clusterSize.nonzeroBitCount == 1 else {
            throw .invalidRequest("a qcow2 cluster size must be a power of two from 512 B to 2 MiB, not \(clusterSize)")
        }
        guard virtualSize % 512 == 0 else {
            throw .invalidRequest("a qcow2 virtual size must be a multiple of 512 bytes, not \(virtualSize)")
        }
        if let backingFile, backingFile.utf8.count > 1023 {
            throw .invalidRequest("a backing file name is limited to 1023 bytes")
        }
        self.file = file
        data = DirectWriter(file: file)
        self.virtualSize = virtualSize
        self.clusterSize = clusterSize
        self.clusterBits = UInt32(clusterSize.trailingZeroBitCount)
        self.l2Entries = clusterSize / 8
        self.backingFile = backingFile
        self.backingFormat = backingFormat
        let l1Entries = virtualSize == 0 ? 0 : (virtualSize - 1) / (clusterSize * l2Entries) + 1
        guard l1Entries * 8 <= QCOW2Header.maximumL1Bytes else {
            throw .invalidRequest("\(virtualSize) bytes is too large for \(clusterSize)-byte clusters; use larger clusters")
        }
        self.l1 = [UInt64](repeating: 0, count: Int(l1Entries))
        self.l1Offset = clusterSize
        let l1Clusters = max(1, (l1Entries * 8 + clusterSize - 1) / clusterSize)
        self.nextFree = clusterSize * (1 + l1Clusters)
        try file.truncate(to: nextFree)
    }

    func write(at offset: UInt64, _ buffer: UnsafeRawBufferPointer) throws(VirtualDiskError) {
        guard offset % clusterSize == 0, offset < virtualSize else {
            throw .invalidRequest("qcow2 writes must start on a cluster boundary inside the disk")
        }
        // Map every cluster first, then write runs that are contiguous in the file at once.
        var done = 0
        var run: (host: UInt64, from: Int, to: Int)?
        while done < buffer.count {
            let guest = offset + UInt64(done)
            let length = Int(min(clusterSize, UInt64(buffer.count - done)))
            let cluster = guest / clusterSize
            let l1Index = Int(cluster / l2Entries)
            var table = try openTable(l1Index)
            var host = table[Int(cluster % l2Entries)] & QCOW2Image.l1OffsetMask
            if host == 0 {
                host = allocate()
                table[Int(cluster % l2Entries)] = host | QCOW2Image.copiedFlag
                openTables[l1Index] = table
            }
            if let current = run, current.host + UInt64(current.to - current.from) == host {
                run = (current.host, current.from, done + length)
            } else {
                if let current = run {
                    try data.write(UnsafeRawBufferPointer(rebasing: buffer[current.from..<current.to]), at: current.host)
                }
                run = (host, done, done + length)
            }
            done += length
        }
        if let current = run {
            try data.write(UnsafeRawBufferPointer(rebasing: buffer[current.from..<current.to]), at: current.host)
        }
    }

    /// Marks the cluster at `offset` as reading zeros without allocating it (qcow2 v3), so it
    /// hides whatever a backing file holds there.
    func markZero(at offset: UInt64) throws(VirtualDiskError) {
        let cluster = offset / clusterSize
        let l1Index = Int(cluster / l2Entries)
        var table = try openTable(l1Index)
        table[Int(cluster % l2Entries)] = 1
        openTables[l1Index] = table
    }

    private func allocate() -> UInt64 {
        defer { nextFree += clusterSize }
        return nextFree
    }

    private func openTable(_ l1Index: Int) throws(VirtualDiskError) -> [UInt64] {
        if let table = openTables[l1Index] { return table }
        if openTables.count >= Self.maximumOpenTables {
            try flushTables()
        }
        var table = [UInt64](repeating: 0, count: Int(l2Entries))
        if l1[l1Index] != 0 {
            // Written once already and flushed: read it back.
            let bytes = try file.read(count: Int(clusterSize), at: l1[l1Index] & QCOW2Image.l1OffsetMask, field: "L2 table")
            bytes.withUnsafeBytes { raw in
                for index in table.indices {
                    table[index] = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
                }
            }
        }
        openTables[l1Index] = table
        return table
    }

    private func flushTables() throws(VirtualDiskError) {
        for (l1Index, table) in openTables.sorted(by: { $0.key < $1.key }) {
            if l1[l1Index] == 0 {
                l1[l1Index] = allocate() | QCOW2Image.copiedFlag
            }
            try file.write(Self.bigEndianBytes(table), at: l1[l1Index] & QCOW2Image.l1OffsetMask)
        }
        openTables.removeAll()
    }

    func finish() throws(VirtualDiskError) {
        try flushTables()
        try file.write(Self.bigEndianBytes(l1), at: l1Offset)
        let (refcountOffset, refcountClusters) = try writeRefcounts()
        try file.sync()
        // The header last: until it is written, the file is not a qcow2 image at all.
        try file.write(header(refcountTableOffset: refcountOffset, refcountTableClusters: refcountClusters), at: 0)
        try file.sync()
    }

    /// Every cluster up to the end of the file is used once, the refcount structures included.
    private func writeRefcounts() throws(VirtualDiskError) -> (UInt64, UInt32) {
        let used = nextFree / clusterSize
        let perBlock = clusterSize * 8 / 16
        let perTableCluster = clusterSize / 8
        var blocks: UInt64 = 0
        var tableClusters: UInt64 = 0
        while true {
            let total = used + blocks + tableClusters
            let neededBlocks = (total + perBlock - 1) / perBlock
            let neededTable = max(1, (neededBlocks + perTableCluster - 1) / perTableCluster)
            if neededBlocks == blocks && neededTable == tableClusters { break }
            blocks = neededBlocks
            tableClusters = neededTable
        }
        let total = used + blocks + tableClusters
        let tableOffset = nextFree
        let firstBlock = tableOffset + tableClusters * clusterSize
        var table = [UInt64](repeating: 0, count: Int(tableClusters * perTableCluster))
        for block in 0..<blocks {
            table[Int(block)] = firstBlock + block * clusterSize
            var counts = [UInt8](repeating: 0, count: Int(clusterSize))
            let first = block * perBlock
            for cluster in first..<min(first + perBlock, total) {
                counts[Int((cluster - first) * 2 + 1)] = 1 // 16-bit big-endian 1
            }
            try file.write(counts, at: firstBlock + block * clusterSize)
        }
        try file.write(Self.bigEndianBytes(table), at: tableOffset)
        nextFree = firstBlock + blocks * clusterSize
        try file.truncate(to: nextFree)
        return (tableOffset, UInt32(tableClusters))
    }

    private func header(refcountTableOffset: UInt64, refcountTableClusters: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 112)
        bytes.putBigEndian(QCOW2Header.magic, at: 0)
        bytes.putBigEndian(UInt32(3), at: 4)
        bytes.putBigEndian(clusterBits, at: 20)
        bytes.putBigEndian(virtualSize, at: 24)
        bytes.putBigEndian(UInt32(l1.count), at: 36)
        bytes.putBigEndian(l1Offset, at: 40)
        bytes.putBigEndian(refcountTableOffset, at: 48)
        bytes.putBigEndian(refcountTableClusters, at: 56)
        bytes.putBigEndian(UInt32(4), at: 96) // refcount_order: 16-bit refcounts
        bytes.putBigEndian(UInt32(112), at: 100) // header_length
        // Header extensions: the backing format, then the end marker.
        if let backingFormat {
            let name = Array(backingFormat.qemuName.utf8)
            bytes += UInt32(0xE279_2ACA).bigEndianBytes + UInt32(name.count).bigEndianBytes + name
            bytes += [UInt8](repeating: 0, count: (8 - name.count % 8) % 8)
        }
        bytes += [UInt8](repeating: 0, count: 8)
        if let backingFile {
            let name = Array(backingFile.utf8)
            bytes.putBigEndian(UInt64(bytes.count), at: 8)
            bytes.putBigEndian(UInt32(name.count), at: 16)
            bytes += name
        }
        return bytes
    }

    private static func bigEndianBytes(_ values: [UInt64]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: value.bigEndian, toByteOffset: index * 8, as: UInt64.self)
            }
        }
        return bytes
    }
}

extension DiskFormat {
    /// The name QEMU uses for the format (`vpc` for VHD).
    public var qemuName: String {
        self == .vhd ? "vpc" : rawValue
    }
}
