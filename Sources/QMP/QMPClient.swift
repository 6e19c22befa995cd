import NIOConcurrencyHelpers
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOPosix

/// A connection to one QEMU's QMP monitor over a unix socket: the capabilities handshake,
/// commands with typed replies and deadlines, and the stream of asynchronous events.
///
/// Knows nothing of Hearth. Commands may be sent from any task; replies are matched by `id`.
public final class QMPClient: Sendable {
    /// What QEMU said when the connection opened.
    public let greeting: QMPGreeting
    /// QEMU's asynchronous events, in order. Meant for one consumer; it ends when the
    /// connection closes.
    public let events: AsyncStream<QMPEvent>

    private let channel: Channel
    private let handler: NIOLoopBound<QMPChannelHandler>
    private let nextID = NIOLockedValueBox<UInt64>(0)
    private let logger: Logger

    /// The longest message accepted from QEMU; larger ones close the connection.
    public static let maximumMessageLength = 16 << 20

    private init(greeting: QMPGreeting, events: AsyncStream<QMPEvent>, channel: Channel, handler: NIOLoopBound<QMPChannelHandler>, logger: Logger) {
        self.greeting = greeting
        self.events = events
        self.channel = channel
        self.handler = handler
        self.logger = logger
    }

    /// Connects, reads the greeting and leaves capabilities-negotiation mode.
    ///
    /// - Parameter timeout: for the connection, the greeting and the handshake together.
    /// - Throws: ``QMPError/connectionFailed(path:reason:)`` when nothing listens,
    ///   ``QMPError/notQMP(path:detail:)`` when the peer is not a QMP server,
    ///   ``QMPError/timeout(command:seconds:)`` when it does not answer in time.
    public static func connect(
        socketPath: String,
        timeout: Duration = .seconds(5),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "hearth.qmp")
    ) async throws -> QMPClient {
        let loop = eventLoopGroup.next()
        let (events, continuation) = AsyncStream.makeStream(of: QMPEvent.self, bufferingPolicy: .bufferingNewest(1024))
        let greetingPromise = loop.makePromise(of: QMPGreeting.self)
        let handler = try await loop.submit {
            NIOLoopBound(QMPChannelHandler(greeting: greetingPromise, events: continuation, logger: logger), eventLoop: loop)
        }.get()

        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(TimeAmount(timeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(QMPLineDecoder(maximumLength: maximumMessageLength)))
                        try channel.pipeline.syncOperations.addHandler(handler.value)
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
                .get()
        } catch {
            greetingPromise.fail(QMPError.connectionFailed(path: socketPath, reason: "\(error)"))
            continuation.finish()
            throw QMPError.connectionFailed(path: socketPath, reason: Self.describe(error))
        }

        let deadline = loop.scheduleTask(in: TimeAmount(timeout)) {
            greetingPromise.fail(QMPError.timeout(command: "greeting", seconds: timeout.seconds))
        }
        let greeting: QMPGreeting
        do {
            greeting = try await greetingPromise.futureResult.get()
            deadline.cancel()
        } catch let error as QMPError {
            deadline.cancel()
            try? await channel.close()
            if case .notQMP(_, let detail) = error {
                throw QMPError.notQMP(path: socketPath, detail: detail)
            }
            if case .malformedMessage(let detail) = error {
                throw QMPError.notQMP(path: socketPath, detail: detail)
            }
            throw error
        }
        let client = QMPClient(greeting: greeting, events: events, channel: channel, handler: handler, logger: logger)
        do {
            try await client.execute("qmp_capabilities", returning: QMPEmpty.self, timeout: timeout)
        } catch {
            await client.close()
            throw error
        }
        logger.debug("QMP connected", metadata: ["qmp.socket": "\(socketPath)", "qemu.version": "\(greeting.version.qemu.major).\(greeting.version.qemu.minor).\(greeting.version.qemu.micro)"])
        return client
    }

    /// Runs `command` with `arguments` and decodes its `return` member as `Reply`.
    ///
    /// - Throws: ``QMPError/commandFailed(command:errorClass:description:)`` when QEMU answers
    ///   with an error, ``QMPError/timeout(command:seconds:)`` past the deadline,
    ///   ``QMPError/disconnected(command:)`` when the connection closes first.
    @discardableResult
    public func execute<Arguments: Encodable & Sendable, Reply: Decodable>(
        _ command: String, arguments: Arguments, returning: Reply.Type, timeout: Duration = .seconds(10)
    ) async throws -> Reply {
        try await send(Request(execute: command, arguments: arguments, id: makeID()), returning: Reply.self, timeout: timeout)
    }

    /// Runs `command` without arguments and decodes its `return` member as `Reply`.
    @discardableResult
    public func execute<Reply: Decodable>(_ command: String, returning: Reply.Type, timeout: Duration = .seconds(10)) async throws -> Reply {
        try await send(Request<QMPEmpty>(execute: command, arguments: nil, id: makeID()), returning: Reply.self, timeout: timeout)
    }

    /// Runs `command` without arguments and returns its `return` member as it came.
    @discardableResult
    public func execute(_ command: String, timeout: Duration = .seconds(10)) async throws -> JSONValue {
        try await execute(command, returning: JSONValue.self, timeout: timeout)
    }

    /// Closes the connection; commands still waiting fail as disconnected.
    public func close() async {
        try? await channel.close()
    }

    deinit {
        // A client nobody holds any more must not keep QEMU's only monitor connection busy.
        channel.close(promise: nil)
    }

    private func makeID() -> String {
        let id = nextID.withLockedValue { value in
            value += 1
            return value
        }
        return "hearth-\(id)"
    }

    private func send<Arguments: Encodable & Sendable, Reply: Decodable>(
        _ request: Request<Arguments>, returning: Reply.Type, timeout: Duration
    ) async throws -> Reply {
        var payload = try JSONEncoder().encode(request)
        payload.append(contentsOf: "\r\n".utf8)
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: ByteBuffer.self)
        let buffer = channel.allocator.buffer(data: payload)
        let handler = self.handler
        let channel = self.channel
        let id = request.id
        let command = request.execute
        loop.execute {
            handler.value.register(id: id, command: command, promise: promise)
            channel.writeAndFlush(buffer).whenFailure { error in
                handler.value.fail(id: id, with: .disconnected(command: command))
            }
        }
        let deadline = loop.scheduleTask(in: TimeAmount(timeout)) {
            handler.value.fail(id: id, with: .timeout(command: command, seconds: timeout.seconds))
        }
        defer { deadline.cancel() }
        let line = try await promise.futureResult.get()
        let reply: Response<Reply>
        do {
            reply = try JSONDecoder().decode(Response<Reply>.self, from: line)
        } catch {
            throw QMPError.malformedMessage(detail: "the reply to '\(command)' has an unexpected shape: \(error)")
        }
        if let failure = reply.error {
            throw QMPError.commandFailed(command: command, errorClass: failure.class, description: failure.desc)
        }
        guard let value = reply.return else {
            throw QMPError.malformedMessage(detail: "the reply to '\(command)' has neither 'return' nor 'error'")
        }
        return value
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? IOError {
            return String(cString: strerror(error.errnoCode))
        }
        return "\(error)"
    }
}

/// An empty JSON object: the reply of most commands, and the arguments of none.
public struct QMPEmpty: Codable, Sendable, Equatable {
    public init() {}
}

private struct Request<Arguments: Encodable & Sendable>: Encodable, Sendable {
    var execute: String
    var arguments: Arguments?
    var id: String
}

private struct Response<Value: Decodable>: Decodable {
    struct Failure: Decodable {
        var `class`: String
        var desc: String
    }

    var `return`: Value?
    var error: Failure?
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

extension Duration {
    /// The duration in seconds, for messages.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
