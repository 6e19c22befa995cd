import Foundation

/// A qcow2 image opened for changing in place: refcounts, cluster allocation, L1 and L2
/// tables, the header. Used by resize, snapshots, commit and rebase; not for a disk a running
/// QEMU has open.
///
/// Crash safety comes from ordering: new clusters are counted before anything points at them,
/// and are pointed at before old ones are released, so a crash at any point leaves at worst
/// leaked clusters (which `hearth disk check --repair` reclaims), never a cluster in use twice.
final class QCOW2Editor {
    let file: DiskFile
    private(set) var header: QCOW2Header
    private(set) var headerBytes: [UInt8]
    var l1: [UInt64]
    private(set) var refcountTable: [UInt64]
    /// The first cluster-aligned offset past everything allocated; new clusters go here.
    private var end: UInt64

    var clusterSize: UInt64 { header.clusterSize }
    var path: String { file.path }
    var refcountBits: UInt64 { 1 << UInt64(header.refcountOrder) }
    var entriesPerBlock: UInt64 { clusterSize * 8 / refcountBits }

    /// - Parameter allowDirty: only for check and repair: an image whose lazy refcounts were
    ///   not written back (the dirty bit) has refcounts that cannot be trusted for allocation.
    /// - Parameter allowLUKS: only for snapshots, which move tables and refcounts and never
    ///   read or write guest data (a LUKS image's data is encrypted by guest offset, which they
    ///   keep).
    init(path: String, allowDirty: Bool = false, allowLUKS: Bool = false, writable: Bool = true) throws(VirtualDiskError) {
        file = try DiskFile(path: path, writable: writable)
        header = try QCOW2Image.readHeader(file, allowLUKS: allowLUKS)
        guard allowDirty || !header.incompatibleFeatures.contains(.dirty) else {
            throw .corrupt(path: path, field: "incompatible_features", offset: 72, reason: "the image is marked dirty (QEMU stopped before writing its refcounts back); run 'hearth disk check --repair' first")
        }
        guard !header.incompatibleFeatures.contains(.externalDataFile) else {
            throw .unsupported(path: path, feature: "changing an image with an external data file")
        }
        guard !header.incompatibleFeatures.contains(.corrupt) else {
            throw .corrupt(path: path, field: "incompatible_features", offset: 72, reason: "the image is marked corrupt; repair it with 'hearth disk check --repair' first")
        }
        headerBytes = try file.read(count: Int(header.clusterSize), at: 0, field: "header", zeroPastEnd: true)
        l1 = try QCOW2Image.readL1(file, offset: header.l1TableOffset, count: header.l1Size, field: "L1 table")
        let tableEntries = UInt64(header.refcountTableClusters) * header.clusterSize / 8
        let raw = try file.read(count: Int(tableEntries * 8), at: header.refcountTableOffset, field: "refcount table")
        refcountTable = raw.withUnsafeBytes { buffer in
            (0..<Int(tableEntries)).map { UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) & QCOW2Image.l1OffsetMask }
        }
        let size = try file.size()
        end = (size + header.clusterSize - 1) / header.clusterSize * header.clusterSize
    }

    // MARK: Refcounts

    func refcount(ofCluster cluster: UInt64) throws(VirtualDiskError) -> UInt64 {
        let tableIndex = Int(cluster / entriesPerBlock)
        guard tableIndex < refcountTable.count, refcountTable[tableIndex] != 0 else { return 0 }
        let block = try file.read(count: Int(clusterSize), at: refcountTable[tableIndex], field: "refcount block")
        return Self.entry(block, index: cluster % entriesPerBlock, bits: refcountBits)
    }

    /// The refcount block at `tableIndex`, or `nil` where none is allocated.
    func refcountBlock(_ tableIndex: UInt64) throws(VirtualDiskError) -> [UInt8]? {
        guard tableIndex < UInt64(refcountTable.count), refcountTable[Int(tableIndex)] != 0 else { return nil }
        return try file.read(count: Int(clusterSize), at: refcountTable[Int(tableIndex)], field: "refcount block")
    }

    /// Adds `delta` to the refcount of every cluster in `clusters`.
    func adjustRefcounts(_ clusters: [UInt64], by delta: Int64) throws(VirtualDiskError) {
        // Group by refcount block so each block is read and written once.
        let grouped = Dictionary(grouping: clusters) { $0 / entriesPerBlock }
        for (tableIndex, members) in grouped.sorted(by: { $0.key < $1.key }) {
            try ensureBlock(tableIndex)
            let blockOffset = refcountTable[Int(tableIndex)]
            var block = try file.read(count: Int(clusterSize), at: blockOffset, field: "refcount block")
            for cluster in members {
                let index = cluster % entriesPerBlock
                let current = Self.entry(block, index: index, bits: refcountBits)
                let updated = Int64(current) + delta
                let maximum = refcountBits == 64 ? UInt64.max : (1 << refcountBits) - 1
                guard updated >= 0, UInt64(updated) <= maximum else {
                    throw .corrupt(path: path, field: "refcount of cluster \(cluster)", offset: blockOffset, reason: "it would become \(updated)")
                }
                Self.setEntry(&block, index: index, bits: refcountBits, value: UInt64(updated))
            }
            try file.write(block, at: blockOffset)
        }
    }

    /// Makes sure refcount block `tableIndex` exists, growing the refcount table if needed.
    private func ensureBlock(_ tableIndex: UInt64) throws(VirtualDiskError) {
        if tableIndex >= UInt64(refcountTable.count) {
            try growRefcountTable(toCover: tableIndex)
        }
        guard refcountTable[Int(tableIndex)] == 0 else { return }
        let blockOffset = end
        end += clusterSize
        var block = [UInt8](repeating: 0, count: Int(clusterSize))
        let blockCluster = blockOffset / clusterSize
        if blockCluster / entriesPerBlock == tableIndex {
            // The new block counts itself.
            Self.setEntry(&block, index: blockCluster % entriesPerBlock, bits: refcountBits, value: 1)
        }
        try file.write(block, at: blockOffset)
        refcountTable[Int(tableIndex)] = blockOffset
        try writeRefcountTable()
        if blockCluster / entriesPerBlock != tableIndex {
            try adjustRefcounts([blockCluster], by: 1)
        }
    }

    /// Moves the refcount table to a larger place at the end of the file; the new table and the
    /// blocks that count it are written before the header points at them.
    private func growRefcountTable(toCover tableIndex: UInt64) throws(VirtualDiskError) {
        let perCluster = clusterSize / 8
        var entries = max(UInt64(refcountTable.count) * 2, tableIndex + 1)
        entries = (entries + perCluster - 1) / perCluster * perCluster
        let tableClusters = entries / perCluster
        let tableOffset = end
        end += tableClusters * clusterSize
        var table = refcountTable + [UInt64](repeating: 0, count: Int(entries) - refcountTable.count)
        // Blocks for the new table's own clusters, where the old table had none.
        var newBlocks: [UInt64: [UInt8]] = [:]
        for cluster in (tableOffset / clusterSize)..<(end / clusterSize) {
            let index = cluster / entriesPerBlock
            if table[Int(index)] == 0 && newBlocks[index] == nil {
                newBlocks[index] = [UInt8](repeating: 0, count: Int(clusterSize))
                table[Int(index)] = end
                end += clusterSize
            }
        }
        for (index, _) in newBlocks {
            var block = [UInt8](repeating: 0, count: Int(clusterSize))
            for cluster in (tableOffset / clusterSize)..<(end / clusterSize) where cluster / entriesPerBlock == index {
                Self.setEntry(&block, index: cluster % entriesPerBlock, bits: refcountBits, value: 1)
            }
            try file.write(block, at: table[Int(index)])
        }
        let oldOffset = header.refcountTableOffset
        let oldClusters = UInt64(header.refcountTableClusters)
        refcountTable = table
        header.refcountTableOffset = tableOffset
        header.refcountTableClusters = UInt32(tableClusters)
        try writeRefcountTable()
        // The table's clusters that fall under blocks the old table already had.
        let counted = (tableOffset / clusterSize..<end / clusterSize).filter { cluster in
            !newBlocks.keys.contains(cluster / entriesPerBlock)
        }
        try adjustRefcounts(counted, by: 1)
        try file.sync()
        try writeHeader()
        try adjustRefcounts((0..<oldClusters).map { oldOffset / clusterSize + $0 }, by: -1)
    }

    private func writeRefcountTable() throws(VirtualDiskError) {
        try file.write(Self.bigEndian(refcountTable), at: header.refcountTableOffset)
    }

    // MARK: Allocation

    /// Allocates `count` contiguous clusters at the end of the file, counted once.
    func allocate(clusters count: UInt64) throws(VirtualDiskError) -> UInt64 {
        let offset = end
        end += count * clusterSize
        try file.truncate(to: end)
        try adjustRefcounts((0..<count).map { offset / clusterSize + $0 }, by: 1)
        return offset
    }

    func release(_ offset: UInt64, clusters count: UInt64) throws(VirtualDiskError) {
        try adjustRefcounts((0..<count).map { offset / clusterSize + $0 }, by: -1)
    }

    // MARK: Tables

    func readTable(at offset: UInt64, entries: Int) throws(VirtualDiskError) -> [UInt64] {
        let raw = try file.read(count: entries * 8, at: offset, field: "table")
        return raw.withUnsafeBytes { buffer in
            (0..<entries).map { UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
        }
    }

    func writeTable(_ table: [UInt64], at offset: UInt64) throws(VirtualDiskError) {
        try file.write(Self.bigEndian(table), at: offset)
    }

    /// Host clusters an L2 entry uses (one for a standard cluster, those its bytes span for a
    /// compressed one), empty when it maps nothing.
    func clustersUsed(byL2Entry entry: UInt64) -> [UInt64] {
        if entry & QCOW2Image.compressedFlag != 0 {
            let offsetBits = 62 - (UInt64(header.clusterBits) - 8)
            let host = entry & ((1 << offsetBits) - 1)
            let sectors = (entry & ~QCOW2Image.copiedFlag & ~QCOW2Image.compressedFlag) >> offsetBits
            let last = (host & ~511) + sectors * 512 + 511
            return Array((host / clusterSize)...(last / clusterSize))
        }
        let host = entry & QCOW2Image.l1OffsetMask
        return host == 0 ? [] : [host / clusterSize]
    }

    /// Every cluster an L1 table reaches: its L2 tables and what they map.
    func clustersReached(by table: [UInt64]) throws(VirtualDiskError) -> [UInt64] {
        var clusters: [UInt64] = []
        let width = header.hasExtendedL2 ? 2 : 1
        for entry in table {
            let l2 = entry & QCOW2Image.l1OffsetMask
            guard l2 != 0 else { continue }
            clusters.append(l2 / clusterSize)
            let entries = try readTable(at: l2, entries: Int(clusterSize / 8))
            for index in stride(from: 0, to: entries.count, by: width) {
                clusters += clustersUsed(byL2Entry: entries[index])
            }
        }
        return clusters
    }

    /// Sets bit 63 ("refcount is exactly one") on the active L1 and L2 entries from the
    /// refcounts, as the format requires after snapshots change them.
    func updateCopiedFlags() throws(VirtualDiskError) {
        let width = header.hasExtendedL2 ? 2 : 1
        for index in l1.indices {
            let l2 = l1[index] & QCOW2Image.l1OffsetMask
            guard l2 != 0 else { continue }
            let owned = try refcount(ofCluster: l2 / clusterSize) == 1
            l1[index] = owned ? l2 | QCOW2Image.copiedFlag : l2
            // Shared tables are rewritten too: their entries must lose the flag, or a later
            // copy of the table would let QEMU write in place over a snapshot's cluster.
            var table = try readTable(at: l2, entries: Int(clusterSize / 8))
            for entryIndex in stride(from: 0, to: table.count, by: width) {
                let entry = table[entryIndex]
                guard entry & QCOW2Image.compressedFlag == 0, entry & QCOW2Image.l1OffsetMask != 0 else { continue }
                let single = try refcount(ofCluster: (entry & QCOW2Image.l1OffsetMask) / clusterSize) == 1
                table[entryIndex] = single ? entry | QCOW2Image.copiedFlag : entry & ~QCOW2Image.copiedFlag
            }
            try writeTable(table, at: l2)
        }
        try writeTable(l1, at: header.l1TableOffset)
    }

    // MARK: Header

    /// Clears the dirty bit once the refcounts are right again.
    func markClean() throws(VirtualDiskError) {
        guard header.incompatibleFeatures.contains(.dirty) else { return }
        header.incompatibleFeatures.remove(.dirty)
        headerBytes.putBigEndian(header.incompatibleFeatures.rawValue, at: 72)
        try writeHeader()
    }

    func setSnapshotTable(offset: UInt64, count: UInt32) {
        header.snapshotsOffset = offset
        header.snapshotCount = count
    }

    func setActiveL1(offset: UInt64, size: UInt64) {
        header.l1TableOffset = offset
        header.l1Size = UInt32(l1.count)
        header.virtualSize = size
    }

    /// Grows the virtual size, moving the L1 table to a larger place when it must.
    func resize(to size: UInt64) throws(VirtualDiskError) {
        guard size >= header.virtualSize else {
            throw .invalidRequest("shrinking a disk loses data; \(path) is \(header.virtualSize) bytes and stays at least that")
        }
        guard size % 512 == 0 else {
            throw .invalidRequest("a qcow2 size must be a multiple of 512 bytes")
        }
        let needed = Int((size + header.bytesPerL2 - 1) / header.bytesPerL2)
        guard UInt64(needed) * 8 <= QCOW2Header.maximumL1Bytes else {
            throw .invalidRequest("\(size) bytes is too large for this image's \(clusterSize)-byte clusters")
        }
        if needed > l1.count {
            let capacity = Int((UInt64(l1.count) * 8 + clusterSize - 1) / clusterSize * clusterSize / 8)
            let oldOffset = header.l1TableOffset
            let oldClusters = (UInt64(l1.count) * 8 + clusterSize - 1) / clusterSize
            l1 += [UInt64](repeating: 0, count: needed - l1.count)
            if needed > capacity || l1.count == needed && oldClusters == 0 {
                let offset = try allocate(clusters: (UInt64(needed) * 8 + clusterSize - 1) / clusterSize)
                try writeTable(l1, at: offset)
                try file.sync()
                setActiveL1(offset: offset, size: size)
                try writeHeader()
                if oldClusters > 0 { try release(oldOffset, clusters: oldClusters) }
                return
            }
            try writeTable(l1, at: header.l1TableOffset)
        }
        setActiveL1(offset: header.l1TableOffset, size: size)
        try writeHeader()
    }

    /// Rewrites the header fields this editor changes, keeping the rest of the first cluster.
    func writeHeader() throws(VirtualDiskError) {
        headerBytes.putBigEndian(header.virtualSize, at: 24)
        headerBytes.putBigEndian(header.l1Size, at: 36)
        headerBytes.putBigEndian(header.l1TableOffset, at: 40)
        headerBytes.putBigEndian(header.refcountTableOffset, at: 48)
        headerBytes.putBigEndian(header.refcountTableClusters, at: 56)
        headerBytes.putBigEndian(header.snapshotCount, at: 60)
        headerBytes.putBigEndian(header.snapshotsOffset, at: 64)
        try file.write(Array(headerBytes.prefix(Int(header.headerLength))), at: 0)
        try file.sync()
    }

    /// Replaces the header extensions and backing file name (for rebase).
    func rewriteBacking(name: String?, format: DiskFormat?) throws(VirtualDiskError) {
        var extensions: [UInt8] = []
        if let format {
            let bytes = Array(format.qemuName.utf8)
            extensions += UInt32(0xE279_2ACA).bigEndianBytes + UInt32(bytes.count).bigEndianBytes + bytes
            extensions += [UInt8](repeating: 0, count: (8 - bytes.count % 8) % 8)
        }
        extensions += [UInt8](repeating: 0, count: 8)
        var cluster = Array(headerBytes.prefix(Int(header.headerLength))) + extensions
        if let name {
            let bytes = Array(name.utf8)
            guard bytes.count <= 1023, cluster.count + bytes.count <= Int(clusterSize) else {
                throw .invalidRequest("the backing file name is too long for this image's first cluster")
            }
            cluster.putBigEndian(UInt64(cluster.count), at: 8)
            cluster.putBigEndian(UInt32(bytes.count), at: 16)
            cluster += bytes
        } else {
            cluster.putBigEndian(UInt64(0), at: 8)
            cluster.putBigEndian(UInt32(0), at: 16)
        }
        cluster += [UInt8](repeating: 0, count: Int(clusterSize) - cluster.count)
        headerBytes = cluster
        try file.write(cluster, at: 0)
        try file.sync()
        header.backingFile = name
        header.backingFormat = format?.qemuName
    }

    // MARK: Helpers

    static func entry(_ block: [UInt8], index: UInt64, bits: UInt64) -> UInt64 {
        if bits >= 8 {
            let bytes = Int(bits / 8)
            let start = Int(index) * bytes
            return (0..<bytes).reduce(UInt64(0)) { $0 << 8 | UInt64(block[start + $1]) }
        }
        let bit = index * bits
        return (UInt64(block[Int(bit / 8)]) >> (bit % 8)) & ((1 << bits) - 1)
    }

    static func setEntry(_ block: inout [UInt8], index: UInt64, bits: UInt64, value: UInt64) {
        if bits >= 8 {
            let bytes = Int(bits / 8)
            let start = Int(index) * bytes
            for byte in 0..<bytes {
                block[start + byte] = UInt8(truncatingIfNeeded: value >> UInt64((bytes - 1 - byte) * 8))
            }
            return
        }
        let bit = index * bits
        let mask = UInt8(((1 << bits) - 1) << (bit % 8))
        block[Int(bit / 8)] = (block[Int(bit / 8)] & ~mask) | (UInt8(truncatingIfNeeded: value << (bit % 8)) & mask)
    }

    static func bigEndian(_ values: [UInt64]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: value.bigEndian, toByteOffset: index * 8, as: UInt64.self)
            }
        }
        return bytes
    }
}
