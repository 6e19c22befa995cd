import Foundation

/// qcow2 overlays over a read-only base: the self-cleaning system disk.
public enum Overlay {
    /// Creates an empty qcow2 overlay at `path` over `base`. The base is named relative to the
    /// overlay's folder when it lies in it, so the pair can be moved together.
    ///
    /// - Parameters:
    ///   - baseFormat: the base's format, recorded in the overlay so it is never guessed.
    ///   - virtualSize: defaults to the base's size; may be larger.
    public static func create(at path: String, base: String, baseFormat: DiskFormat, virtualSize: UInt64? = nil, clusterSize: UInt64 = 64 << 10, replace: Bool = false) throws(VirtualDiskError) {
        let baseImage = try DiskOpener.open(base, format: baseFormat, policy: .sameDirectory(as: base))
        let size = virtualSize ?? baseImage.virtualSize
        guard size >= baseImage.virtualSize else {
            throw .invalidRequest("an overlay cannot be smaller than its base (\(baseImage.virtualSize) bytes)")
        }
        if !replace, FileManager.default.fileExists(atPath: path) {
            throw .invalidRequest("\(path) already exists; remove it or ask to replace it")
        }
        let overlayDirectory = DiskAccessPolicy.canonical((path as NSString).deletingLastPathComponent)
        let canonicalBase = DiskAccessPolicy.canonical(base)
        let name = (canonicalBase as NSString).deletingLastPathComponent == overlayDirectory ? (canonicalBase as NSString).lastPathComponent : canonicalBase
        try AtomicOutput.write(to: path) { (file) throws(VirtualDiskError) in
            let writer = try QCOW2Writer(file: file, virtualSize: (size + 511) / 512 * 512, clusterSize: clusterSize, backingFile: name, backingFormat: baseFormat)
            try writer.finish()
        }
    }

    /// Throws away everything written to the overlay at `path`, keeping its base, size and
    /// cluster size. Takes the same time whatever the disk's size or how much was written: a
    /// new empty overlay (a few clusters of metadata) is renamed over the old one.
    public static func reset(_ path: String) throws(VirtualDiskError) {
        let file = try DiskFile(path: path)
        let header = try QCOW2Image.readHeader(file)
        guard let backing = header.backingFile else {
            throw .invalidRequest("\(path) is not an overlay (it has no backing file); resetting it would erase the disk")
        }
        let format = header.backingFormat.flatMap { DiskFormat(qemuName: $0) }
        try AtomicOutput.write(to: path) { (file) throws(VirtualDiskError) in
            let writer = try QCOW2Writer(file: file, virtualSize: header.virtualSize, clusterSize: header.clusterSize, backingFile: backing, backingFormat: format)
            try writer.finish()
        }
    }
}

extension DiskFormat {
    /// The format QEMU calls `name` (`vpc` is VHD).
    public init?(qemuName name: String) {
        if name == "vpc" {
            self = .vhd
        } else {
            self.init(rawValue: name)
        }
    }
}
