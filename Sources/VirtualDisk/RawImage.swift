/// A raw image: the guest's bytes as they are. Holes in a sparse file read as zeros and are
/// reported as `.zero` extents, so converting a sparse raw file stays sparse.
public final class RawImage: DiskImage {
    public let format = DiskFormat.raw
    public let path: String
    public let virtualSize: UInt64
    public let backing: (any DiskImage)? = nil
    let file: DiskFile
    /// Where the guest's byte 0 is in the file (a VMDK flat extent may start later).
    let dataOffset: UInt64

    public init(file: DiskFile, virtualSize: UInt64? = nil, dataOffset: UInt64 = 0) throws(VirtualDiskError) {
        self.file = file
        self.path = file.path
        self.dataOffset = dataOffset
        let size = try file.size()
        self.virtualSize = virtualSize ?? (size > dataOffset ? size - dataOffset : 0)
    }

    public func extent(at offset: UInt64, maxLength: UInt64) throws(VirtualDiskError) -> Extent {
        let length = min(maxLength, virtualSize - offset)
        let position = dataOffset + offset
        guard let data = file.nextData(from: position) else {
            return Extent(offset: offset, length: length, kind: .zero)
        }
        if data > position {
            return Extent(offset: offset, length: min(length, data - position), kind: .zero)
        }
        let hole = file.nextHole(from: position)
        return Extent(offset: offset, length: max(1, min(length, hole - position)), kind: .data)
    }

    public func readData(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VirtualDiskError) {
        try file.read(into: buffer, at: dataOffset + offset, zeroPastEnd: true)
    }
}
