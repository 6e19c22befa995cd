import Synchronization

/// A qcow2 image (version 2 or 3) opened for reading: every cluster size, backing files, zero
/// clusters, zlib and zstd compressed clusters, extended L2 entries (subclusters), external
/// data files and internal snapshots. Memory stays bounded: the L1 table is at most 32 MiB and
/// at most ``l2CacheCapacity`` L2 tables are kept.
public final class QCOW2Image: DiskImage {
    public let format = DiskFormat.qcow2
    public let path: String
    public let header: QCOW2Header
    public let virtualSize: UInt64
    public let backing: (any DiskImage)?
    /// Which snapshot this view shows, `nil` for the active state.
    public let snapshot: QCOW2Snapshot?

    let file: DiskFile
    let fileSize: UInt64
    let dataFile: DiskFile
    let l1: [UInt64]
    private let cache = Mutex(L2Cache())

    static let l1OffsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00
    static let copiedFlag: UInt64 = 1 << 63
    static let compressedFlag: UInt64 = 1 << 62
    /// L2 tables kept in memory: 32 tables of at most 2 MiB.
    static let l2CacheCapacity = 32

    init(file: DiskFile, header: QCOW2Header, l1: [UInt64], virtualSize: UInt64, backing: (any DiskImage)?, dataFile: DiskFile?, snapshot: QCOW2Snapshot?) throws(VirtualDiskError) {
        self.file = file
        self.path = file.path
        self.header = header
        self.l1 = l1
        self.virtualSize = virtualSize
        self.backing = backing
        self.dataFile = dataFile ?? file
        self.snapshot = snapshot
        self.fileSize = try file.size()
    }

    /// Reads the header and L1 table. Backing and data files are opened by ``DiskOpener``.
    static func readHeader(_ file: DiskFile, allowLUKS: Bool = false) throws(VirtualDiskError) -> QCOW2Header {
        let size = try file.size()
        let head = try file.read(count: Int(min(size, 2 << 20)), at: 0, field: "header")
        return try QCOW2Header.parse(head, fileSize: size, path: file.path, allowLUKS: allowLUKS)
    }

    static func readL1(_ file: DiskFile, offset: UInt64, count: UInt32, field: String) throws(VirtualDiskError) -> [UInt64] {
        let bytes = try file.read(count: Int(count) * 8, at: offset, field: field)
        let reader = ByteReader(bytes, path: file.path, baseOffset: offset)
        var table = [UInt64](repeating: 0, count: Int(count))
        for index in 0..<Int(count) {
            table[index] = try reader.bigEndian(UInt64.self, at: index * 8, field: field)
        }
        return table
    }

    // MARK: Mapping

    /// What one guest (sub)cluster maps to.
    enum Mapping: Equatable {
        case unallocated
        case zero
        /// Stored at `hostOffset` in the data file (offset of the guest position, not the cluster).
        case data(hostOffset: UInt64)
        /// A compressed cluster: `hostOffset` and `length` of the compressed bytes.
        case compressed(hostOffset: UInt64, length: Int)
    }

    /// The mapping at `offset` and how many bytes from `offset` share it (to the end of the
    /// (sub)cluster).
    func mapping(at offset: UInt64) throws(VirtualDiskError) -> (Mapping, UInt64) {
        let clusterSize = header.clusterSize
        let clusterIndex = offset >> UInt64(header.clusterBits)
        let l1Index = Int(clusterIndex / header.l2Entries)
        let l2Index = Int(clusterIndex % header.l2Entries)
        let inCluster = offset & (clusterSize - 1)
        guard l1Index < l1.count else {
            return (.unallocated, clusterSize - inCluster)
        }
        let l2Offset = l1[l1Index] & Self.l1OffsetMask
        guard l2Offset != 0 else {
            // The whole L2 range is unallocated.
            let coverage = header.bytesPerL2
            return (.unallocated, coverage - (offset % coverage))
        }
        let table = try l2Table(at: l2Offset, l1Index: l1Index)
        let width = header.hasExtendedL2 ? 2 : 1
        let entry = table[l2Index * width]
        if entry & Self.compressedFlag != 0 {
            let offsetBits = 62 - (UInt64(header.clusterBits) - 8)
            let hostOffset = entry & ((1 << offsetBits) - 1)
            let sectors = (entry & ~Self.copiedFlag & ~Self.compressedFlag) >> offsetBits
            let length = Int((sectors + 1) * 512 - (hostOffset & 511))
            return (.compressed(hostOffset: hostOffset, length: length), clusterSize - inCluster)
        }
        let hostCluster = entry & Self.l1OffsetMask
        let usesExternalData = header.incompatibleFeatures.contains(.externalDataFile)
        let allocated = hostCluster != 0 || (usesExternalData && entry & Self.copiedFlag != 0)
        if allocated, hostCluster % clusterSize != 0 {
            throw corrupt("L2 entry \(l2Index)", at: l2Offset + UInt64(l2Index * width * 8), "host offset \(hostCluster) is not cluster-aligned")
        }
        guard header.hasExtendedL2 else {
            if entry & 1 != 0, header.version >= 3 {
                return (.zero, clusterSize - inCluster)
            }
            return (allocated ? .data(hostOffset: hostCluster + inCluster) : .unallocated, clusterSize - inCluster)
        }
        let bitmap = table[l2Index * 2 + 1]
        let subclusterSize = clusterSize / 32
        let subcluster = inCluster / subclusterSize
        let allocatedBit = (bitmap >> subcluster) & 1 != 0
        let zeroBit = (bitmap >> (32 + subcluster)) & 1 != 0
        let remaining = subclusterSize - (inCluster % subclusterSize)
        if allocatedBit && zeroBit {
            throw corrupt("L2 bitmap \(l2Index)", at: l2Offset + UInt64(l2Index * 16 + 8), "subcluster \(subcluster) is both allocated and zero")
        }
        if allocatedBit {
            guard allocated else {
                throw corrupt("L2 entry \(l2Index)", at: l2Offset + UInt64(l2Index * 16), "an allocated subcluster has no host cluster")
            }
            return (.data(hostOffset: hostCluster + inCluster), remaining)
        }
        return (zeroBit ? .zero : .unallocated, remaining)
    }

    private func l2Table(at offset: UInt64, l1Index: Int) throws(VirtualDiskError) -> [UInt64] {
        if let table = cache.withLock({ $0.table(at: offset) }) {
            return table
        }
        guard offset % header.clusterSize == 0 else {
            throw corrupt("L1 entry \(l1Index)", at: header.l1TableOffset + UInt64(l1Index * 8), "L2 table offset \(offset) is not cluster-aligned")
        }
        guard offset < fileSize, header.clusterSize <= fileSize - offset else {
            throw corrupt("L1 entry \(l1Index)", at: header.l1TableOffset + UInt64(l1Index * 8), "L2 table at \(offset) lies past the end of the file")
        }
        let bytes = try file.read(count: Int(header.clusterSize), at: offset, field: "L2 table")
        var table = [UInt64](repeating: 0, count: Int(header.clusterSize / 8))
        bytes.withUnsafeBytes { raw in
            for index in table.indices {
                table[index] = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
            }
        }
        cache.withLock { $0.insert(table, at: offset, capacity: Self.l2CacheCapacity) }
        return table
    }

    func corrupt(_ field: String, at offset: UInt64, _ reason: String) -> VirtualDiskError {
        .corrupt(path: path, field: field, offset: offset, reason: reason)
    }

    // MARK: DiskImage

    public func extent(at offset: UInt64, maxLength: UInt64) throws(VirtualDiskError) -> Extent {
        let limit = min(maxLength, virtualSize - offset)
        var (first, length) = try mapping(at: offset)
        length = min(length, limit)
        let kind = Self.kind(first)
        // Join following (sub)clusters of the same kind.
        while length < limit {
            let (next, nextLength) = try mapping(at: offset + length)
            guard Self.kind(next) == kind else { break }
            length = min(limit, length + nextLength)
        }
        return Extent(offset: offset, length: length, kind: kind)
    }

    static func kind(_ mapping: Mapping) -> ExtentKind {
        switch mapping {
        case .unallocated: .unallocated
        case .zero: .zero
        case .data, .compressed: .data
        }
    }

    public func readData(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VirtualDiskError) {
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let (mapping, available) = try self.mapping(at: position)
            var length = Int(min(available, UInt64(buffer.count - done)))
            switch mapping {
            case .data(let hostOffset):
                // Join clusters that are contiguous on the host too, for one large read.
                while done + length < buffer.count {
                    let (next, nextAvailable) = try self.mapping(at: position + UInt64(length))
                    guard case .data(let nextHost) = next, nextHost == hostOffset + UInt64(length) else { break }
                    length += Int(min(nextAvailable, UInt64(buffer.count - done - length)))
                }
                try dataFile.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + length]), at: hostOffset, zeroPastEnd: true)
            case .compressed(let hostOffset, let compressedLength):
                let cluster = try decompressCluster(hostOffset: hostOffset, length: compressedLength, guestOffset: position)
                let inCluster = Int(position & (header.clusterSize - 1))
                cluster.withUnsafeBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + length]).copyMemory(from: UnsafeRawBufferPointer(rebasing: source[inCluster..<inCluster + length]))
                }
            case .zero, .unallocated:
                throw .invalidRequest("readData at \(position) of \(path): the range is not data")
            }
            done += length
        }
    }

    private func decompressCluster(hostOffset: UInt64, length: Int, guestOffset: UInt64) throws(VirtualDiskError) -> [UInt8] {
        let compressed = try file.read(count: length, at: hostOffset, field: "compressed cluster", zeroPastEnd: true)
        var cluster = [UInt8](repeating: 0, count: Int(header.clusterSize))
        let ok = compressed.withUnsafeBytes { input in
            cluster.withUnsafeMutableBytes { output in
                switch header.compressionType {
                case .zlib: Decompression.inflate(input, into: output, windowBits: -12)
                case .zstd: Decompression.zstd(input, into: output)
                }
            }
        }
        guard ok else {
            throw corrupt("compressed cluster for guest offset \(guestOffset)", at: hostOffset, "the \(header.compressionType) data does not decompress to a whole cluster")
        }
        return cluster
    }
}

/// The L2 tables most recently used, evicted oldest first.
struct L2Cache {
    private var tables: [UInt64: [UInt64]] = [:]
    private var order: [UInt64] = []

    mutating func table(at offset: UInt64) -> [UInt64]? {
        tables[offset]
    }

    mutating func insert(_ table: [UInt64], at offset: UInt64, capacity: Int) {
        if tables.updateValue(table, forKey: offset) == nil {
            order.append(offset)
        }
        while order.count > capacity {
            tables.removeValue(forKey: order.removeFirst())
        }
    }

    mutating func removeAll() {
        tables.removeAll()
        order.removeAll()
    }
}
