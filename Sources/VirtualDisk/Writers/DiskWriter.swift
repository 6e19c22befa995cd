/// Writes a new image in one format. Data arrives in whole units of ``granularity`` bytes
/// (the last unit of the disk may be shorter); ranges never written read as zeros.
protocol DiskWriter: AnyObject {
    var granularity: UInt64 { get }
    /// The virtual size the written image will report (formats may round it up).
    var virtualSize: UInt64 { get }
    func write(at offset: UInt64, _ buffer: UnsafeRawBufferPointer) throws(VirtualDiskError)
    /// Writes the metadata and syncs the file to stable storage.
    func finish() throws(VirtualDiskError)
}

/// A raw image: a sparse file of the virtual size.
final class RawWriter: DiskWriter {
    let file: DiskFile
    let virtualSize: UInt64
    let granularity: UInt64 = 64 << 10

    init(file: DiskFile, virtualSize: UInt64) throws(VirtualDiskError) {
        self.file = file
        self.virtualSize = virtualSize
        try file.truncate(to: virtualSize)
    }

    func write(at offset: UInt64, _ buffer: UnsafeRawBufferPointer) throws(VirtualDiskError) {
        try file.write(buffer, at: offset)
    }

    func finish() throws(VirtualDiskError) {
        try file.sync()
    }
}

extension UnsafeRawBufferPointer {
    /// Whether every byte is zero, eight at a time.
    var isAllZero: Bool {
        let words = count / 8
        for index in 0..<words where loadUnaligned(fromByteOffset: index * 8, as: UInt64.self) != 0 {
            return false
        }
        for index in words * 8..<count where self[index] != 0 {
            return false
        }
        return true
    }
}
