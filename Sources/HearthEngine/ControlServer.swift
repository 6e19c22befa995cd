import Foundation
import Logging

/// Serves the control API on a unix socket. The socket is created mode 0660 in a folder of the
/// Engine's, and every connection's peer is checked with SO_PEERCRED: only root and the users
/// listed may control the VMs. Each connection is served on a thread of its own (there are a
/// handful of local clients at most); requests are carried out on the Engine actor.
public final class ControlServer: @unchecked Sendable {
    // @unchecked: `descriptor` is set once before the accept thread starts; `stopped` is
    // guarded by `lock`.
    public let path: String
    private let engine: Engine
    private let allowedUsers: Set<uid_t>
    private let logger: Logger
    private var descriptor: Int32 = -1
    private let lock = NSLock()
    private var stopped = false

    /// Requests longer than this close the connection.
    static let maximumRequestBytes = 64 << 10

    public init(path: String, engine: Engine, allowedUsers: Set<uid_t>, logger: Logger = Logger(label: "hearth.control")) {
        self.path = path
        self.engine = engine
        self.allowedUsers = allowedUsers.union([0])
        self.logger = logger
    }

    /// Binds the socket and starts accepting on a background thread.
    public func start() throws {
        // Bound and listening under a temporary name, then renamed: the socket appears only
        // once it accepts connections.
        let staging = path + ".new"
        unlink(staging)
        let fd = try UnixSocket.listen(staging, mode: 0o660)
        guard rename(staging, path) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw EngineError.io(path: path, reason: reason)
        }
        descriptor = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "hearth-control"
        thread.start()
        logger.info("control socket ready", metadata: ["socket": "\(path)"])
    }

    public func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
        unlink(path)
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    private func acceptLoop() {
        while !isStopped {
            let client = accept(descriptor, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var credentials = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(client, SOL_SOCKET, PeerCredentials.option, &credentials, &length) == 0, allowedUsers.contains(credentials.uid) else {
            logger.warning("control connection refused", metadata: ["peer.uid": "\(credentials.uid)"])
            send(ControlResponse.failure("user \(credentials.uid) may not control this Engine; ask an administrator"), to: client)
            return
        }
        var pending = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(client, &buffer, buffer.count)
            if count <= 0 { return }
            pending.append(contentsOf: buffer[0..<count])
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<newline]
                pending.removeSubrange(pending.startIndex...newline)
                send(respond(to: Data(line)), to: client)
            }
            if pending.count > Self.maximumRequestBytes {
                send(.failure("a request is longer than \(Self.maximumRequestBytes) bytes"), to: client)
                return
            }
        }
    }

    private func respond(to line: Data) -> ControlResponse {
        guard let request = try? JSONDecoder().decode(ControlRequest.self, from: line) else {
            return .failure("not a control request: expected {\"action\": \"list|start|stop|restart|snapshot|snapshots|revert|reset\", \"vm\": NAME}")
        }
        // The connection's thread waits for the Engine actor.
        let result = ResponseBox()
        let done = DispatchSemaphore(value: 0)
        let engine = self.engine
        Task {
            result.value = await engine.handle(request)
            done.signal()
        }
        done.wait()
        return result.value ?? .failure("no response")
    }

    private func send(_ response: ControlResponse, to client: Int32) {
        guard var data = try? JSONEncoder().encode(response) else { return }
        data.append(UInt8(ascii: "\n"))
        // MSG_NOSIGNAL: a client that went away must not kill the Engine with SIGPIPE.
        _ = data.withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// Linux's `struct ucred` and `SO_PEERCRED`, which Glibc exports only under _GNU_SOURCE.
private struct PeerCredentials {
    static let option: Int32 = 17
    var pid: Int32 = 0
    var uid: uid_t = uid_t.max
    var gid: gid_t = gid_t.max
}

/// Hands a response from the Engine's task to the waiting connection thread.
private final class ResponseBox: @unchecked Sendable {
    var value: ControlResponse?
}

/// Talks to a running Engine's control socket.
public enum ControlClient {
    public static func send(_ request: ControlRequest, to path: String) throws -> ControlResponse {
        let fd = try UnixSocket.connect(path)
        defer { close(fd) }
        var data = try JSONEncoder().encode(request)
        data.append(UInt8(ascii: "\n"))
        _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.contains(UInt8(ascii: "\n")) {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            received.append(contentsOf: buffer[0..<count])
        }
        guard let end = received.firstIndex(of: UInt8(ascii: "\n")) else {
            throw EngineError.io(path: path, reason: "the Engine closed the connection without answering")
        }
        return try JSONDecoder().decode(ControlResponse.self, from: received[received.startIndex..<end])
    }
}
