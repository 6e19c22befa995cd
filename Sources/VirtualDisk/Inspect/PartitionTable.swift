import CZlib

/// A disk's partition table, MBR (with logical partitions) or GPT.
public struct PartitionTable: Sendable, Codable, Equatable {
    public enum Scheme: String, Sendable, Codable {
        case mbr
        case gpt
    }

    public struct Partition: Sendable, Codable, Equatable {
        /// 1-based, as Linux numbers them (logical MBR partitions start at 5).
        public var number: Int
        /// Byte offset and length on the disk.
        public var offset: UInt64
        public var length: UInt64
        /// MBR: the type byte in hex (`83`); GPT: the type GUID.
        public var type: String
        /// GPT only.
        public var name: String?
        public var uuid: String?
        public var filesystem: Filesystem?
    }

    public var scheme: Scheme
    /// GPT: the disk GUID; MBR: the 32-bit disk signature in hex.
    public var identifier: String
    public var partitions: [Partition]

    static let sector: UInt64 = 512
    /// The most partition entries read from a GPT, and logical partitions followed in an MBR.
    static let maximumEntries = 256

    /// Reads the partition table of `image`, or `nil` when the disk has none.
    public static func read(from image: any DiskImage) throws(VirtualDiskError) -> PartitionTable? {
        guard image.virtualSize >= 2 * sector else { return nil }
        let mbr = try image.read(at: 0, count: 512)
        guard mbr[510] == 0x55, mbr[511] == 0xAA else { return nil }
        let entries = (0..<4).map { MBREntry(mbr, at: 446 + $0 * 16) }
        if entries.contains(where: { $0.type == 0xEE }) {
            if let gpt = try readGPT(image) { return gpt }
        }
        // A FAT or NTFS boot sector also ends in 55 AA: a real MBR has sane entries.
        let used = entries.filter { $0.type != 0 && $0.sectors > 0 }
        guard !used.isEmpty, entries.allSatisfy({ $0.status == 0 || $0.status == 0x80 }) else { return nil }
        var partitions: [Partition] = []
        for (index, entry) in entries.enumerated() where entry.type != 0 && entry.sectors > 0 {
            if [0x05, 0x0F, 0x85].contains(entry.type) {
                partitions += try readLogical(image, extendedStart: UInt64(entry.firstSector))
            } else {
                partitions.append(Partition(number: index + 1, offset: UInt64(entry.firstSector) * sector, length: UInt64(entry.sectors) * sector, type: hex(entry.type)))
            }
        }
        let signature = UInt32(mbr[440]) | UInt32(mbr[441]) << 8 | UInt32(mbr[442]) << 16 | UInt32(mbr[443]) << 24
        return PartitionTable(scheme: .mbr, identifier: String(format8: signature), partitions: partitions.sorted { $0.number < $1.number })
    }

    struct MBREntry {
        var status: UInt8
        var type: UInt8
        var firstSector: UInt32
        var sectors: UInt32

        init(_ bytes: [UInt8], at offset: Int) {
            status = bytes[offset]
            type = bytes[offset + 4]
            firstSector = UInt32(bytes[offset + 8]) | UInt32(bytes[offset + 9]) << 8 | UInt32(bytes[offset + 10]) << 16 | UInt32(bytes[offset + 11]) << 24
            sectors = UInt32(bytes[offset + 12]) | UInt32(bytes[offset + 13]) << 8 | UInt32(bytes[offset + 14]) << 16 | UInt32(bytes[offset + 15]) << 24
        }
    }

    private static func readLogical(_ image: any DiskImage, extendedStart: UInt64) throws(VirtualDiskError) -> [Partition] {
        var partitions: [Partition] = []
        var next: UInt64 = 0
        var seen = Set<UInt64>()
        while partitions.count < maximumEntries, seen.insert(next).inserted {
            let ebrOffset = (extendedStart + next) * sector
            guard ebrOffset + 512 <= image.virtualSize else { break }
            let ebr = try image.read(at: ebrOffset, count: 512)
            guard ebr[510] == 0x55, ebr[511] == 0xAA else { break }
            let logical = MBREntry(ebr, at: 446)
            let link = MBREntry(ebr, at: 462)
            if logical.type != 0, logical.sectors > 0 {
                partitions.append(Partition(number: 5 + partitions.count, offset: ebrOffset + UInt64(logical.firstSector) * sector, length: UInt64(logical.sectors) * sector, type: hex(logical.type)))
            }
            guard link.type != 0, link.firstSector != 0 else { break }
            next = UInt64(link.firstSector)
        }
        return partitions
    }

    /// The primary GPT header, or the backup at the last sector when the primary is damaged.
    static func readGPT(_ image: any DiskImage) throws(VirtualDiskError) -> PartitionTable? {
        for lba in [UInt64(1), image.virtualSize / sector - 1] {
            if let header = try GPTHeader.read(image, at: lba) {
                var partitions: [Partition] = []
                let entryBytes = try image.read(at: header.entriesLBA * sector, count: Int(header.entryCount * header.entrySize))
                for index in 0..<Int(header.entryCount) {
                    let base = index * Int(header.entrySize)
                    let type = Array(entryBytes[base..<base + 16])
                    guard type.contains(where: { $0 != 0 }) else { continue }
                    let first = entryBytes.littleEndian(at: base + 32)
                    let last = entryBytes.littleEndian(at: base + 40)
                    // Hostile LBAs must not overflow byte offsets; nothing real lies past 2^54 sectors.
                    guard last >= first, last < 1 << 54 else { continue }
                    let nameUnits = stride(from: base + 56, to: base + 128, by: 2).map { UInt16(entryBytes[$0]) | UInt16(entryBytes[$0 + 1]) << 8 }.prefix { $0 != 0 }
                    partitions.append(Partition(
                        number: index + 1, offset: first * sector, length: (last - first + 1) * sector,
                        type: guid(type), name: String(decoding: nameUnits, as: UTF16.self), uuid: guid(Array(entryBytes[base + 16..<base + 32]))
                    ))
                }
                return PartitionTable(scheme: .gpt, identifier: guid(header.diskGUID), partitions: partitions)
            }
        }
        return nil
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }

    /// A GUID in its usual text form: the first three fields are stored little-endian.
    static func guid(_ bytes: [UInt8]) -> String {
        func hexBytes(_ range: [Int]) -> String { range.map { hex(bytes[$0]) }.joined() }
        return [hexBytes([3, 2, 1, 0]), hexBytes([5, 4]), hexBytes([7, 6]), hexBytes([8, 9]), hexBytes(Array(10...15))].joined(separator: "-")
    }
}

/// The fields of a GPT header this library reads and rewrites.
struct GPTHeader {
    var bytes: [UInt8]
    var currentLBA: UInt64
    var backupLBA: UInt64
    var firstUsableLBA: UInt64
    var lastUsableLBA: UInt64
    var diskGUID: [UInt8]
    var entriesLBA: UInt64
    var entryCount: UInt64
    var entrySize: UInt64

    /// The header at `lba`, if its signature, size and CRC are right and its entries fit.
    static func read(_ image: any DiskImage, at lba: UInt64) throws(VirtualDiskError) -> GPTHeader? {
        guard lba > 0, (lba + 1) * 512 <= image.virtualSize else { return nil }
        let bytes = try image.read(at: lba * 512, count: 512)
        guard Array(bytes[0..<8]) == Array("EFI PART".utf8) else { return nil }
        let size = Int(bytes.littleEndian32(at: 12))
        guard (92...512).contains(size) else { return nil }
        var copy = Array(bytes[0..<size])
        copy.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        guard crc32(copy) == bytes.littleEndian32(at: 16) else { return nil }
        let header = GPTHeader(
            bytes: Array(bytes[0..<size]),
            currentLBA: bytes.littleEndian(at: 24), backupLBA: bytes.littleEndian(at: 32),
            firstUsableLBA: bytes.littleEndian(at: 40), lastUsableLBA: bytes.littleEndian(at: 48),
            diskGUID: Array(bytes[56..<72]), entriesLBA: bytes.littleEndian(at: 72),
            entryCount: UInt64(bytes.littleEndian32(at: 80)), entrySize: UInt64(bytes.littleEndian32(at: 84))
        )
        guard header.entrySize >= 128, header.entrySize <= 1024, header.entrySize % 8 == 0,
              header.entryCount <= UInt64(PartitionTable.maximumEntries) * 4,
              header.entriesLBA < image.virtualSize / 512,
              header.entriesLBA * 512 + header.entryCount * header.entrySize <= image.virtualSize
        else { return nil }
        return header
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(CZlib.crc32(0, $0.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt($0.count))) }
    }
}

extension Array where Element == UInt8 {
    func littleEndian(at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(self[offset + $1]) << (8 * UInt64($1)) }
    }

    func littleEndian32(at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(self[offset + $1]) << (8 * UInt32($1)) }
    }

    func littleEndian16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }
}

extension String {
    /// Eight hex digits, zero-padded.
    init(format8 value: UInt32) {
        let digits = String(value, radix: 16)
        self = String(repeating: "0", count: 8 - digits.count) + digits
    }
}
