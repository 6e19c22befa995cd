import Synchronization

/// One hosted sparse extent (`KDMV` header): monolithicSparse, a sparse part of a split disk,
/// or streamOptimized with compressed grains and markers.
final class VMDKSparseExtent: Sendable {
    static let magic: UInt32 = 0x564D_444B // "KDMV" little-endian
    static let gdAtEnd: UInt64 = 0xFFFF_FFFF_FFFF_FFFF
    /// Grain directories larger than this are refused (4 Mi tables).
    static let maximumDirectoryEntries: UInt64 = 1 << 22

    let file: DiskFile
    let path: String
    let capacitySectors: UInt64
    let grainSectors: UInt64
    let entriesPerTable: UInt64
    let compressed: Bool
    let zeroedGrainEntries: Bool
    let directory: [UInt32]
    let descriptor: String?
    let fileSize: UInt64
    private let tables = Mutex(GrainTableCache())

    var grainBytes: UInt64 { grainSectors * 512 }

    init(file: DiskFile) throws(VirtualDiskError) {
        self.file = file
        self.path = file.path
        fileSize = try file.size()
        var header = try Self.parseHeader(try file.read(count: 512, at: 0, field: "sparse header"), path: path, at: 0)
        if header.gdOffset == Self.gdAtEnd {
            // streamOptimized written in one pass: the real header is the footer, 1024 bytes from the end.
            guard fileSize >= 1536 else {
                throw .corrupt(path: path, field: "gdOffset", offset: 56, reason: "the grain directory is at the end, but the file has no footer")
            }
            header = try Self.parseHeader(try file.read(count: 512, at: fileSize - 1024, field: "footer"), path: path, at: fileSize - 1024)
            guard header.gdOffset != Self.gdAtEnd else {
                throw .corrupt(path: path, field: "footer gdOffset", offset: fileSize - 1024 + 56, reason: "the footer does not locate the grain directory")
            }
        }
        capacitySectors = header.capacity
        grainSectors = header.grainSize
        entriesPerTable = UInt64(header.entriesPerTable)
        compressed = header.flags & (1 << 16) != 0
        zeroedGrainEntries = header.flags & (1 << 2) != 0
        guard grainSectors >= 1, grainSectors <= 2048, grainSectors.nonzeroBitCount == 1 else {
            throw .corrupt(path: path, field: "grainSize", offset: 20, reason: "\(grainSectors) sectors must be a power of two from 1 to 2048")
        }
        guard entriesPerTable >= 1, entriesPerTable <= 4096 else {
            throw .corrupt(path: path, field: "numGTEsPerGT", offset: 44, reason: "\(entriesPerTable) must be 1 to 4096")
        }
        guard capacitySectors <= (1 << 40) else {
            throw .corrupt(path: path, field: "capacity", offset: 12, reason: "\(capacitySectors) sectors is over 512 TiB")
        }
        let tablesNeeded = capacitySectors == 0 ? 0 : (capacitySectors - 1) / (grainSectors * entriesPerTable) + 1
        guard tablesNeeded <= Self.maximumDirectoryEntries else {
            throw .corrupt(path: path, field: "capacity", offset: 12, reason: "the disk needs \(tablesNeeded) grain tables, over the limit of \(Self.maximumDirectoryEntries)")
        }
        guard header.gdOffset < fileSize / 512 else {
            throw .corrupt(path: path, field: "gdOffset", offset: 56, reason: "sector \(header.gdOffset) lies outside the \(fileSize)-byte file")
        }
        let directoryOffset = header.gdOffset * 512
        guard directoryOffset < fileSize, tablesNeeded * 4 <= fileSize - directoryOffset else {
            throw .corrupt(path: path, field: "gdOffset", offset: 56, reason: "a grain directory of \(tablesNeeded) entries at sector \(header.gdOffset) lies outside the file")
        }
        let raw = try file.read(count: Int(tablesNeeded * 4), at: directoryOffset, field: "grain directory")
        let reader = ByteReader(raw, path: path, baseOffset: directoryOffset)
        var directory: [UInt32] = []
        directory.reserveCapacity(Int(tablesNeeded))
        for index in 0..<Int(tablesNeeded) {
            directory.append(try reader.littleEndian(UInt32.self, at: index * 4, field: "grain directory entry \(index)"))
        }
        self.directory = directory
        if header.descriptorOffset > 0, header.descriptorOffset < fileSize / 512, header.descriptorSize > 0, header.descriptorSize <= 2048 {
            let bytes = try file.read(count: Int(header.descriptorSize * 512), at: header.descriptorOffset * 512, field: "embedded descriptor", zeroPastEnd: true)
            descriptor = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        } else {
            descriptor = nil
        }
    }

    struct Header {
        var flags: UInt32
        var capacity: UInt64
        var grainSize: UInt64
        var descriptorOffset: UInt64
        var descriptorSize: UInt64
        var entriesPerTable: UInt32
        var gdOffset: UInt64
    }

    static func parseHeader(_ bytes: [UInt8], path: String, at offset: UInt64) throws(VirtualDiskError) -> Header {
        let reader = ByteReader(bytes, path: path, baseOffset: offset)
        guard try reader.littleEndian(UInt32.self, at: 0, field: "magic") == magic else {
            throw .notFormat(path: path, format: .vmdk)
        }
        let version = try reader.littleEndian(UInt32.self, at: 4, field: "version")
        guard (1...3).contains(version) else {
            throw .unsupported(path: path, feature: "VMDK sparse extent version \(version)")
        }
        let flags = try reader.littleEndian(UInt32.self, at: 8, field: "flags")
        if flags & (1 << 16) != 0 {
            let algorithm = try reader.littleEndian(UInt16.self, at: 77, field: "compressAlgorithm")
            guard algorithm == 1 else {
                throw .unsupported(path: path, feature: "VMDK compression algorithm \(algorithm)")
            }
        }
        return Header(
            flags: flags,
            capacity: try reader.littleEndian(UInt64.self, at: 12, field: "capacity"),
            grainSize: try reader.littleEndian(UInt64.self, at: 20, field: "grainSize"),
            descriptorOffset: try reader.littleEndian(UInt64.self, at: 28, field: "descriptorOffset"),
            descriptorSize: try reader.littleEndian(UInt64.self, at: 36, field: "descriptorSize"),
            entriesPerTable: try reader.littleEndian(UInt32.self, at: 44, field: "numGTEsPerGT"),
            gdOffset: try reader.littleEndian(UInt64.self, at: 56, field: "gdOffset")
        )
    }

    /// The grain table entry for the grain holding extent-relative `offset`: 0 unallocated,
    /// 1 zero (when the extent uses zeroed-grain entries), else the grain's sector.
    func grainEntry(at offset: UInt64) throws(VirtualDiskError) -> UInt32 {
        let grain = offset / grainBytes
        let tableIndex = Int(grain / entriesPerTable)
        guard tableIndex < directory.count else { return 0 }
        let tableSector = directory[tableIndex]
        guard tableSector != 0 else { return 0 }
        let table = try grainTable(at: UInt64(tableSector) * 512, index: tableIndex)
        return table[Int(grain % entriesPerTable)]
    }

    private func grainTable(at offset: UInt64, index: Int) throws(VirtualDiskError) -> [UInt32] {
        if let table = tables.withLock({ $0.tables[offset] }) {
            return table
        }
        let bytes = entriesPerTable * 4
        guard offset < fileSize, bytes <= fileSize - offset else {
            throw .corrupt(path: path, field: "grain directory entry \(index)", offset: 0, reason: "the grain table at \(offset) lies outside the file")
        }
        let raw = try file.read(count: Int(bytes), at: offset, field: "grain table \(index)")
        let table = raw.withUnsafeBytes { buffer in
            (0..<Int(entriesPerTable)).map { UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
        }
        tables.withLock { $0.insert(table, at: offset) }
        return table
    }

    /// Reads grain data at extent-relative `offset` (within one grain) into `buffer`.
    func readGrain(at offset: UInt64, entry: UInt32, into buffer: UnsafeMutableRawBufferPointer) throws(VirtualDiskError) {
        let inGrain = Int(offset % grainBytes)
        let host = UInt64(entry) * 512
        guard compressed else {
            try file.read(into: buffer, at: host + UInt64(inGrain), field: "grain", zeroPastEnd: true)
            return
        }
        // A compressed grain starts with a marker: the grain's LBA (8 bytes) and the data's size (4).
        let marker = try file.read(count: 12, at: host, field: "grain marker")
        let size = UInt64(try ByteReader(marker, path: path, baseOffset: host).littleEndian(UInt32.self, at: 8, field: "grain marker size"))
        guard size > 0, size <= grainBytes * 2 + 4096, host + 12 <= fileSize, size <= fileSize - host - 12 else {
            throw .corrupt(path: path, field: "grain marker size", offset: host + 8, reason: "\(size) bytes of compressed grain do not fit the grain or the file")
        }
        let data = try file.read(count: Int(size), at: host + 12, field: "compressed grain")
        var grain = [UInt8](repeating: 0, count: Int(grainBytes))
        let produced = data.withUnsafeBytes { input in
            grain.withUnsafeMutableBytes { output in Decompression.inflatedCount(input, into: output, windowBits: 15) }
        }
        // The last grain of a disk whose size is not a whole number of grains holds only the rest.
        let grainStart = offset - offset % grainBytes
        let needed = Int(min(grainBytes, capacitySectors * 512 - grainStart))
        guard let produced, produced >= needed else {
            throw .corrupt(path: path, field: "compressed grain", offset: host + 12, reason: "the deflate data does not decompress to a whole grain")
        }
        grain.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[inGrain..<inGrain + buffer.count]))
        }
    }
}

/// Grain tables most recently used; at most 64 are kept (each at most 16 KiB).
struct GrainTableCache {
    var tables: [UInt64: [UInt32]] = [:]
    private var order: [UInt64] = []

    mutating func insert(_ table: [UInt32], at offset: UInt64) {
        if tables.updateValue(table, forKey: offset) == nil { order.append(offset) }
        while order.count > 64 { tables.removeValue(forKey: order.removeFirst()) }
    }
}
