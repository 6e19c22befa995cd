import Foundation

/// Writes a fixed or dynamic VHD. The size is rounded up to the CHS geometry, as qemu-img
/// does, so Virtual PC, Hyper-V and QEMU all see the same size (at most one track larger).
final class VHDWriter: DiskWriter {
    enum Kind {
        case fixed
        case dynamic
    }

    let file: DiskFile
    let kind: Kind
    let virtualSize: UInt64
    let granularity: UInt64
    private let footer: VHDFooter
    private var blockTable: [UInt32]
    private var nextBlock: UInt64
    private let blockSize: UInt64 = 2 << 20
    private let bitmapBytes: UInt64 = 512

    /// The largest disk a VHD can describe (2040 GiB).
    static let maximumSize: UInt64 = 2040 << 30
    /// Seconds between the Unix epoch and the VHD epoch (2000-01-01).
    static let epochOffset: UInt64 = 946_684_800

    init(file: DiskFile, virtualSize requested: UInt64, kind: Kind) throws(VirtualDiskError) {
        guard requested <= Self.maximumSize else {
            throw .invalidRequest("a VHD holds at most 2040 GiB; \(requested) bytes is too large (use qcow2 or VMDK)")
        }
        let sectors = (requested + 511) / 512
        let geometry = VHDFooter.geometry(coveringSectors: sectors)
        let geometrySectors = UInt64(geometry.cylinders) * UInt64(geometry.heads) * UInt64(geometry.sectorsPerTrack)
        let size = max(sectors, geometrySectors) * 512
        self.file = file
        self.kind = kind
        self.virtualSize = size
        self.granularity = kind == .fixed ? 64 << 10 : 2 << 20
        let timestamp = UInt32(truncatingIfNeeded: UInt64(Date().timeIntervalSince1970) - Self.epochOffset)
        var uuid = UUID().uuid
        let uniqueID = withUnsafeBytes(of: &uuid) { Array($0) }
        footer = VHDFooter(
            dataOffset: kind == .fixed ? UInt64.max : 512,
            timestamp: timestamp,
            creatorApplication: Array("hrth".utf8),
            originalSize: size,
            currentSize: size,
            cylinders: geometry.cylinders,
            heads: geometry.heads,
            sectorsPerTrack: geometry.sectorsPerTrack,
            diskType: kind == .fixed ? .fixed : .dynamic,
            uniqueID: uniqueID
        )
        let blocks = (size + blockSize - 1) / blockSize
        blockTable = [UInt32](repeating: 0xFFFF_FFFF, count: Int(blocks))
        let tableBytes = (blocks * 4 + 511) / 512 * 512
        nextBlock = 1536 + tableBytes
        switch kind {
        case .fixed: try file.truncate(to: size + 512)
        case .dynamic: try file.truncate(to: nextBlock)
        }
    }

    func write(at offset: UInt64, _ buffer: UnsafeRawBufferPointer) throws(VirtualDiskError) {
        guard kind == .dynamic else {
            try file.write(buffer, at: offset)
            return
        }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let index = Int(position / blockSize)
            let inBlock = position % blockSize
            let length = Int(min(blockSize - inBlock, UInt64(buffer.count - done)))
            if blockTable[index] == 0xFFFF_FFFF {
                blockTable[index] = UInt32(nextBlock / 512)
                // Every sector of the block is present: the block holds the disk's bytes, zeros included.
                try file.write([UInt8](repeating: 0xFF, count: Int(bitmapBytes)), at: nextBlock)
                nextBlock += bitmapBytes + blockSize
                try file.truncate(to: nextBlock)
            }
            let host = UInt64(blockTable[index]) * 512 + bitmapBytes + inBlock
            try file.write(UnsafeRawBufferPointer(rebasing: buffer[done..<done + length]), at: host)
            done += length
        }
    }

    func finish() throws(VirtualDiskError) {
        let footerBytes = footer.serialized()
        switch kind {
        case .fixed:
            try file.write(footerBytes, at: virtualSize)
        case .dynamic:
            var table = [UInt8](repeating: 0, count: blockTable.count * 4)
            for (index, entry) in blockTable.enumerated() {
                table.putBigEndian(entry, at: index * 4)
            }
            try file.write(table, at: 1536)
            try file.write(dynamicHeader(), at: 512)
            try file.write(footerBytes, at: nextBlock)
            try file.sync()
            // The copy at the start last: until then the file does not look like a VHD.
            try file.write(footerBytes, at: 0)
        }
        try file.sync()
    }

    private func dynamicHeader() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 1024)
        bytes.replaceSubrange(0..<8, with: Array("cxsparse".utf8))
        bytes.putBigEndian(UInt64.max, at: 8)
        bytes.putBigEndian(UInt64(1536), at: 16)
        bytes.putBigEndian(UInt32(0x0001_0000), at: 24)
        bytes.putBigEndian(UInt32(blockTable.count), at: 28)
        bytes.putBigEndian(UInt32(blockSize), at: 32)
        bytes.putBigEndian(VHDFooter.checksum(bytes, skipping: 36), at: 36)
        return bytes
    }
}
