import Foundation

/// Operations on a chain of images: commit an overlay into its base, rebase it onto another,
/// and grow a disk.
public enum DiskLayers {
    /// Writes everything the qcow2 overlay at `overlay` holds into its base (raw or qcow2),
    /// then empties the overlay. Whole base clusters are written, read through the overlay.
    public static func commit(overlay: String, policy: DiskAccessPolicy, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws(VirtualDiskError) {
        guard let image = try DiskOpener.open(overlay, format: .qcow2, policy: policy) as? QCOW2Image,
              let base = image.backing
        else {
            throw .invalidRequest("\(overlay) has no backing file to commit into")
        }
        if base.virtualSize < image.virtualSize {
            _ = try DiskResizer.extend(base.path, to: image.virtualSize, format: base.format, updatePartitions: false)
        }
        let sink: (UInt64, UnsafeRawBufferPointer) throws(VirtualDiskError) -> Void
        let unit: UInt64
        switch base {
        case is RawImage:
            let file = try DiskFile(path: base.path, writable: true)
            let size = image.virtualSize
            unit = 64 << 10
            // The last unit may reach past the disk; a raw file must not grow with it.
            sink = { (offset, data) throws(VirtualDiskError) in
                try file.write(UnsafeRawBufferPointer(rebasing: data[0..<Int(min(UInt64(data.count), size - offset))]), at: offset)
            }
        case let qcow2 as QCOW2Image:
            let editor = try QCOW2Editor(path: qcow2.path)
            unit = editor.clusterSize
            sink = { (offset, data) throws(VirtualDiskError) in try editor.writeCluster(offset / unit, data) }
        default:
            throw .unsupported(path: base.path, feature: "committing into a \(base.format.rawValue) base")
        }
        try forEachUnit(of: image, unit: unit, where: { $0 != .unallocated }, progress: progress) { (offset, data) throws(VirtualDiskError) in
            try sink(offset, data)
        }
        try DiskFile(path: base.path).sync()
        try Overlay.reset(overlay)
    }

    /// Points the qcow2 overlay at `newBase` (or at nothing), first copying into the overlay
    /// every cluster where the old chain and the new base differ, so the guest sees the same
    /// bytes. With `unsafe`, only the name changes (for a base that was moved or renamed).
    public static func rebase(overlay: String, onto newBase: String?, format newFormat: DiskFormat?, policy: DiskAccessPolicy, unsafe: Bool = false, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws(VirtualDiskError) {
        var format = newFormat
        if let newBase, format == nil {
            format = try DiskOpener.detect(try DiskFile(path: newBase))
        }
        let editor = try QCOW2Editor(path: overlay)
        if !unsafe {
            guard let image = try DiskOpener.open(overlay, format: .qcow2, policy: policy) as? QCOW2Image else {
                throw .invalidRequest("\(overlay) is not a qcow2 image")
            }
            let target = try newBase.map { (path) throws(VirtualDiskError) in try DiskOpener.open(path, format: format, policy: policy) }
            let unit = editor.clusterSize
            try forEachUnit(of: image, unit: unit, where: { $0 == .unallocated }, progress: progress) { (offset, data) throws(VirtualDiskError) in
                // `data` is what the guest sees now; keep it where the new base would differ.
                var differs = true
                if let target, offset < target.virtualSize {
                    let length = Int(min(unit, target.virtualSize - offset))
                    let other = try target.read(at: offset, count: length)
                    differs = !other.withUnsafeBytes { $0.elementsEqual(UnsafeRawBufferPointer(rebasing: data[0..<length])) }
                        || !UnsafeRawBufferPointer(rebasing: data[length...]).isAllZero
                } else if target == nil {
                    differs = !data.isAllZero
                }
                if differs {
                    try editor.writeCluster(offset / unit, data)
                }
            }
        }
        let name = newBase.map { base in
            let overlayFolder = DiskAccessPolicy.canonical((overlay as NSString).deletingLastPathComponent)
            let canonicalBase = DiskAccessPolicy.canonical(base)
            return (canonicalBase as NSString).deletingLastPathComponent == overlayFolder ? (canonicalBase as NSString).lastPathComponent : canonicalBase
        }
        try editor.rewriteBacking(name: name, format: newBase == nil ? nil : format)
    }

    /// Calls `body` with the guest's view of each `unit`-sized piece of `image` in which its
    /// own layer has an extent of a kind `matching` accepts.
    static func forEachUnit(of image: any DiskImage, unit: UInt64, where matching: (ExtentKind) -> Bool, progress: (UInt64, UInt64) -> Void, _ body: (UInt64, UnsafeRawBufferPointer) throws(VirtualDiskError) -> Void) throws(VirtualDiskError) {
        var buffer = [UInt8](repeating: 0, count: Int(unit))
        var offset: UInt64 = 0
        while offset < image.virtualSize {
            let length = min(unit, image.virtualSize - offset)
            var position = offset
            var selected = false
            while position < offset + length {
                let extent = try image.extent(at: position, maxLength: offset + length - position)
                if matching(extent.kind) { selected = true; break }
                position += extent.length
            }
            if selected {
                var failure: VirtualDiskError?
                buffer.withUnsafeMutableBytes { raw in
                    do throws(VirtualDiskError) {
                        raw.initializeMemory(as: UInt8.self, repeating: 0)
                        try image.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(length)]))
                        try body(offset, UnsafeRawBufferPointer(raw))
                    } catch {
                        failure = error
                    }
                }
                if let failure { throw failure }
            }
            offset += length
            progress(offset, image.virtualSize)
        }
    }
}
