import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A static file server on loopback that answers Range requests like nginx does — and, on
/// demand, misbehaves the ways real servers and attackers do.
final class TestServer: @unchecked Sendable {
    enum Behavior: Sendable {
        case honest
        /// 200 with the whole file to every Range request.
        case ignoresRanges
        /// Sends a body one byte at a time, `interval` apart.
        case trickles(interval: TimeAmount)
        /// Declares the full length, sends only `bytes` of a range body, then closes.
        case cutsRangesAfter(bytes: Int)
        /// Flips a byte in every pack range it serves.
        case corruptsPacks
        /// Appends endless bytes to files under this path prefix.
        case endless(prefix: String)
    }

    let root: URL
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var channel: Channel?
    private let state = NIOLockedValueBox<(behavior: Behavior, requests: [String], bytesSent: Int, overrides: [String: Data])>((.honest, [], 0, [:]))

    init(root: URL) throws {
        self.root = root
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(server: self))
                }
            }
        channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
    }

    var url: String { "http://127.0.0.1:\(channel!.localAddress!.port!)" }

    var behavior: Behavior {
        get { state.withLockedValue { $0.behavior } }
        set { state.withLockedValue { $0.behavior = newValue } }
    }

    /// Paths requested so far (with the Range header when there was one).
    var requests: [String] { state.withLockedValue { $0.requests } }
    var bytesSent: Int { state.withLockedValue { $0.bytesSent } }
    func resetCounters() { state.withLockedValue { $0.requests = []; $0.bytesSent = 0 } }

    /// Serves `data` at `path` instead of the file.
    func override(_ path: String, with data: Data?) { state.withLockedValue { $0.overrides[path] = data } }

    func stop() {
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }

    fileprivate func record(_ line: String) { state.withLockedValue { $0.requests.append(line) } }
    fileprivate func sent(_ count: Int) { state.withLockedValue { $0.bytesSent += count } }
    fileprivate func content(_ path: String) -> Data? {
        if let data = state.withLockedValue({ $0.overrides[path] }) { return data }
        guard !path.contains("..") else { return nil }
        return FileManager.default.contents(atPath: root.appendingPathComponent(path).path)
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: TestServer
        var head: HTTPRequestHead?

        init(server: TestServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body: break
            case .end:
                guard let head else { return }
                respond(context: context, head: head)
            }
        }

        func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
            let path = String(head.uri.dropFirst().split(separator: "?").first ?? "")
            let rangeHeader = head.headers.first(name: "Range")
            server.record(rangeHeader.map { "\(path) \($0)" } ?? path)
            guard var body = server.content(path) else {
                send(context, status: .notFound, headers: [:], body: Data("not found".utf8), close: false)
                return
            }
            let behavior = server.behavior
            if case .endless(let prefix) = behavior, path.hasPrefix(prefix) {
                body.append(Data(repeating: 0x41, count: 32 << 20))
            }
            var status = HTTPResponseStatus.ok
            var headers: [String: String] = [:]
            if let rangeHeader, case .ignoresRanges = behavior {
                _ = rangeHeader
            } else if let rangeHeader, rangeHeader.hasPrefix("bytes="), !rangeHeader.contains(",") {
                let parts = rangeHeader.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
                let start = Int(parts[0]) ?? 0
                let end = min(Int(parts[1]) ?? (body.count - 1), body.count - 1)
                guard start <= end else {
                    send(context, status: .init(statusCode: 416), headers: ["Content-Range": "bytes */\(body.count)"], body: Data(), close: false)
                    return
                }
                headers["Content-Range"] = "bytes \(start)-\(end)/\(body.count)"
                body = body.subdata(in: start..<end + 1)
                status = .partialContent
                if case .corruptsPacks = behavior, path.hasPrefix("packs/"), !body.isEmpty {
                    body[body.startIndex + body.count / 2] ^= 0xff
                }
                if case .cutsRangesAfter(let bytes) = behavior, bytes < body.count {
                    headers["Content-Length"] = "\(body.count)"
                    send(context, status: status, headers: headers, body: body.prefix(bytes), close: true, declared: true)
                    return
                }
            }
            if case .trickles(let interval) = behavior {
                trickle(context, status: status, headers: headers, body: body, interval: interval)
                return
            }
            send(context, status: status, headers: headers, body: body, close: false)
        }

        func send(_ context: ChannelHandlerContext, status: HTTPResponseStatus, headers: [String: String], body: Data, close: Bool, declared: Bool = false) {
            var fields = HTTPHeaders()
            for (name, value) in headers { fields.add(name: name, value: value) }
            if !declared { fields.add(name: "Content-Length", value: "\(body.count)") }
            fields.add(name: "Accept-Ranges", value: "bytes")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: fields))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            server.sent(body.count)
            if close {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer())))).whenComplete { _ in bound.value.close(promise: nil) }
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }

        func trickle(_ context: ChannelHandlerContext, status: HTTPResponseStatus, headers: [String: String], body: Data, interval: TimeAmount) {
            var fields = HTTPHeaders()
            for (name, value) in headers { fields.add(name: name, value: value) }
            fields.add(name: "Content-Length", value: "\(body.count)")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: fields))), promise: nil)
            step(NIOLoopBound(context, eventLoop: context.eventLoop), body: body, offset: 0, interval: interval)
        }

        func step(_ bound: NIOLoopBound<ChannelHandlerContext>, body: Data, offset: Int, interval: TimeAmount) {
            let context = bound.value
            guard context.channel.isActive else { return }
            if offset >= body.count {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body.subdata(in: offset..<offset + 1))))), promise: nil)
            server.sent(1)
            context.eventLoop.scheduleTask(in: interval) { self.step(bound, body: body, offset: offset + 1, interval: interval) }
        }
    }
}
