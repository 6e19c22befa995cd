import Foundation

/// Grows a disk and, so that the guest sees the room, its last partition.
public enum DiskResizer {
    public struct Result: Sendable, Codable, Equatable {
        public var oldSize: UInt64
        public var newSize: UInt64
        /// The partition grown, if any: its number and its new length in bytes.
        public var partitionNumber: Int?
        public var partitionLength: UInt64?
        public var scheme: PartitionTable.Scheme?
    }

    /// Grows `path` to `size` bytes (raw, qcow2 or fixed VHD), then the last partition of its
    /// MBR or GPT table to the new end (moving GPT's backup header and entries to the last
    /// sectors). The filesystem inside is left to the guest's own tools (resize2fs, …).
    public static func extend(_ path: String, to size: UInt64, format: DiskFormat? = nil, updatePartitions: Bool = true) throws(VirtualDiskError) -> Result {
        var resolved = format
        if resolved == nil {
            resolved = try DiskOpener.detect(try DiskFile(path: path))
        }
        let before = try DiskOpener.open(path, format: resolved, policy: .sameDirectory(as: path))
        let oldSize = before.virtualSize
        guard size >= oldSize else {
            throw .invalidRequest("\(path) is \(oldSize) bytes; extend only grows a disk (shrinking would lose data)")
        }
        guard size % 512 == 0 else {
            throw .invalidRequest("the new size must be a multiple of 512 bytes")
        }
        switch before {
        case is RawImage:
            try DiskFile(path: path, writable: true).truncate(to: size)
        case is QCOW2Image:
            try QCOW2Editor(path: path).resize(to: size)
        case let vhd as VHDImage where vhd.footer.diskType == .fixed:
            try extendFixedVHD(vhd, to: size)
        default:
            throw .unsupported(path: path, feature: "growing a \(before.format.rawValue) disk of this kind (convert it to qcow2 first)")
        }
        let after = try DiskOpener.open(path, format: resolved, policy: .sameDirectory(as: path))
        var result = Result(oldSize: oldSize, newSize: after.virtualSize)
        if updatePartitions, let table = try PartitionTable.read(from: after) {
            let patcher = try DiskPatcher(image: after)
            let grown = try PartitionGrower.grow(table, of: after, patcher: patcher, oldSize: oldSize)
            result.scheme = table.scheme
            result.partitionNumber = grown?.number
            result.partitionLength = grown?.length
        }
        return result
    }

    private static func extendFixedVHD(_ vhd: VHDImage, to size: UInt64) throws(VirtualDiskError) {
        let sectors = size / 512
        let geometry = VHDFooter.geometry(coveringSectors: sectors)
        let newSize = max(sectors, UInt64(geometry.cylinders) * UInt64(geometry.heads) * UInt64(geometry.sectorsPerTrack)) * 512
        var footer = vhd.footer
        footer.currentSize = newSize
        footer.cylinders = geometry.cylinders
        footer.heads = geometry.heads
        footer.sectorsPerTrack = geometry.sectorsPerTrack
        if footer.virtualSize != newSize {
            // A creator that sizes by geometry would see less; record the size as Hearth writes it.
            footer.creatorApplication = Array("hrth".utf8)
        }
        let file = try DiskFile(path: vhd.path, writable: true)
        let oldEnd = try file.size()
        try file.truncate(to: newSize + 512)
        try file.write(footer.serialized(), at: newSize)
        if oldEnd - 512 < newSize {
            // The old footer is now guest data: it must read as zeros.
            try file.write([UInt8](repeating: 0, count: 512), at: oldEnd - 512)
        }
        try file.sync()
    }
}

/// Writes bytes at guest offsets of a raw or qcow2 image, whole clusters at a time.
struct DiskPatcher {
    let image: any DiskImage
    private let rawFile: DiskFile?
    private let editor: QCOW2Editor?

    init(image: any DiskImage) throws(VirtualDiskError) {
        self.image = image
        switch image {
        case is RawImage:
            rawFile = try DiskFile(path: image.path, writable: true)
            editor = nil
        case is QCOW2Image:
            rawFile = nil
            editor = try QCOW2Editor(path: image.path)
        case let vhd as VHDImage where vhd.footer.diskType == .fixed:
            rawFile = try DiskFile(path: image.path, writable: true)
            editor = nil
        default:
            throw .unsupported(path: image.path, feature: "changing the partition table of a \(image.format.rawValue) disk")
        }
    }

    func write(_ bytes: [UInt8], at offset: UInt64) throws(VirtualDiskError) {
        if let rawFile {
            try rawFile.write(bytes, at: offset)
            return
        }
        guard let editor else { return }
        let cluster = editor.clusterSize
        var position = offset / cluster * cluster
        while position < offset + UInt64(bytes.count) {
            let length = Int(min(cluster, image.virtualSize - position))
            var data = [UInt8](repeating: 0, count: Int(cluster))
            let current = try QCOW2Reader.fresh(editor.path).read(at: position, count: length)
            data.replaceSubrange(0..<length, with: current)
            let from = max(offset, position)
            let to = min(offset + UInt64(bytes.count), position + cluster)
            data.replaceSubrange(Int(from - position)..<Int(to - position), with: bytes[Int(from - offset)..<Int(to - offset)])
            var failure: VirtualDiskError?
            data.withUnsafeBytes { raw in
                do throws(VirtualDiskError) { try editor.writeCluster(position / cluster, raw) } catch { failure = error }
            }
            if let failure { throw failure }
            position += cluster
        }
    }
}

/// A fresh reader of an image being edited, so no stale cached table is used.
enum QCOW2Reader {
    static func fresh(_ path: String) throws(VirtualDiskError) -> any DiskImage {
        try DiskOpener.open(path, format: .qcow2, policy: .sameDirectory(as: path))
    }
}
