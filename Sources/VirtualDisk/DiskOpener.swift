/// Opens disk images with their backing chains, under a ``DiskAccessPolicy``.
public enum DiskOpener {
    /// Opens `path` for reading.
    ///
    /// - Parameters:
    ///   - format: the format the caller knows the file to be; `nil` detects it from the
    ///     file's magic. A named format is never second-guessed.
    ///   - policy: which files the image may reference (backing files, extents, data files).
    /// - Throws: ``VirtualDiskError``.
    public static func open(_ path: String, format: DiskFormat? = nil, policy: DiskAccessPolicy) throws(VirtualDiskError) -> any DiskImage {
        do {
            return try open(path, format: format, policy: policy, depth: 1, referencedBy: nil)
        } catch .backingChainTooDeep(_, let limit) {
            // Name the image the user opened, not the link where the limit was reached.
            throw .backingChainTooDeep(path: path, limit: limit)
        }
    }

    static func open(_ path: String, format: DiskFormat?, policy: DiskAccessPolicy, depth: Int, referencedBy: String?) throws(VirtualDiskError) -> any DiskImage {
        guard depth <= policy.maximumChainDepth else {
            throw .backingChainTooDeep(path: referencedBy ?? path, limit: policy.maximumChainDepth)
        }
        let file = try DiskFile(path: path)
        var resolvedFormat = format
        if resolvedFormat == nil {
            resolvedFormat = try detect(file)
        }
        switch resolvedFormat ?? .raw {
        case .raw:
            return try RawImage(file: file)
        case .qcow2:
            return try openQCOW2(file, policy: policy, depth: depth)
        case .vhd:
            return try VHDImage.open(file, policy: policy, depth: depth)
        case .vmdk:
            return try VMDKImage.open(file, policy: policy, depth: depth)
        }
    }

    /// The format of an open file, from its magic numbers.
    public static func detect(_ file: DiskFile) throws(VirtualDiskError) -> DiskFormat {
        let size = try file.size()
        let head = try file.read(count: Int(min(size, 512)), at: 0, field: "header")
        let tail = size >= 512 ? try file.read(count: 512, at: size - 512, field: "footer") : []
        return DiskFormat.detect(head: head, tail: tail)
    }

    private static func openQCOW2(_ file: DiskFile, policy: DiskAccessPolicy, depth: Int) throws(VirtualDiskError) -> QCOW2Image {
        let header = try QCOW2Image.readHeader(file)
        let l1 = try QCOW2Image.readL1(file, offset: header.l1TableOffset, count: header.l1Size, field: "L1 table")
        var backing: (any DiskImage)?
        if let name = header.backingFile {
            let backingPath = try policy.resolve(name, referencedBy: file.path, role: "backing file")
            let backingFormat = try header.backingFormat.map { (name) throws(VirtualDiskError) -> DiskFormat in
                guard let format = DiskFormat(rawValue: name) else {
                    throw .unsupported(path: file.path, feature: "a backing file in format '\(name)'")
                }
                return format
            }
            backing = try open(backingPath, format: backingFormat, policy: policy, depth: depth + 1, referencedBy: file.path)
        }
        var dataFile: DiskFile?
        if header.incompatibleFeatures.contains(.externalDataFile) {
            guard let name = header.externalDataFile else {
                throw .corrupt(path: file.path, field: "incompatible_features", offset: 72, reason: "an external data file is flagged but not named")
            }
            dataFile = try DiskFile(path: try policy.resolve(name, referencedBy: file.path, role: "external data file"))
        }
        return try QCOW2Image(file: file, header: header, l1: l1, virtualSize: header.virtualSize, backing: backing, dataFile: dataFile, snapshot: nil)
    }
}
