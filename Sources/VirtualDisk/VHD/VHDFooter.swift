/// The 512-byte VHD footer (and its copy at the start of dynamic disks). Big-endian.
struct VHDFooter: Equatable {
    enum DiskType: UInt32 {
        case fixed = 2
        case dynamic = 3
        case differencing = 4
    }

    static let cookie = Array("conectix".utf8)
    /// The largest CHS geometry; images this size use `currentSize` whatever their creator.
    static let maximumGeometrySectors: UInt64 = 65535 * 16 * 255

    var dataOffset: UInt64
    var timestamp: UInt32
    var creatorApplication: [UInt8]
    var originalSize: UInt64
    var currentSize: UInt64
    var cylinders: UInt16
    var heads: UInt8
    var sectorsPerTrack: UInt8
    var diskType: DiskType
    var uniqueID: [UInt8]

    /// The size the guest sees, as QEMU and Hyper-V agree on it: Virtual PC's creators size
    /// a disk by its CHS geometry, the others by `currentSize`.
    var virtualSize: UInt64 {
        let geometry = UInt64(cylinders) * UInt64(heads) * UInt64(sectorsPerTrack)
        let sizeByCurrent = [Array("win ".utf8), Array("qem2".utf8), Array("d2v ".utf8), Array("CTXS".utf8), [0x74, 0x61, 0x70, 0x00]]
        let usesCHS = !sizeByCurrent.contains(creatorApplication)
        if !usesCHS || geometry == Self.maximumGeometrySectors {
            return currentSize
        }
        return geometry * 512
    }

    static func parse(_ bytes: [UInt8], path: String, at offset: UInt64) throws(VirtualDiskError) -> VHDFooter {
        let reader = ByteReader(bytes, path: path, baseOffset: offset)
        guard Array(try reader.slice(0, 8, field: "cookie")) == cookie else {
            throw .notFormat(path: path, format: .vhd)
        }
        let stored = try reader.bigEndian(UInt32.self, at: 64, field: "checksum")
        guard stored == checksum(bytes, skipping: 64) else {
            throw reader.corrupt("checksum", at: 64, "the footer's checksum does not match its contents")
        }
        let rawType = try reader.bigEndian(UInt32.self, at: 60, field: "disk type")
        guard let type = DiskType(rawValue: rawType) else {
            throw .unsupported(path: path, feature: "VHD disk type \(rawType)")
        }
        return VHDFooter(
            dataOffset: try reader.bigEndian(UInt64.self, at: 16, field: "data offset"),
            timestamp: try reader.bigEndian(UInt32.self, at: 24, field: "timestamp"),
            creatorApplication: Array(try reader.slice(28, 4, field: "creator application")),
            originalSize: try reader.bigEndian(UInt64.self, at: 40, field: "original size"),
            currentSize: try reader.bigEndian(UInt64.self, at: 48, field: "current size"),
            cylinders: try reader.bigEndian(UInt16.self, at: 56, field: "cylinders"),
            heads: try reader.slice(58, 1, field: "heads").first ?? 0,
            sectorsPerTrack: try reader.slice(59, 1, field: "sectors per track").first ?? 0,
            diskType: type,
            uniqueID: Array(try reader.slice(68, 16, field: "unique id"))
        )
    }

    func serialized() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 512)
        bytes.replaceSubrange(0..<8, with: Self.cookie)
        bytes.putBigEndian(UInt32(2), at: 8) // features: reserved bit, always set
        bytes.putBigEndian(UInt32(0x0001_0000), at: 12) // format version 1.0
        bytes.putBigEndian(dataOffset, at: 16)
        bytes.putBigEndian(timestamp, at: 24)
        bytes.replaceSubrange(28..<32, with: creatorApplication)
        bytes.putBigEndian(UInt32(0x0001_0000), at: 32) // creator version
        bytes.replaceSubrange(36..<40, with: Array("Wi2k".utf8)) // creator host OS, as most writers say
        bytes.putBigEndian(originalSize, at: 40)
        bytes.putBigEndian(currentSize, at: 48)
        bytes.putBigEndian(cylinders, at: 56)
        bytes[58] = heads
        bytes[59] = sectorsPerTrack
        bytes.putBigEndian(diskType.rawValue, at: 60)
        bytes.replaceSubrange(68..<84, with: uniqueID)
        bytes.putBigEndian(Self.checksum(bytes, skipping: 64), at: 64)
        return bytes
    }

    /// One's complement of the byte sum, leaving out the 4 checksum bytes.
    static func checksum(_ bytes: [UInt8], skipping field: Int) -> UInt32 {
        var sum: UInt32 = 0
        for (index, byte) in bytes.enumerated() where !(field..<field + 4).contains(index) {
            sum &+= UInt32(byte)
        }
        return ~sum
    }

    /// The CHS geometry of the VHD specification's algorithm for `sectors`, rounded up so the
    /// geometry covers at least that many sectors (as qemu-img does); capped at the maximum.
    static func geometry(coveringSectors sectors: UInt64) -> (cylinders: UInt16, heads: UInt8, sectorsPerTrack: UInt8) {
        // The algorithm rounds down; ask for one more sector until the geometry covers the disk.
        // It loses less than one track (at most 16 × 255 sectors), so this ends quickly.
        var request = sectors
        while true {
            let (c, h, s) = geometry(forSectors: request)
            let covered = UInt64(c) * UInt64(h) * UInt64(s)
            if covered >= sectors || covered == maximumGeometrySectors {
                return (c, h, s)
            }
            request += 1
        }
    }

    private static func geometry(forSectors input: UInt64) -> (UInt16, UInt8, UInt8) {
        let total = min(input, maximumGeometrySectors)
        var sectorsPerTrack: UInt64
        var heads: UInt64
        var cylindersTimesHeads: UInt64
        if total >= 65535 * 16 * 63 {
            sectorsPerTrack = 255
            heads = 16
            cylindersTimesHeads = total / sectorsPerTrack
        } else {
            sectorsPerTrack = 17
            cylindersTimesHeads = total / sectorsPerTrack
            heads = max(4, (cylindersTimesHeads + 1023) / 1024)
            if cylindersTimesHeads >= heads * 1024 || heads > 16 {
                sectorsPerTrack = 31
                heads = 16
                cylindersTimesHeads = total / sectorsPerTrack
            }
            if cylindersTimesHeads >= heads * 1024 {
                sectorsPerTrack = 63
                heads = 16
                cylindersTimesHeads = total / sectorsPerTrack
            }
        }
        let cylinders = min(65535, cylindersTimesHeads / heads)
        return (UInt16(cylinders), UInt8(heads), UInt8(sectorsPerTrack))
    }
}
