import Foundation

/// Whole files or nothing: written beside the target, fsynced, renamed over it, and the folder
/// fsynced, so a crash leaves the old file or the new one, never half of either.
enum AtomicFile {
    static func write(_ data: Data, to url: URL, mode: mode_t = 0o644) throws(ImageSyncError) {
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-" + url.lastPathComponent
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .fromErrno(path: temporary, operation: "create") }
        var failure: ImageSyncError?
        data.withUnsafeBytes { bytes in
            do throws(ImageSyncError) { try FileIO.writeAll(fd, bytes, path: temporary) } catch { failure = error }
        }
        if failure == nil && fsync(fd) != 0 { failure = .fromErrno(path: temporary, operation: "fsync") }
        close(fd)
        if failure == nil && fchmodat(AT_FDCWD, temporary, mode, 0) != 0 {
            failure = .fromErrno(path: temporary, operation: "chmod")
        }
        if failure == nil && rename(temporary, url.path) != 0 {
            failure = .fromErrno(path: url.path, operation: "rename into place")
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
        syncDirectory(directory)
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}

/// Writes that finish: short writes and EINTR retried, ENOSPC reported as a full disk.
enum FileIO {
    /// Writes all of `bytes` at `offset` (with pwrite), or at the file position when nil.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64? = nil, path: String) throws(ImageSyncError) {
        var done = 0
        while done < bytes.count {
            let pointer = bytes.baseAddress! + done
            let n = offset.map { pwrite(fd, pointer, bytes.count - done, off_t($0) + off_t(done)) } ?? write(fd, pointer, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .fromErrno(path: path, operation: "write", needed: UInt64(bytes.count - done))
            }
            done += n
        }
    }

    /// Reads up to `count` bytes at `offset`, retrying short reads and EINTR; returns the bytes
    /// read (less than `count` only at the end of the file), or -1 with errno set.
    static func readFully(_ fd: Int32, into pointer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, pointer + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return -1
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// An exclusive advisory lock on a file, released when the process ends (even by kill -9).
final class FileLock {
    private let descriptor: Int32

    /// Takes the lock or throws `busy` with `message` at once.
    init(path: String, busy message: String) throws(ImageSyncError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .fromErrno(path: path, operation: "open the lock file") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw .busy(message)
        }
        descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
