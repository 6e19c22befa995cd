#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open image file, read and written with `pread`/`pwrite` at explicit offsets, so that one
/// file can serve concurrent readers without a shared position.
public final class DiskFile: @unchecked Sendable {
    // @unchecked: the descriptor is immutable after init and pread/pwrite are thread-safe.
    public let path: String
    public let isWritable: Bool
    private let descriptor: Int32
    /// When set, `sync()` does nothing: for scratch output the caller accepts losing in a crash
    /// (like `qemu-img convert`'s default cache=unsafe). Set before the file is shared.
    public var skipsSync = false

    /// Opens an existing file.
    public init(path: String, writable: Bool = false) throws(VirtualDiskError) {
        let fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else {
            throw .io(path: path, operation: "open", reason: Self.lastError())
        }
        self.path = path
        self.isWritable = writable
        self.descriptor = fd
    }

    /// Creates a new file (mode 0600), failing if one exists unless `replace` is set.
    public static func create(path: String, replace: Bool = false) throws(VirtualDiskError) -> DiskFile {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL), 0o600)
        guard fd >= 0 else {
            throw .io(path: path, operation: "create", reason: lastError())
        }
        close(fd)
        return try DiskFile(path: path, writable: true)
    }

    deinit {
        close(descriptor)
    }

    /// The file's size in bytes.
    public func size() throws(VirtualDiskError) -> UInt64 {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw .io(path: path, operation: "stat", reason: Self.lastError())
        }
        return UInt64(info.st_size)
    }

    /// Bytes the file occupies on its filesystem (less than its size when sparse).
    public func allocatedBytes() throws(VirtualDiskError) -> UInt64 {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw .io(path: path, operation: "stat", reason: Self.lastError())
        }
        return UInt64(info.st_blocks) * 512
    }

    /// Fills `buffer` from `offset`. Bytes past the end of the file read as zeros only when
    /// `zeroPastEnd` is set; otherwise a short file is corruption named by `field`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, field: String = "data", zeroPastEnd: Bool = false) throws(VirtualDiskError) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let result = pread(descriptor, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, operation: "read", reason: Self.lastError())
            }
            if result == 0 {
                guard zeroPastEnd else {
                    throw .corrupt(path: path, field: field, offset: offset, reason: "the file ends at \((try? size()) ?? 0) bytes, before the \(buffer.count) bytes this needs")
                }
                (base + done).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - done)
                return
            }
            done += result
        }
    }

    /// Reads `count` bytes at `offset` into a new array.
    public func read(count: Int, at offset: UInt64, field: String = "data", zeroPastEnd: Bool = false) throws(VirtualDiskError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var failure: VirtualDiskError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(VirtualDiskError) {
                try read(into: buffer, at: offset, field: field, zeroPastEnd: zeroPastEnd)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Writes all of `buffer` at `offset`.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(VirtualDiskError) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let result = pwrite(descriptor, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, operation: "write", reason: Self.lastError())
            }
            done += result
        }
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws(VirtualDiskError) {
        var failure: VirtualDiskError?
        bytes.withUnsafeBytes { buffer in
            do throws(VirtualDiskError) {
                try write(buffer, at: offset)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Sets the file's size; growing leaves a hole that reads as zeros.
    public func truncate(to size: UInt64) throws(VirtualDiskError) {
        guard ftruncate(descriptor, off_t(size)) == 0 else {
            throw .io(path: path, operation: "resize", reason: Self.lastError())
        }
    }

    /// Flushes data and metadata to stable storage.
    public func sync() throws(VirtualDiskError) {
        guard !skipsSync else { return }
        guard fsync(descriptor) == 0 else {
            throw .io(path: path, operation: "sync", reason: Self.lastError())
        }
    }

    /// The start of the next data region at or after `offset` (Self.seekData), or `nil` when the
    /// rest of the file is a hole. Filesystems without hole support report everything as data.
    func nextData(from offset: UInt64) -> UInt64? {
        let result = lseek(descriptor, off_t(offset), Self.seekData)
        return result < 0 ? nil : UInt64(result)
    }

    /// The start of the next hole at or after `offset` (Self.seekHole); the end of file counts.
    func nextHole(from offset: UInt64) -> UInt64 {
        let result = lseek(descriptor, off_t(offset), Self.seekHole)
        return result < 0 ? ((try? size()) ?? offset) : UInt64(result)
    }

    // Linux's values; Glibc exports them only under _GNU_SOURCE.
    private static let seekData: Int32 = 3
    private static let seekHole: Int32 = 4

    static func lastError() -> String {
        String(cString: strerror(errno))
    }
}
