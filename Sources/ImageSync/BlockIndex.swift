import Foundation

/// The block index of one image version: for every block that holds data, its SHA-256 and where
/// its (usually compressed) bytes sit in which pack. All-zero blocks are left out. Stored as a
/// fixed-record binary table, zstd-compressed; its length and hash are signed in the targets
/// metadata, so every block it names can be checked.
///
/// A pack holds frames. A frame is one block, raw or compressed, or a run of whole blocks new in
/// the same publish compressed together as one zstd frame (a frame of several blocks compresses
/// far better than each block alone). An entry names its frame (pack, offset, stored length, how
/// many blocks it holds) and its slot in it.
public struct BlockIndex: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        /// Block number: the block starts at `block * blockSize` in the image.
        public var block: UInt64
        /// Bytes of image data (the block size, or less for the image's last block).
        public var length: UInt32
        public var digest: Digest
        /// Index into `packs`.
        public var pack: UInt32
        public var packOffset: UInt64
        /// Bytes of the whole frame holding the block.
        public var storedLength: UInt32
        public var compressed: Bool
        /// Whole blocks in the frame (1: the block alone), and this block's place among them.
        public var frameBlocks: UInt8 = 1
        public var frameSlot: UInt8 = 0

        public init(block: UInt64, length: UInt32, digest: Digest, pack: UInt32, packOffset: UInt64, storedLength: UInt32,
                    compressed: Bool, frameBlocks: UInt8 = 1, frameSlot: UInt8 = 0) {
            self.block = block
            self.length = length
            self.digest = digest
            self.pack = pack
            self.packOffset = packOffset
            self.storedLength = storedLength
            self.compressed = compressed
            self.frameBlocks = frameBlocks
            self.frameSlot = frameSlot
        }

        /// Bytes the frame decompresses to.
        public func frameLength(blockSize: Int) -> Int { frameBlocks > 1 ? Int(frameBlocks) * blockSize : Int(length) }
    }

    public var virtualSize: UInt64
    public var blockSize: Int
    public var packs: [Digest]
    public var entries: [Entry]

    /// Version 2 adds frames of several blocks; version 1 (every block its own frame) is still read.
    static let magic: [UInt8] = Array("HRTHIDX2".utf8)
    static let magicVersion1: [UInt8] = Array("HRTHIDX1".utf8)
    static let headerSize = 32
    static let entrySize = 64
    public static let minimumBlockSize = 4096
    public static let maximumBlockSize = 4 << 20
    /// Decoded indexes larger than this are refused whatever the header claims (4 M blocks).
    static let maximumEntries = 4 << 20
    /// A frame decompresses to at most this much (and never to more than 255 blocks), so a
    /// client's memory for one stays small whatever the index says.
    public static let maximumFrameBytes = 4 << 20
    /// A frame of several blocks is stored in at most this many bytes. A cut connection loses
    /// at most one frame in flight plus the gap before it (at most 64 KiB), which keeps what a
    /// resumed pull downloads again under 1 MiB.
    public static let maximumFrameStored = 896 << 10

    public static func maximumFrameBlocks(blockSize: Int) -> Int { max(1, min(255, maximumFrameBytes / blockSize)) }

    /// The binary form, zstd-compressed.
    public func encoded() -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: Self.headerSize + packs.count * 32 + entries.count * Self.entrySize)
        raw.withUnsafeMutableBytes { out in
            out.copyBytes(from: Self.magic)
            out.storeBytes(of: virtualSize.littleEndian, toByteOffset: 8, as: UInt64.self)
            out.storeBytes(of: UInt32(blockSize).littleEndian, toByteOffset: 16, as: UInt32.self)
            out.storeBytes(of: UInt32(packs.count).littleEndian, toByteOffset: 20, as: UInt32.self)
            out.storeBytes(of: UInt64(entries.count).littleEndian, toByteOffset: 24, as: UInt64.self)
            var offset = Self.headerSize
            for pack in packs {
                pack.write(to: out, at: offset)
                offset += 32
            }
            for entry in entries {
                out.storeBytes(of: entry.block.littleEndian, toByteOffset: offset, as: UInt64.self)
                out.storeBytes(of: entry.length.littleEndian, toByteOffset: offset + 8, as: UInt32.self)
                entry.digest.write(to: out, at: offset + 12)
                out.storeBytes(of: entry.pack.littleEndian, toByteOffset: offset + 44, as: UInt32.self)
                out.storeBytes(of: entry.packOffset.littleEndian, toByteOffset: offset + 48, as: UInt64.self)
                out.storeBytes(of: entry.storedLength.littleEndian, toByteOffset: offset + 56, as: UInt32.self)
                out.storeBytes(of: entry.compressed ? 1 : 0, toByteOffset: offset + 60, as: UInt8.self)
                out.storeBytes(of: entry.frameBlocks, toByteOffset: offset + 61, as: UInt8.self)
                out.storeBytes(of: entry.frameSlot, toByteOffset: offset + 62, as: UInt8.self)
                offset += Self.entrySize
            }
        }
        return Zstd.compressWhole(raw, level: 6)
    }

    /// Parses and checks an index; every field is bounds-checked.
    public init(decoding data: [UInt8]) throws(ImageSyncError) {
        guard let raw = Zstd.decompress(data, limit: Self.headerSize + (1 << 16) * 32 + Self.maximumEntries * Self.entrySize) else {
            throw .corruptData("the block index is not a valid zstd stream or is too large")
        }
        func bad(_ why: String) -> ImageSyncError { .corruptData("the block index is malformed: \(why)") }
        guard raw.count >= Self.headerSize else { throw bad("no index header") }
        let version1 = Array(raw[0..<8]) == Self.magicVersion1
        guard version1 || Array(raw[0..<8]) == Self.magic else {
            if Array(raw[0..<7]) == Array(Self.magic[0..<7]) {
                throw .corruptData("the block index is of format \(String(decoding: raw[7..<8], as: UTF8.self)), newer than this Hearth reads (1 and 2); update Hearth")
            }
            throw bad("no index header")
        }
        var parsed: (UInt64, Int, [Digest], [Entry])?
        var failure: ImageSyncError?
        raw.withUnsafeBytes { input in
            let virtualSize = UInt64(littleEndian: input.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            let blockSize = Int(UInt32(littleEndian: input.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
            let packCount = Int(UInt32(littleEndian: input.loadUnaligned(fromByteOffset: 20, as: UInt32.self)))
            let entryCount = UInt64(littleEndian: input.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            guard blockSize >= Self.minimumBlockSize, blockSize <= Self.maximumBlockSize, blockSize & (blockSize - 1) == 0 else {
                failure = bad("block size \(blockSize)"); return
            }
            let blocksInImage = (virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize)
            guard entryCount <= blocksInImage, entryCount <= UInt64(Self.maximumEntries), packCount <= 1 << 16,
                  raw.count == Self.headerSize + packCount * 32 + Int(entryCount) * Self.entrySize else {
                failure = bad("counts do not match the size (\(entryCount) blocks, \(packCount) packs)"); return
            }
            var offset = Self.headerSize
            var packs: [Digest] = []
            packs.reserveCapacity(packCount)
            for _ in 0..<packCount {
                packs.append(Digest(bytes: UnsafeRawBufferPointer(rebasing: input[offset..<offset + 32])))
                offset += 32
            }
            var entries: [Entry] = []
            entries.reserveCapacity(Int(entryCount))
            var previous: UInt64?
            for _ in 0..<Int(entryCount) {
                let block = UInt64(littleEndian: input.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                let length = UInt32(littleEndian: input.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
                let digest = Digest(bytes: UnsafeRawBufferPointer(rebasing: input[offset + 12..<offset + 44]))
                let pack = UInt32(littleEndian: input.loadUnaligned(fromByteOffset: offset + 44, as: UInt32.self))
                let packOffset = UInt64(littleEndian: input.loadUnaligned(fromByteOffset: offset + 48, as: UInt64.self))
                let stored = UInt32(littleEndian: input.loadUnaligned(fromByteOffset: offset + 56, as: UInt32.self))
                let flags = input.load(fromByteOffset: offset + 60, as: UInt8.self)
                let frameBlocks = version1 ? 1 : input.load(fromByteOffset: offset + 61, as: UInt8.self)
                let frameSlot = version1 ? 0 : input.load(fromByteOffset: offset + 62, as: UInt8.self)
                offset += Self.entrySize
                guard block < blocksInImage, previous.map({ block > $0 }) ?? true else {
                    failure = bad("block \(block) out of order or past the end"); return
                }
                previous = block
                let expected = min(UInt64(blockSize), virtualSize - block * UInt64(blockSize))
                guard UInt64(length) == expected, Int(pack) < packCount, flags <= 1, stored > 0,
                      flags == 1 ? Int(stored) <= 2 * blockSize * Int(frameBlocks) : stored == length,
                      packOffset <= UInt64.max - UInt64(stored) else {
                    failure = bad("entry for block \(block) is inconsistent"); return
                }
                // A frame of several blocks: compressed, of whole blocks, within the limits.
                guard frameBlocks >= 1, frameSlot < frameBlocks,
                      frameBlocks == 1 || (flags == 1 && Int(length) == blockSize
                                           && Int(frameBlocks) <= Self.maximumFrameBlocks(blockSize: blockSize)) else {
                    failure = bad("entry for block \(block) names slot \(frameSlot) of a frame of \(frameBlocks) blocks"); return
                }
                entries.append(Entry(block: block, length: length, digest: digest, pack: pack, packOffset: packOffset,
                                     storedLength: stored, compressed: flags == 1, frameBlocks: frameBlocks, frameSlot: frameSlot))
            }
            parsed = (virtualSize, blockSize, packs, entries)
        }
        if let failure { throw failure }
        guard let parsed else { throw bad("unreadable") }
        (virtualSize, blockSize, packs, entries) = parsed
    }

    public init(virtualSize: UInt64, blockSize: Int, packs: [Digest], entries: [Entry]) {
        self.virtualSize = virtualSize
        self.blockSize = blockSize
        self.packs = packs
        self.entries = entries
    }

    /// Bytes the version's frames take in packs, each counted once.
    public var storedBytes: UInt64 {
        var seen = Set<FrameAddress>()
        var total: UInt64 = 0
        for entry in entries where seen.insert(FrameAddress(pack: packs[Int(entry.pack)], offset: entry.packOffset)).inserted {
            total += UInt64(entry.storedLength)
        }
        return total
    }

    public var dataBytes: UInt64 { entries.reduce(0) { $0 + UInt64($1.length) } }
}

/// Where a frame sits: the pack and the offset in it.
struct FrameAddress: Hashable {
    var pack: Digest
    var offset: UInt64
}
