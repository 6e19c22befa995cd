/// Grows the last partition of a table to the end of a disk that was just made larger.
enum PartitionGrower {
    static func grow(_ table: PartitionTable, of image: any DiskImage, patcher: DiskPatcher, oldSize: UInt64) throws(VirtualDiskError) -> PartitionTable.Partition? {
        switch table.scheme {
        case .mbr: try growMBR(table, of: image, patcher: patcher)
        case .gpt: try growGPT(of: image, patcher: patcher, oldSize: oldSize)
        }
    }

    private static func growMBR(_ table: PartitionTable, of image: any DiskImage, patcher: DiskPatcher) throws(VirtualDiskError) -> PartitionTable.Partition? {
        guard let last = table.partitions.max(by: { $0.offset + $0.length < $1.offset + $1.length }) else { return nil }
        guard last.number <= 4 else {
            throw .unsupported(path: image.path, feature: "growing a logical MBR partition (grow it inside the guest)")
        }
        let diskSectors = image.virtualSize / 512
        let first = last.offset / 512
        let sectors = min(diskSectors - first, UInt64(UInt32.max))
        var sector = try image.read(at: 0, count: 512)
        sector.putLittleEndian(UInt32(sectors), at: 446 + (last.number - 1) * 16 + 12)
        try patcher.write(sector, at: 0)
        var grown = last
        grown.length = sectors * 512
        return grown
    }

    private static func growGPT(of image: any DiskImage, patcher: DiskPatcher, oldSize: UInt64) throws(VirtualDiskError) -> PartitionTable.Partition? {
        guard let primary = try GPTHeader.read(image, at: 1) else {
            throw .unsupported(path: image.path, feature: "growing a GPT whose primary header is damaged")
        }
        let lastSector = image.virtualSize / 512 - 1
        let entryBytes = Int(primary.entryCount * primary.entrySize)
        let entrySectors = UInt64((entryBytes + 511) / 512)
        let lastUsable = lastSector - entrySectors - 1
        var entries = try image.read(at: primary.entriesLBA * 512, count: entryBytes)
        // The partition that ends last grows to the new last usable sector.
        var lastIndex: Int?
        var lastEnd: UInt64 = 0
        for index in 0..<Int(primary.entryCount) {
            let base = index * Int(primary.entrySize)
            guard entries[base..<base + 16].contains(where: { $0 != 0 }) else { continue }
            let end = entries.littleEndian(at: base + 40)
            if end >= lastEnd { lastEnd = end; lastIndex = index }
        }
        var grown: PartitionTable.Partition?
        if let lastIndex {
            let base = lastIndex * Int(primary.entrySize)
            entries.putLittleEndian(lastUsable, at: base + 40)
            let first = entries.littleEndian(at: base + 32)
            grown = PartitionTable.Partition(number: lastIndex + 1, offset: first * 512, length: (lastUsable - first + 1) * 512, type: PartitionTable.guid(Array(entries[base..<base + 16])))
        }
        let entriesCRC = GPTHeader.crc32(entries)
        func header(current: UInt64, backup: UInt64, entriesAt: UInt64) -> [UInt8] {
            var bytes = primary.bytes
            bytes.putLittleEndian(current, at: 24)
            bytes.putLittleEndian(backup, at: 32)
            bytes.putLittleEndian(lastUsable, at: 48)
            bytes.putLittleEndian(entriesAt, at: 72)
            bytes.putLittleEndian(entriesCRC, at: 88)
            bytes.putLittleEndian(UInt32(0), at: 16)
            bytes.putLittleEndian(GPTHeader.crc32(bytes), at: 16)
            return bytes + [UInt8](repeating: 0, count: 512 - bytes.count)
        }
        // Backup first (entries, then header), then the primary, then wipe the old backup.
        let backupEntries = lastSector - entrySectors
        try patcher.write(entries, at: backupEntries * 512)
        try patcher.write(header(current: lastSector, backup: 1, entriesAt: backupEntries), at: lastSector * 512)
        try patcher.write(entries, at: primary.entriesLBA * 512)
        try patcher.write(header(current: 1, backup: lastSector, entriesAt: primary.entriesLBA), at: 512)
        let oldBackup = oldSize / 512 - 1
        if oldBackup != lastSector {
            try patcher.write([UInt8](repeating: 0, count: 512), at: oldBackup * 512)
        }
        // The protective MBR covers the whole disk (up to its 32-bit limit).
        var mbr = try image.read(at: 0, count: 512)
        for slot in 0..<4 where mbr[446 + slot * 16 + 4] == 0xEE {
            mbr.putLittleEndian(UInt32(min(lastSector, UInt64(UInt32.max))), at: 446 + slot * 16 + 12)
        }
        try patcher.write(mbr, at: 0)
        return grown
    }
}
