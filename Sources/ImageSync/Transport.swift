import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import NIOHTTP1

/// Where a client reads a repository from. Everything it returns is untrusted until checked
/// against signed metadata; transports only enforce the lengths they are told.
public protocol RepositoryTransport: Sendable {
    /// Names the repository in messages.
    var location: String { get }
    /// A whole file of at most `maxLength` bytes, or `nil` when the repository has no such file.
    func fetch(_ path: String, maxLength: Int) async throws(ImageSyncError) -> Data?
    /// Bytes `range` of a file, handed to `consume` in order as they arrive; exactly
    /// `range.count` bytes or an error.
    func fetchRange(_ path: String, range: Range<UInt64>, consume: (ByteBuffer) async throws(ImageSyncError) -> Void) async throws(ImageSyncError)
    /// Releases connections.
    func shutdown() async
}

/// A repository in a local folder (or a mounted share).
public struct LocalTransport: RepositoryTransport {
    public let root: URL
    /// Only the bandwidth limit applies to a folder (to spare a shared disk or network share).
    public let limits: TransferLimits

    public init(root: URL, limits: TransferLimits = TransferLimits()) {
        self.root = root
        self.limits = limits
    }

    public var location: String { root.path }

    public func fetch(_ path: String, maxLength: Int) async throws(ImageSyncError) -> Data? {
        let full = root.appendingPathComponent(path).path
        let fd = open(full, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .fromErrno(path: full, operation: "open")
        }
        defer { close(fd) }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .fromErrno(path: full, operation: "read")
            }
            if n == 0 { return data }
            data.append(contentsOf: chunk[0..<n])
            if data.count > maxLength {
                throw .badResponse(url: full, reason: "longer than the \(maxLength) bytes expected")
            }
        }
    }

    public func fetchRange(_ path: String, range: Range<UInt64>, consume: (ByteBuffer) async throws(ImageSyncError) -> Void) async throws(ImageSyncError) {
        let full = root.appendingPathComponent(path).path
        let fd = open(full, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .fromErrno(path: full, operation: "open") }
        defer { close(fd) }
        var position = range.lowerBound
        var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
        let pacer = Pacer(limit: limits.bandwidthLimit)
        while position < range.upperBound {
            let want = Int(min(limits.bandwidthLimit == nil ? 1 << 20 : 64 << 10, range.upperBound - position))
            buffer.clear()
            let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { out in
                max(0, pread(fd, out.baseAddress, want, off_t(position)))
            }
            if n == 0 {
                throw .badResponse(url: full, reason: "ends before byte \(range.upperBound)")
            }
            position += UInt64(n)
            try await consume(buffer)
            await pacer.pace(position - range.lowerBound)
        }
    }

    public func shutdown() async {}
}

/// How patient a client is with a slow server.
public struct TransferLimits: Sendable {
    /// Below this average rate (after `grace`), a transfer is abandoned: a server that trickles
    /// bytes to hold a client forever.
    public var minimumBytesPerSecond: Double = 2048
    public var grace: TimeInterval = 20
    /// No byte at all for this long ends a transfer.
    public var readTimeout: TimeInterval = 30
    /// Cap on the client's own download rate, bytes per second.
    public var bandwidthLimit: Double?

    public init() {}
}

/// A repository served over HTTP(S): the Center, any static web server or CDN, or a cache node
/// in a branch office; none of them is trusted.
public final class HTTPTransport: RepositoryTransport {
    public let base: String
    let client: HTTPClient
    let limits: TransferLimits

    /// `tls` replaces the system's trust roots (a Center's own CA) and may carry a client
    /// certificate (an enrolled device's).
    public init(baseURL: String, limits: TransferLimits = TransferLimits(), tls: TLSConfiguration? = nil) {
        base = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.limits = limits
        var configuration = HTTPClient.Configuration()
        if let tls { configuration.tlsConfiguration = tls }
        configuration.timeout = .init(connect: .seconds(15), read: .milliseconds(Int64(limits.readTimeout * 1000)))
        configuration.redirectConfiguration = .follow(max: 5, allowCycles: false)
        configuration.decompression = .disabled
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public var location: String { base }

    public func shutdown() async {
        try? await client.shutdown()
    }

    /// A transport dropped on an error path without `shutdown()` still closes its connections.
    deinit {
        client.shutdown().whenComplete { _ in }
    }

    func url(_ path: String) -> String { "\(base)/\(path)" }

    public func fetch(_ path: String, maxLength: Int) async throws(ImageSyncError) -> Data? {
        try await fetch(path, maxLength: maxLength, headers: [:])
    }

    func fetch(_ path: String, maxLength: Int, headers: [String: String]) async throws(ImageSyncError) -> Data? {
        let target = url(path)
        var request = HTTPClientRequest(url: target)
        request.headers.add(name: "Accept-Encoding", value: "identity")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await execute(request, url: target)
        if response.status == .notFound { return nil }
        guard response.status == .ok else {
            throw .badResponse(url: target, reason: "HTTP \(response.status.code) \(response.status.reasonPhrase)")
        }
        if let declared = response.headers.first(name: "Content-Length").flatMap(Int.init), declared > maxLength {
            throw .badResponse(url: target, reason: "declares \(declared) bytes, more than the \(maxLength) expected")
        }
        var data = Data()
        try await stream(response.body, url: target, expected: nil, limit: maxLength) { buffer throws(ImageSyncError) in
            data.append(contentsOf: buffer.readableBytesView)
        }
        return data
    }

    public func fetchRange(_ path: String, range: Range<UInt64>, consume: (ByteBuffer) async throws(ImageSyncError) -> Void) async throws(ImageSyncError) {
        let target = url(path)
        var request = HTTPClientRequest(url: target)
        request.headers.add(name: "Range", value: "bytes=\(range.lowerBound)-\(range.upperBound - 1)")
        request.headers.add(name: "Accept-Encoding", value: "identity")
        let response = try await execute(request, url: target)
        switch response.status {
        case .partialContent:
            break
        case .ok:
            throw .badResponse(url: target, reason: "answered 200 with the whole file to a Range request; serve the repository from a server that supports byte ranges (nginx, Apache, the Center, an OCI registry)")
        case .notFound:
            throw .badResponse(url: target, reason: "not found (HTTP 404); the repository is incomplete")
        default:
            throw .badResponse(url: target, reason: "HTTP \(response.status.code) \(response.status.reasonPhrase) to a Range request")
        }
        let expectedRange = "bytes \(range.lowerBound)-\(range.upperBound - 1)/"
        guard let contentRange = response.headers.first(name: "Content-Range"), contentRange.hasPrefix(expectedRange) else {
            throw .badResponse(url: target, reason: "answered a different range (\(response.headers.first(name: "Content-Range") ?? "none")) than asked (\(expectedRange)…)")
        }
        try await stream(response.body, url: target, expected: range.count, limit: range.count, consume: consume)
    }

    private func execute(_ request: HTTPClientRequest, url: String) async throws(ImageSyncError) -> HTTPClientResponse {
        do {
            return try await client.execute(request, deadline: .now() + .seconds(Int64(max(limits.readTimeout, limits.grace))))
        } catch {
            throw .transport(url: url, reason: Self.describe(error))
        }
    }

    /// Reads a body, enforcing its length, the minimum rate and the bandwidth limit.
    private func stream(_ body: HTTPClientResponse.Body, url: String, expected: Int?, limit: Int,
                        consume: (ByteBuffer) async throws(ImageSyncError) -> Void) async throws(ImageSyncError) {
        let started = ContinuousClock.now
        let pacer = Pacer(limit: limits.bandwidthLimit)
        var received = 0
        do {
            for try await buffer in body {
                received += buffer.readableBytes
                if received > limit {
                    throw ImageSyncError.badResponse(url: url, reason: "sent more than the \(limit) bytes expected")
                }
                let elapsed = (ContinuousClock.now - started).seconds
                if elapsed > limits.grace {
                    let rate = Double(received) / elapsed
                    if rate < limits.minimumBytesPerSecond {
                        throw ImageSyncError.tooSlow(url: url, bytesPerSecond: rate, minimum: limits.minimumBytesPerSecond)
                    }
                }
                try await consume(buffer)
                await pacer.pace(UInt64(received))
            }
        } catch let error as ImageSyncError {
            throw error
        } catch {
            if let expected, received < expected {
                throw .transport(url: url, reason: "the connection ended after \(received) of \(expected) bytes (\(Self.describe(error)))")
            }
            throw .transport(url: url, reason: Self.describe(error))
        }
        if let expected, received != expected {
            throw .transport(url: url, reason: "the response ended after \(received) of \(expected) bytes")
        }
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "connection timed out"
            case .readTimeout: return "no data for too long (read timeout)"
            case .deadlineExceeded: return "no answer in time"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(error)"
            }
        }
        return "\(error)"
    }
}

/// Holds a transfer to a byte rate by sleeping when it runs ahead.
struct Pacer {
    let limit: Double?
    let started = ContinuousClock.now

    func pace(_ transferred: UInt64) async {
        guard let limit, limit > 0 else { return }
        let due = Double(transferred) / limit
        let now = (ContinuousClock.now - started).seconds
        if due > now { try? await Task.sleep(for: .seconds(due - now)) }
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
