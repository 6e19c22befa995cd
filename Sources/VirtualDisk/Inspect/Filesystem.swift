/// A filesystem recognised by its superblock: type, label and UUID as `blkid` shows them.
public struct Filesystem: Sendable, Codable, Equatable {
    public var type: String
    public var label: String?
    public var uuid: String?

    /// Looks at the first bytes of a partition (or a whole disk) at `offset` of `length`.
    public static func probe(_ image: any DiskImage, offset: UInt64, length: UInt64) throws(VirtualDiskError) -> Filesystem? {
        let headLength = Int(min(length, 8192))
        guard headLength >= 512 else { return nil }
        let head = try image.read(at: offset, count: headLength)
        if headLength >= 2048, head.littleEndian16(at: 1024 + 56) == 0xEF53 {
            return ext(head)
        }
        if Array(head[0..<4]) == Array("XFSB".utf8) {
            return Filesystem(type: "xfs", label: text(head[108..<120]), uuid: PartitionTable.uuid(Array(head[32..<48])))
        }
        if headLength >= 4096, Array(head[4086..<4096]) == Array("SWAPSPACE2".utf8) {
            return Filesystem(type: "swap", label: text(head[1052..<1068]), uuid: PartitionTable.uuid(Array(head[1036..<1052])))
        }
        if Array(head[3..<11]) == Array("NTFS    ".utf8) {
            let serial = head.littleEndian(at: 72)
            let digits = String(serial, radix: 16, uppercase: true)
            return Filesystem(type: "ntfs", label: try NTFSVolume.label(image, partition: offset, bootSector: head), uuid: String(repeating: "0", count: 16 - digits.count) + digits)
        }
        if head[510] == 0x55, head[511] == 0xAA, let fat = fat(head) {
            return fat
        }
        return nil
    }

    private static func ext(_ head: [UInt8]) -> Filesystem {
        let superblock = 1024
        let compat = head.littleEndian32(at: superblock + 92)
        let incompat = head.littleEndian32(at: superblock + 96)
        let roCompat = head.littleEndian32(at: superblock + 100)
        let type: String
        // ext4 if it uses anything ext3 cannot read: extents, 64-bit, flex_bg, huge files, checksums.
        if incompat & (0x40 | 0x80 | 0x200) != 0 || roCompat & (0x8 | 0x10 | 0x400) != 0 {
            type = "ext4"
        } else if compat & 0x4 != 0 {
            type = "ext3"
        } else {
            type = "ext2"
        }
        return Filesystem(type: type, label: text(head[(superblock + 120)..<(superblock + 136)]), uuid: PartitionTable.uuid(Array(head[(superblock + 104)..<(superblock + 120)])))
    }

    private static func fat(_ head: [UInt8]) -> Filesystem? {
        let bytesPerSector = head.littleEndian16(at: 11)
        guard [512, 1024, 2048, 4096].contains(bytesPerSector), head[13] != 0, head[13].nonzeroBitCount == 1 else { return nil }
        let isFAT32 = head.littleEndian16(at: 22) == 0
        let serialOffset = isFAT32 ? 67 : 39
        let labelOffset = isFAT32 ? 71 : 43
        let typeText = text(head[(isFAT32 ? 82 : 54)..<(isFAT32 ? 90 : 62)]) ?? ""
        guard typeText.hasPrefix("FAT") else { return nil }
        let serial = head.littleEndian32(at: serialOffset)
        let digits = String(format8: serial).uppercased()
        let label = text(head[labelOffset..<labelOffset + 11])
        return Filesystem(type: "vfat", label: label == "NO NAME" ? nil : label, uuid: "\(digits.prefix(4))-\(digits.suffix(4))")
    }

    /// Text from a fixed-size field: up to the first NUL, trailing spaces dropped; `nil` if empty.
    static func text(_ bytes: ArraySlice<UInt8>) -> String? {
        let value = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        return value.isEmpty ? nil : value
    }
}

extension PartitionTable {
    /// A 16-byte UUID as stored by Linux filesystems (big-endian, unlike GPT's GUIDs).
    static func uuid(_ bytes: [UInt8]) -> String? {
        guard bytes.contains(where: { $0 != 0 }) else { return nil }
        let hexDigits = bytes.map { hex($0) }
        return [hexDigits[0..<4], hexDigits[4..<6], hexDigits[6..<8], hexDigits[8..<10], hexDigits[10..<16]].map { $0.joined() }.joined(separator: "-")
    }
}

/// The volume label of NTFS lives in the $Volume file (MFT record 3), not the boot sector.
enum NTFSVolume {
    static func label(_ image: any DiskImage, partition: UInt64, bootSector: [UInt8]) throws(VirtualDiskError) -> String? {
        let bytesPerSector = UInt64(bootSector.littleEndian16(at: 11))
        let clusterSize = bytesPerSector * UInt64(bootSector[13])
        guard bytesPerSector >= 256, clusterSize > 0 else { return nil }
        let rawRecord = Int8(bitPattern: bootSector[64])
        let recordSize: UInt64 = rawRecord < 0 ? 1 << UInt64(-Int(rawRecord)) : UInt64(rawRecord) * clusterSize
        guard (512...65536).contains(recordSize) else { return nil }
        let mft = partition + bootSector.littleEndian(at: 48) * clusterSize
        let recordOffset = mft + 3 * recordSize
        guard recordOffset + recordSize <= image.virtualSize else { return nil }
        var record = try image.read(at: recordOffset, count: Int(recordSize))
        guard Array(record[0..<4]) == Array("FILE".utf8) else { return nil }
        // Undo the update sequence: the last two bytes of each sector were swapped out.
        let usaOffset = Int(record.littleEndian16(at: 4))
        let usaCount = Int(record.littleEndian16(at: 6))
        guard usaCount >= 1, usaOffset + usaCount * 2 <= record.count else { return nil }
        for index in 1..<usaCount {
            let end = index * Int(bytesPerSector) - 2
            guard end + 2 <= record.count else { break }
            record[end] = record[usaOffset + index * 2]
            record[end + 1] = record[usaOffset + index * 2 + 1]
        }
        var attribute = Int(record.littleEndian16(at: 20))
        while attribute + 24 <= record.count {
            let type = record.littleEndian32(at: attribute)
            let length = Int(record.littleEndian32(at: attribute + 4))
            if type == 0xFFFF_FFFF || length < 24 || attribute + length > record.count { break }
            if type == 0x60, record[attribute + 8] == 0 {
                let size = Int(record.littleEndian32(at: attribute + 16))
                let start = attribute + Int(record.littleEndian16(at: attribute + 20))
                guard start + size <= record.count else { return nil }
                let units = stride(from: start, to: start + size - 1, by: 2).map { UInt16(record[$0]) | UInt16(record[$0 + 1]) << 8 }
                let label = String(decoding: units, as: UTF16.self)
                return label.isEmpty ? nil : label
            }
            attribute += length
        }
        return nil
    }
}
