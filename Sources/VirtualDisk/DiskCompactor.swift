import Foundation

/// Rewrites an image in order without its zero and unused clusters, atomically.
public enum DiskCompactor {
    public struct Result: Sendable, Codable, Equatable {
        public var oldFileSize: UInt64
        public var newFileSize: UInt64
    }

    /// Compacts `path` in its own format. An overlay keeps its base, and what it leaves to the
    /// base stays unallocated; a qcow2 with snapshots is refused (they would be lost).
    public static func compact(_ path: String, format: DiskFormat? = nil, policy: DiskAccessPolicy? = nil) throws(VirtualDiskError) -> Result {
        var resolved = format
        if resolved == nil {
            resolved = try DiskOpener.detect(try DiskFile(path: path))
        }
        let image = try DiskOpener.open(path, format: resolved, policy: policy ?? .sameDirectory(as: path))
        let oldSize = try DiskFile(path: path).allocatedBytes()
        switch image {
        case let qcow2 as QCOW2Image:
            guard qcow2.header.snapshotCount == 0 else {
                throw .invalidRequest("\(path) has internal snapshots, which compacting would lose; delete them first")
            }
            try compactQCOW2(qcow2)
        case is RawImage:
            _ = try DiskConverter.convert(image, to: path, options: .init(format: .raw, replace: true))
        case let vhd as VHDImage where vhd.backing == nil:
            _ = try DiskConverter.convert(image, to: path, options: .init(format: .vhd, vhdType: vhd.footer.diskType == .fixed ? .fixed : .dynamic, replace: true))
        case let vmdk as VMDKImage where vmdk.createType == "streamOptimized":
            _ = try DiskConverter.convert(image, to: path, options: .init(format: .vmdk, replace: true))
        default:
            throw .unsupported(path: path, feature: "compacting a \(image.format.rawValue) image of this kind (convert it instead)")
        }
        return Result(oldFileSize: oldSize, newFileSize: try DiskFile(path: path).allocatedBytes())
    }

    /// Copies this layer cluster by cluster: data that is not all zeros, and zero clusters
    /// where a base lies below (there zeros hide the base's data and must stay).
    private static func compactQCOW2(_ image: QCOW2Image) throws(VirtualDiskError) {
        let header = image.header
        let clusterSize = header.clusterSize
        let backingFormat = header.backingFormat.flatMap { DiskFormat(qemuName: $0) }
        try AtomicOutput.write(to: image.path) { (file) throws(VirtualDiskError) in
            let writer = try QCOW2Writer(file: file, virtualSize: header.virtualSize, clusterSize: clusterSize, backingFile: header.backingFile, backingFormat: backingFormat)
            var buffer = [UInt8](repeating: 0, count: Int(clusterSize))
            var offset: UInt64 = 0
            while offset < image.virtualSize {
                let length = min(clusterSize, image.virtualSize - offset)
                let extent = try image.extent(at: offset, maxLength: length)
                if extent.length < length || extent.kind == .data {
                    // Mixed or data: the guest's view of the whole cluster decides.
                    var failure: VirtualDiskError?
                    buffer.withUnsafeMutableBytes { raw in
                        do throws(VirtualDiskError) {
                            raw.initializeMemory(as: UInt8.self, repeating: 0)
                            let slice = UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(length)])
                            try image.read(at: offset, into: slice)
                            let zero = UnsafeRawBufferPointer(slice).isAllZero
                            if !zero {
                                try writer.write(at: offset, UnsafeRawBufferPointer(slice))
                            } else if image.backing != nil {
                                try writer.markZero(at: offset)
                            }
                        } catch {
                            failure = error
                        }
                    }
                    if let failure { throw failure }
                } else if extent.kind == .zero, image.backing != nil {
                    try writer.markZero(at: offset)
                }
                offset += length
            }
            try writer.finish()
        }
    }
}
