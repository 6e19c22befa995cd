/// A qcow2 header, validated: every offset is aligned and inside the file, every size within
/// what the image's geometry allows, so later code can trust it.
public struct QCOW2Header: Sendable, Equatable {
    public static let magic: UInt32 = 0x5146_49FB
    /// QEMU's own limit on the L1 table (32 MiB), which also bounds our memory.
    static let maximumL1Bytes: UInt64 = 32 << 20
    /// The limit on a snapshot table's size we read.
    static let maximumSnapshotCount: UInt32 = 65536

    public enum CompressionType: UInt8, Sendable {
        case zlib = 0
        case zstd = 1
    }

    public struct IncompatibleFeatures: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let dirty = Self(rawValue: 1 << 0)
        public static let corrupt = Self(rawValue: 1 << 1)
        public static let externalDataFile = Self(rawValue: 1 << 2)
        public static let compressionType = Self(rawValue: 1 << 3)
        public static let extendedL2 = Self(rawValue: 1 << 4)
        static let known: Self = [.dirty, .corrupt, .externalDataFile, .compressionType, .extendedL2]
    }

    public var version: UInt32
    public var clusterBits: UInt32
    public var virtualSize: UInt64
    public var l1Size: UInt32
    public var l1TableOffset: UInt64
    public var refcountTableOffset: UInt64
    public var refcountTableClusters: UInt32
    public var snapshotCount: UInt32
    public var snapshotsOffset: UInt64
    public var incompatibleFeatures: IncompatibleFeatures
    public var compatibleFeatures: UInt64
    public var autoclearFeatures: UInt64
    public var refcountOrder: UInt32
    public var headerLength: UInt32
    public var compressionType: CompressionType
    public var backingFile: String?
    public var backingFormat: String?
    public var externalDataFile: String?
    /// LUKS-encrypted (crypt_method 2): only its metadata is read here.
    public var luks = false

    public var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
    public var hasExtendedL2: Bool { incompatibleFeatures.contains(.extendedL2) }
    /// Entries per L2 table (an extended entry is 16 bytes).
    public var l2Entries: UInt64 { clusterSize / (hasExtendedL2 ? 16 : 8) }
    /// Bytes of guest data one L2 table maps.
    public var bytesPerL2: UInt64 { clusterSize * l2Entries }

    /// Parses the first cluster of a qcow2 file (pass at least 64 KiB or the whole file if
    /// smaller) against the file's size.
    ///
    /// - Parameter allowLUKS: for the snapshot table alone, which a LUKS-encrypted image keeps
    ///   in clear: its header then parses, and `luks` says so. Reading its data still needs
    ///   QEMU and the key.
    static func parse(_ bytes: [UInt8], fileSize: UInt64, path: String, allowLUKS: Bool = false) throws(VirtualDiskError) -> QCOW2Header {
        let reader = ByteReader(bytes, path: path)
        guard try reader.bigEndian(UInt32.self, at: 0, field: "magic") == magic else {
            throw .notFormat(path: path, format: .qcow2)
        }
        let version = try reader.bigEndian(UInt32.self, at: 4, field: "version")
        guard version == 2 || version == 3 else {
            throw .unsupported(path: path, feature: "qcow2 version \(version)")
        }
        let clusterBits = try reader.bigEndian(UInt32.self, at: 20, field: "cluster_bits")
        guard (9...21).contains(clusterBits) else {
            throw reader.corrupt("cluster_bits", at: 20, "\(clusterBits) is outside 9…21 (512 B to 2 MiB clusters)")
        }
        let clusterSize = UInt64(1) << UInt64(clusterBits)
        let cryptMethod = try reader.bigEndian(UInt32.self, at: 32, field: "crypt_method")
        guard cryptMethod == 0 || (cryptMethod == 2 && allowLUKS) else {
            throw .unsupported(path: path, feature: cryptMethod == 2 ? "LUKS encryption (open it through QEMU with its key)" : "legacy AES encryption")
        }
        var header = QCOW2Header(
            version: version,
            clusterBits: clusterBits,
            virtualSize: try reader.bigEndian(UInt64.self, at: 24, field: "size"),
            l1Size: try reader.bigEndian(UInt32.self, at: 36, field: "l1_size"),
            l1TableOffset: try reader.bigEndian(UInt64.self, at: 40, field: "l1_table_offset"),
            refcountTableOffset: try reader.bigEndian(UInt64.self, at: 48, field: "refcount_table_offset"),
            refcountTableClusters: try reader.bigEndian(UInt32.self, at: 56, field: "refcount_table_clusters"),
            snapshotCount: try reader.bigEndian(UInt32.self, at: 60, field: "nb_snapshots"),
            snapshotsOffset: try reader.bigEndian(UInt64.self, at: 64, field: "snapshots_offset"),
            incompatibleFeatures: [], compatibleFeatures: 0, autoclearFeatures: 0,
            refcountOrder: 4, headerLength: 72, compressionType: .zlib
        )
        if version == 3 {
            header.incompatibleFeatures = IncompatibleFeatures(rawValue: try reader.bigEndian(UInt64.self, at: 72, field: "incompatible_features"))
            header.compatibleFeatures = try reader.bigEndian(UInt64.self, at: 80, field: "compatible_features")
            header.autoclearFeatures = try reader.bigEndian(UInt64.self, at: 88, field: "autoclear_features")
            header.refcountOrder = try reader.bigEndian(UInt32.self, at: 96, field: "refcount_order")
            header.headerLength = try reader.bigEndian(UInt32.self, at: 100, field: "header_length")
            guard header.headerLength >= 104, header.headerLength % 8 == 0, UInt64(header.headerLength) <= clusterSize else {
                throw reader.corrupt("header_length", at: 100, "\(header.headerLength) must be a multiple of 8 from 104 to the cluster size")
            }
            let unknown = header.incompatibleFeatures.subtracting(.known)
            guard unknown.isEmpty else {
                throw .unsupported(path: path, feature: "incompatible qcow2 features 0x\(String(unknown.rawValue, radix: 16))")
            }
            if header.headerLength > 104 {
                let raw = try reader.slice(104, 1, field: "compression_type").first ?? 0
                guard let type = CompressionType(rawValue: raw) else {
                    throw .unsupported(path: path, feature: "compression type \(raw)")
                }
                header.compressionType = type
            }
            guard (header.compressionType != .zlib) == header.incompatibleFeatures.contains(.compressionType) else {
                throw reader.corrupt("compression_type", at: 104, "the compression type bit and field disagree")
            }
        }
        guard header.refcountOrder <= 6 else {
            throw reader.corrupt("refcount_order", at: 96, "\(header.refcountOrder) is over 6 (64-bit refcounts)")
        }
        if header.hasExtendedL2, clusterBits < 14 {
            throw reader.corrupt("cluster_bits", at: 20, "extended L2 entries need clusters of at least 16 KiB")
        }
        header.luks = cryptMethod == 2
        try header.parseExtensions(reader, clusterSize: clusterSize)
        try header.parseBackingFile(reader, clusterSize: clusterSize)
        try header.validateTables(reader, fileSize: fileSize)
        return header
    }

    private mutating func parseExtensions(_ reader: ByteReader, clusterSize: UInt64) throws(VirtualDiskError) {
        var offset = Int(headerLength)
        let end = Int(min(clusterSize, UInt64(reader.bytes.count)))
        while offset + 8 <= end {
            let type = try reader.bigEndian(UInt32.self, at: offset, field: "header extension type")
            let length = Int(try reader.bigEndian(UInt32.self, at: offset + 4, field: "header extension length"))
            if type == 0 { return }
            guard length <= end - offset - 8 else {
                throw reader.corrupt("header extension 0x\(String(type, radix: 16))", at: offset, "its length \(length) runs past the first cluster")
            }
            let data = Array(try reader.slice(offset + 8, length, field: "header extension data"))
            switch type {
            case 0xE279_2ACA:
                backingFormat = String(decoding: data, as: UTF8.self)
            case 0x4441_5441:
                externalDataFile = String(decoding: data, as: UTF8.self)
            case 0x0537_BE77:
                // The LUKS header's place; only a LUKS image (crypt_method 2) may have one.
                guard luks else { throw .unsupported(path: reader.path, feature: "full disk encryption") }
            default:
                break // Feature names, bitmaps and unknown extensions do not change what reads return.
            }
            offset += 8 + (length + 7) / 8 * 8
        }
    }

    private mutating func parseBackingFile(_ reader: ByteReader, clusterSize: UInt64) throws(VirtualDiskError) {
        let offset = try reader.bigEndian(UInt64.self, at: 8, field: "backing_file_offset")
        guard offset != 0 else { return }
        // Compared one at a time: the sum of a hostile offset and size can overflow.
        guard offset < clusterSize else {
            throw reader.corrupt("backing_file_offset", at: 8, "a backing file name at \(offset) must start inside the first cluster (\(clusterSize) bytes)")
        }
        let size = try reader.bigEndian(UInt32.self, at: 16, field: "backing_file_size")
        guard size > 0, size <= 1023, UInt64(size) <= clusterSize - offset else {
            throw reader.corrupt("backing_file_size", at: 16, "a backing file name of \(size) bytes at \(offset) must be 1 to 1023 bytes inside the first cluster")
        }
        backingFile = String(decoding: try reader.slice(Int(offset), Int(size), field: "backing file name"), as: UTF8.self)
        guard !incompatibleFeatures.contains(.externalDataFile) || autoclearFeatures & 2 == 0 else {
            throw reader.corrupt("backing_file_offset", at: 8, "a raw external data file cannot have a backing file")
        }
    }

    private func validateTables(_ reader: ByteReader, fileSize: UInt64) throws(VirtualDiskError) {
        let needed = virtualSize == 0 ? 0 : (virtualSize - 1) / bytesPerL2 + 1
        guard virtualSize <= (1 << 56) else {
            throw reader.corrupt("size", at: 24, "a virtual size of \(virtualSize) bytes is over 64 PiB")
        }
        guard UInt64(l1Size) >= needed else {
            throw reader.corrupt("l1_size", at: 36, "\(l1Size) entries cannot map \(virtualSize) bytes (\(needed) needed)")
        }
        guard UInt64(l1Size) * 8 <= Self.maximumL1Bytes else {
            throw reader.corrupt("l1_size", at: 36, "an L1 table of \(l1Size) entries is over the 32 MiB limit")
        }
        try requireTable(reader, "l1_table_offset", at: 40, offset: l1TableOffset, bytes: UInt64(l1Size) * 8, fileSize: fileSize)
        try requireTable(reader, "refcount_table_offset", at: 48, offset: refcountTableOffset, bytes: UInt64(refcountTableClusters) * clusterSize, fileSize: fileSize)
        guard snapshotCount <= Self.maximumSnapshotCount else {
            throw reader.corrupt("nb_snapshots", at: 60, "\(snapshotCount) snapshots is over the limit of \(Self.maximumSnapshotCount)")
        }
        if snapshotCount > 0 {
            try requireTable(reader, "snapshots_offset", at: 64, offset: snapshotsOffset, bytes: 40, fileSize: fileSize)
        }
    }

    private func requireTable(_ reader: ByteReader, _ field: String, at fieldOffset: Int, offset: UInt64, bytes: UInt64, fileSize: UInt64) throws(VirtualDiskError) {
        guard bytes == 0 || offset != 0 else {
            throw reader.corrupt(field, at: fieldOffset, "the table is at offset 0, over the header")
        }
        guard offset % clusterSize == 0 else {
            throw reader.corrupt(field, at: fieldOffset, "\(offset) is not aligned to the \(clusterSize)-byte cluster size")
        }
        guard offset <= fileSize, bytes <= fileSize - offset else {
            throw reader.corrupt(field, at: fieldOffset, "a table of \(bytes) bytes at \(offset) runs past the end of the \(fileSize)-byte file")
        }
    }
}
