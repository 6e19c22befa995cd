import Foundation

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
    private let data: DirectWriter

    init(file: DiskFile, virtualSize: UInt64) throws(VirtualDiskError) {
        self.file = file
        self.virtualSize = virtualSize
        data = DirectWriter(file: file)
        try file.truncate(to: virtualSize)
    }

    func write(at offset: UInt64, _ buffer: UnsafeRawBufferPointer) throws(VirtualDiskError) {
        try data.write(buffer, at: offset)
    }

    func finish() throws(VirtualDiskError) {
        try file.sync()
    }
}

/// Writes a new image's data around the page cache (`O_DIRECT`, through a second descriptor),
/// as `qemu-img convert -t none` does: converting a large image then neither evicts what the
/// machine's running VMs keep cached nor pays for filling the cache with pages written once.
/// On these machines writing through the cache cost 1.2 to 6.6 times as much (`dd` of 2 GiB,
/// unsynced and synced), and qemu-img's default takes about three times Hearth's time for a
/// 4 GiB conversion (docs/PERFORMANCE.md). Unaligned pieces, and filesystems that refuse
/// `O_DIRECT`, go through the file's ordinary descriptor; `DiskFile.sync()` covers both.
final class DirectWriter {
    let file: DiskFile
    private var descriptor: Int32
    static let alignment = 4096
    /// Glibc's `O_DIRECT`, which Swift's Glibc module leaves out (it needs `_GNU_SOURCE`).
    #if arch(x86_64) || arch(i386)
    static let openDirect: Int32 = 0o40000
    #else
    static let openDirect: Int32 = 0o200000
    #endif

    init(file: DiskFile) {
        self.file = file
        descriptor = open(file.path, O_WRONLY | Self.openDirect | O_CLOEXEC)
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(VirtualDiskError) {
        let alignment = Self.alignment
        guard descriptor >= 0, let base = buffer.baseAddress, Int(bitPattern: base) % alignment == 0,
              buffer.count % alignment == 0, offset % UInt64(alignment) == 0 else {
            try file.write(buffer, at: offset)
            return
        }
        var done = 0
        while done < buffer.count {
            let result = pwrite(descriptor, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                if errno == EINVAL {
                    // The filesystem takes O_DIRECT opens but not these writes: use the cache.
                    close(descriptor)
                    descriptor = -1
                    break
                }
                throw .io(path: file.path, operation: "write", reason: DiskFile.lastError())
            }
            done += result
        }
        if done < buffer.count {
            try file.write(UnsafeRawBufferPointer(rebasing: buffer[done...]), at: offset + UInt64(done))
        }
    }
}

/// Memory aligned for `O_DIRECT` I/O, freed with its owner.
final class AlignedBuffer: @unchecked Sendable {
    // @unchecked: one owner at a time (the reader fills it, then hands it to the writer).
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        bytes = .allocate(byteCount: count, alignment: DirectWriter.alignment)
    }

    deinit { bytes.deallocate() }
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
