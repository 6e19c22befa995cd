import Foundation

/// A VHD image: fixed, dynamic or differencing (over a parent VHD). Dynamic blocks that are
/// present read as stored, as Virtual PC and QEMU read them; in a differencing disk a block's
/// sector bitmap says which sectors are here and which come from the parent.
public final class VHDImage: DiskImage {
    public let format = DiskFormat.vhd
    public let path: String
    public let virtualSize: UInt64
    public let backing: (any DiskImage)?
    let file: DiskFile
    let footer: VHDFooter
    /// Dynamic and differencing disks: sector offsets of blocks, `nil` for unallocated.
    let blockTable: [UInt32?]
    let blockSize: UInt64
    let bitmapBytes: UInt64

    /// The largest block table read (2 TiB at 2 MiB blocks is 1 Mi entries).
    static let maximumBlockTableEntries: UInt32 = 1 << 22

    private init(file: DiskFile, footer: VHDFooter, blockTable: [UInt32?], blockSize: UInt64, backing: (any DiskImage)?) {
        self.file = file
        self.path = file.path
        self.footer = footer
        self.virtualSize = footer.virtualSize
        self.blockTable = blockTable
        self.blockSize = blockSize
        self.bitmapBytes = (blockSize / 512 / 8 + 511) / 512 * 512
        self.backing = backing
    }

    public var diskType: String {
        switch footer.diskType {
        case .fixed: "fixed"
        case .dynamic: "dynamic"
        case .differencing: "differencing"
        }
    }

    static func open(_ file: DiskFile, policy: DiskAccessPolicy, depth: Int) throws(VirtualDiskError) -> VHDImage {
        let size = try file.size()
        guard size >= 512 else { throw .notFormat(path: file.path, format: .vhd) }
        // The footer is the last 512 bytes; an old writer may have left 511 (a known quirk).
        var footerBytes = try file.read(count: 512, at: size - 512, field: "footer")
        var footerOffset = size - 512
        if !footerBytes.starts(with: VHDFooter.cookie), size >= 1024 {
            // A dynamic disk whose footer was cut off still has the copy at byte 0.
            footerBytes = try file.read(count: 512, at: 0, field: "footer copy")
            footerOffset = 0
        }
        let footer = try VHDFooter.parse(footerBytes, path: file.path, at: footerOffset)
        if footer.diskType == .fixed {
            guard footer.virtualSize <= size - 512 || footerOffset == 0 else {
                throw .corrupt(path: file.path, field: "current size", offset: footerOffset + 48, reason: "a fixed disk of \(footer.virtualSize) bytes needs a file of \(footer.virtualSize + 512) bytes, not \(size)")
            }
            return VHDImage(file: file, footer: footer, blockTable: [], blockSize: 0, backing: nil)
        }
        return try openDynamic(file, footer: footer, fileSize: size, policy: policy, depth: depth)
    }

    private static func openDynamic(_ file: DiskFile, footer: VHDFooter, fileSize: UInt64, policy: DiskAccessPolicy, depth: Int) throws(VirtualDiskError) -> VHDImage {
        let headerOffset = footer.dataOffset
        guard headerOffset < fileSize, fileSize - headerOffset >= 1024 else {
            throw .corrupt(path: file.path, field: "data offset", offset: 16, reason: "the dynamic header at \(headerOffset) lies outside the \(fileSize)-byte file")
        }
        let bytes = try file.read(count: 1024, at: headerOffset, field: "dynamic header")
        let reader = ByteReader(bytes, path: file.path, baseOffset: headerOffset)
        guard Array(try reader.slice(0, 8, field: "dynamic header cookie")) == Array("cxsparse".utf8) else {
            throw reader.corrupt("dynamic header cookie", at: 0, "expected 'cxsparse'")
        }
        guard try reader.bigEndian(UInt32.self, at: 36, field: "dynamic header checksum") == VHDFooter.checksum(bytes, skipping: 36) else {
            throw reader.corrupt("dynamic header checksum", at: 36, "the checksum does not match the header")
        }
        let tableOffset = try reader.bigEndian(UInt64.self, at: 16, field: "table offset")
        let entries = try reader.bigEndian(UInt32.self, at: 28, field: "max table entries")
        let blockSize = UInt64(try reader.bigEndian(UInt32.self, at: 32, field: "block size"))
        guard blockSize >= 512, blockSize.nonzeroBitCount == 1, blockSize <= 256 << 20 else {
            throw reader.corrupt("block size", at: 32, "\(blockSize) must be a power of two from 512 B to 256 MiB")
        }
        guard entries <= maximumBlockTableEntries, UInt64(entries) * blockSize >= footer.virtualSize else {
            throw reader.corrupt("max table entries", at: 28, "\(entries) blocks of \(blockSize) bytes do not fit a \(footer.virtualSize)-byte disk, or exceed \(maximumBlockTableEntries)")
        }
        guard tableOffset < fileSize, UInt64(entries) * 4 <= fileSize - tableOffset else {
            throw reader.corrupt("table offset", at: 16, "a block table of \(entries) entries at \(tableOffset) runs past the end of the file")
        }
        let rawTable = try file.read(count: Int(entries) * 4, at: tableOffset, field: "block allocation table")
        let table = ByteReader(rawTable, path: file.path, baseOffset: tableOffset)
        var blocks: [UInt32?] = []
        blocks.reserveCapacity(Int(entries))
        for index in 0..<Int(entries) {
            let sector = try table.bigEndian(UInt32.self, at: index * 4, field: "block table entry \(index)")
            blocks.append(sector == 0xFFFF_FFFF ? nil : sector)
        }
        var parent: (any DiskImage)?
        if footer.diskType == .differencing {
            parent = try openParent(file, header: reader, policy: policy, depth: depth)
        }
        return VHDImage(file: file, footer: footer, blockTable: blocks, blockSize: blockSize, backing: parent)
    }

    /// Finds the parent by its locators (relative Windows path first, then the absolute one,
    /// then the Unicode name beside this file) and checks its unique ID.
    private static func openParent(_ file: DiskFile, header: ByteReader, policy: DiskAccessPolicy, depth: Int) throws(VirtualDiskError) -> any DiskImage {
        let parentID = Array(try header.slice(40, 16, field: "parent unique id"))
        var candidates: [String] = []
        for index in 0..<8 {
            let base = 576 + index * 24
            let code = Array(try header.slice(base, 4, field: "parent locator \(index) platform code"))
            let length = Int(try header.bigEndian(UInt32.self, at: base + 8, field: "parent locator \(index) data length"))
            let offset = try header.bigEndian(UInt64.self, at: base + 16, field: "parent locator \(index) data offset")
            guard length > 0, length <= 4096, code == Array("W2ru".utf8) || code == Array("W2ku".utf8) else { continue }
            let data = try file.read(count: length, at: offset, field: "parent locator \(index) data")
            let name = String(decoding: stride(from: 0, to: data.count - 1, by: 2).map { UInt16(data[$0]) | UInt16(data[$0 + 1]) << 8 }, as: UTF16.self)
            let unixName = name.replacingOccurrences(of: "\\", with: "/").replacingOccurrences(of: "./", with: "", options: .anchored)
            candidates.append(code == Array("W2ru".utf8) ? unixName : (unixName as NSString).lastPathComponent)
        }
        let unicode = Array(try header.slice(64, 512, field: "parent unicode name"))
        let parentName = String(decoding: stride(from: 0, to: 512, by: 2).map { UInt16(unicode[$0]) << 8 | UInt16(unicode[$0 + 1]) }.prefix { $0 != 0 }, as: UTF16.self)
        if !parentName.isEmpty { candidates.append(parentName) }
        guard !candidates.isEmpty else {
            throw header.corrupt("parent locators", at: 576, "a differencing disk names no parent")
        }
        var lastError: VirtualDiskError?
        for candidate in candidates {
            do throws(VirtualDiskError) {
                let path = try policy.resolve(candidate, referencedBy: file.path, role: "parent disk")
                guard FileManager.default.fileExists(atPath: path) else { continue }
                let parent = try DiskOpener.open(path, format: .vhd, policy: policy, depth: depth + 1, referencedBy: file.path)
                if let vhd = parent as? VHDImage, vhd.footer.uniqueID != parentID {
                    throw VirtualDiskError.corrupt(path: file.path, field: "parent unique id", offset: header.baseOffset + 40, reason: "\(path) is not the parent this disk was made from (its unique ID differs)")
                }
                return parent
            } catch {
                lastError = error
            }
        }
        throw lastError ?? .io(path: candidates[0], operation: "find the parent disk", reason: "no file by that name beside \(file.path)")
    }

    public func extent(at offset: UInt64, maxLength: UInt64) throws(VirtualDiskError) -> Extent {
        let limit = min(maxLength, virtualSize - offset)
        if footer.diskType == .fixed {
            return Extent(offset: offset, length: limit, kind: .data)
        }
        var (kind, length) = try blockExtent(at: offset)
        length = min(length, limit)
        while length < limit {
            let (next, nextLength) = try blockExtent(at: offset + length)
            guard next == kind else { break }
            length = min(limit, length + nextLength)
        }
        return Extent(offset: offset, length: length, kind: kind)
    }

    private func blockExtent(at offset: UInt64) throws(VirtualDiskError) -> (ExtentKind, UInt64) {
        let index = Int(offset / blockSize)
        let inBlock = offset % blockSize
        guard index < blockTable.count, let sector = blockTable[index] else {
            return (footer.diskType == .differencing ? .unallocated : .zero, blockSize - inBlock)
        }
        guard footer.diskType == .differencing else {
            return (.data, blockSize - inBlock)
        }
        // Differencing: the sector bitmap decides, one sector at a time.
        let bitmap = try file.read(count: Int(bitmapBytes), at: UInt64(sector) * 512, field: "sector bitmap of block \(index)")
        let first = Int(inBlock / 512)
        func present(_ sectorIndex: Int) -> Bool { bitmap[sectorIndex / 8] & (0x80 >> (sectorIndex % 8)) != 0 }
        let state = present(first)
        var end = first + 1
        while end < Int(blockSize / 512), present(end) == state { end += 1 }
        return (state ? .data : .unallocated, UInt64(end) * 512 - inBlock)
    }

    public func readData(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VirtualDiskError) {
        if footer.diskType == .fixed {
            try file.read(into: buffer, at: offset, field: "fixed disk data")
            return
        }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let index = Int(position / blockSize)
            let inBlock = position % blockSize
            let length = Int(min(blockSize - inBlock, UInt64(buffer.count - done)))
            guard index < blockTable.count, let sector = blockTable[index] else {
                throw .invalidRequest("readData at \(position) of \(path): the block is not allocated")
            }
            let host = UInt64(sector) * 512 + bitmapBytes + inBlock
            try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + length]), at: host, field: "block \(index)", zeroPastEnd: true)
            done += length
        }
    }
}
