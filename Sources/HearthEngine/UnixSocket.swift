import Foundation

/// The few unix-socket calls the control API and the console need, in one place.
public enum UnixSocket {
    /// A `sockaddr_un` for `path`, or `nil` when the path is longer than the 107 bytes it holds.
    static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// Connects to the stream socket at `path` and returns its descriptor (the caller closes it).
    ///
    /// - Throws: ``EngineError/unreachable(path:reason:)`` when nothing listens there.
    public static func connect(_ path: String) throws -> Int32 {
        guard var address = address(path) else {
            throw EngineError.unreachable(path: path, reason: "the path is longer than 107 bytes")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EngineError.unreachable(path: path, reason: String(cString: strerror(errno))) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw EngineError.unreachable(path: path, reason: reason)
        }
        return fd
    }

    /// Binds a listening stream socket at `path` (mode `mode`); the caller closes it.
    static func listen(_ path: String, mode: mode_t) throws -> Int32 {
        guard var address = address(path) else {
            throw EngineError.io(path: path, reason: "the socket path is longer than 107 bytes")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EngineError.io(path: path, reason: String(cString: strerror(errno))) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, mode) == 0, Glibc.listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw EngineError.io(path: path, reason: reason)
        }
        return fd
    }
}
