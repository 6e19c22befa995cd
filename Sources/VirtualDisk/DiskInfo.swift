/// What `hearth disk info` shows: the format, sizes, backing chain and snapshots.
public struct DiskInfo: Sendable, Codable, Equatable {
    public struct Layer: Sendable, Codable, Equatable {
        public var path: String
        public var format: DiskFormat
        public var virtualSize: UInt64
        /// Bytes the file occupies on its filesystem.
        public var allocatedBytes: UInt64
        public var fileSize: UInt64
        /// Format details: qcow2 version and cluster size, VHD type, VMDK create type, …
        public var details: [String: String]
    }

    public var path: String
    public var format: DiskFormat
    public var virtualSize: UInt64
    public var allocatedBytes: UInt64
    /// This image first, then its backing files.
    public var chain: [Layer]
    public var snapshots: [QCOW2Snapshot]

    public init(of image: any DiskImage) throws(VirtualDiskError) {
        var layers: [Layer] = []
        for layer in image.chain {
            let file = try DiskFile(path: layer.path)
            layers.append(Layer(
                path: layer.path, format: layer.format, virtualSize: layer.virtualSize,
                allocatedBytes: try file.allocatedBytes(), fileSize: try file.size(), details: Self.details(of: layer)
            ))
        }
        path = image.path
        format = image.format
        virtualSize = image.virtualSize
        allocatedBytes = layers.first?.allocatedBytes ?? 0
        chain = layers
        snapshots = try (image as? QCOW2Image)?.snapshots() ?? []
    }

    static func details(of image: any DiskImage) -> [String: String] {
        switch image {
        case let qcow2 as QCOW2Image:
            let header = qcow2.header
            var details = [
                "version": "\(header.version)",
                "clusterSize": "\(header.clusterSize)",
                "compressionType": "\(header.compressionType)",
                "refcountBits": "\(1 << header.refcountOrder)",
                "extendedL2": "\(header.hasExtendedL2)",
            ]
            if header.incompatibleFeatures.contains(.dirty) { details["dirty"] = "true" }
            if header.incompatibleFeatures.contains(.corrupt) { details["corrupt"] = "true" }
            if let backing = header.backingFile { details["backingFile"] = backing }
            if let format = header.backingFormat { details["backingFormat"] = format }
            if let data = header.externalDataFile { details["dataFile"] = data }
            return details
        case let vhd as VHDImage:
            return ["type": vhd.diskType]
        case let vmdk as VMDKImage:
            return ["createType": vmdk.createType, "extents": "\(vmdk.extents.count)"]
        default:
            return [:]
        }
    }
}

/// Compares what two images show a guest.
public enum DiskComparison {
    /// The first guest offset at which `a` and `b` differ, or `nil` when they show the same
    /// bytes. Where one is larger, its extra bytes must be zeros (as `qemu-img compare` has it).
    public static func firstDifference(_ a: any DiskImage, _ b: any DiskImage, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws(VirtualDiskError) -> UInt64? {
        let total = max(a.virtualSize, b.virtualSize)
        let chunk: UInt64 = 1 << 20
        var offset: UInt64 = 0
        while offset < total {
            let length = Int(min(chunk, total - offset))
            let left = offset < a.virtualSize ? try a.read(at: offset, count: Int(min(UInt64(length), a.virtualSize - offset))) : []
            let right = offset < b.virtualSize ? try b.read(at: offset, count: Int(min(UInt64(length), b.virtualSize - offset))) : []
            for index in 0..<length {
                let x = index < left.count ? left[index] : 0
                let y = index < right.count ? right[index] : 0
                if x != y { return offset + UInt64(index) }
            }
            offset += UInt64(length)
            progress(min(offset, total), total)
        }
        return nil
    }
}
