import Foundation
import NIOCore
import NIOPosix
@testable import QMP

/// A QMP server on a unix socket that answers as a test scripts it: the framing and routing
/// of the client are tested against bytes on a real socket, without QEMU.
final class StubQMPServer: Sendable {
    /// Given one request, the raw lines to send back (each gets CRLF). `nil` closes the connection.
    typealias Responder = @Sendable (_ request: JSONValue) -> [String]?

    static let greeting = #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "stub"}, "capabilities": ["oob"]}}"#

    let path: String
    private let channel: Channel

    private init(path: String, channel: Channel) {
        self.path = path
        self.channel = channel
    }

    /// Starts listening. `greeting` is sent on connect, raw.
    static func start(greeting: String = greeting, respond: @escaping Responder) async throws -> StubQMPServer {
        let path = "/tmp/hearth-stub-\(UUID().uuidString.prefix(8)).sock"
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(QMPLineDecoder(maximumLength: 1 << 20)))
                    try channel.pipeline.syncOperations.addHandler(Handler(greeting: greeting, respond: respond))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .get()
        return StubQMPServer(path: path, channel: channel)
    }

    func stop() async {
        try? await channel.close()
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Answers every command with an empty return, echoing its id.
    static func ok(_ request: JSONValue) -> String {
        #"{"return": {}, "id": "\#(request["id"]?.stringValue ?? "")"}"#
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let greeting: String
        let respond: Responder

        init(greeting: String, respond: @escaping Responder) {
            self.greeting = greeting
            self.respond = respond
        }

        func channelActive(context: ChannelHandlerContext) {
            if !greeting.isEmpty {
                context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: greeting + "\r\n")), promise: nil)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let line = Self.unwrapInboundIn(data)
            guard let request = try? JSONDecoder().decode(JSONValue.self, from: Data(line.readableBytesView)) else {
                context.close(promise: nil)
                return
            }
            guard let replies = respond(request) else {
                context.close(promise: nil)
                return
            }
            for reply in replies {
                context.write(Self.wrapOutboundOut(ByteBuffer(string: reply + "\r\n")), promise: nil)
            }
            context.flush()
        }
    }
}
