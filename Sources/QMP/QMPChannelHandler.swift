import Foundation
import Logging
import NIOCore
import NIOFoundationCompat

/// Routes each QMP message: the greeting to the connection, replies to the command that waits
/// for them (matched by `id`), events to the event stream. Lives on the channel's event loop.
final class QMPChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private struct Pending {
        var command: String
        var promise: EventLoopPromise<ByteBuffer>
    }

    private struct GreetingEnvelope: Decodable {
        var QMP: QMPGreeting
    }

    let greeting: EventLoopPromise<QMPGreeting>
    private let events: AsyncStream<QMPEvent>.Continuation
    private let logger: Logger
    private var pending: [String: Pending] = [:]
    private var isClosed = false
    private var isGreeted = false

    init(greeting: EventLoopPromise<QMPGreeting>, events: AsyncStream<QMPEvent>.Continuation, logger: Logger) {
        self.greeting = greeting
        self.events = events
        self.logger = logger
    }

    /// Registers a command awaiting its reply; fails it at once when the connection is gone.
    func register(id: String, command: String, promise: EventLoopPromise<ByteBuffer>) {
        guard !isClosed else {
            promise.fail(QMPError.disconnected(command: command))
            return
        }
        pending[id] = Pending(command: command, promise: promise)
    }

    /// Fails a command still waiting, for a deadline or a failed write.
    func fail(id: String, with error: QMPError) {
        pending.removeValue(forKey: id)?.promise.fail(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = Self.unwrapInboundIn(data)
        let decoder = JSONDecoder()
        guard let message = try? decoder.decode(JSONValue.self, from: line), case .object(let members) = message else {
            failAll(QMPError.malformedMessage(detail: "not a JSON object: \(String(buffer: line).prefix(200))"))
            context.close(promise: nil)
            return
        }
        if !isGreeted, members["event"] != nil, members["timestamp"] != nil {
            // An event before the greeting: QEMU flushed output meant for the previous client's
            // session (a RESUME right after that client's `cont` and close) to this connection
            // before it sent this session's greeting. It belongs to nobody; the greeting follows.
            logger.debug("QMP event before the greeting, left over from the previous session", metadata: ["qmp.message": "\(String(buffer: line).prefix(200))"])
        } else if !isGreeted {
            // QEMU speaks first, with its greeting; a peer that says anything else is not QEMU.
            do {
                greeting.succeed(try decoder.decode(GreetingEnvelope.self, from: line).QMP)
                isGreeted = true
            } catch {
                failAll(QMPError.notQMP(path: "", detail: "its first message is not a QMP greeting: \(String(buffer: line).prefix(200))"))
                context.close(promise: nil)
            }
        } else if members["event"] != nil {
            if let event = try? decoder.decode(QMPEvent.self, from: line) {
                logger.debug("QMP event", metadata: ["qmp.event": "\(event.event)"])
                events.yield(event)
            }
        } else if let id = members["id"]?.stringValue, let waiting = pending.removeValue(forKey: id) {
            waiting.promise.succeed(line)
        } else {
            logger.debug("QMP reply nobody waits for (its deadline passed)", metadata: ["qmp.message": "\(String(buffer: line).prefix(200))"])
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(error as? QMPError)
        context.close(promise: nil)
    }

    private func failAll(_ error: QMPError?) {
        isClosed = true
        greeting.fail(error ?? QMPError.disconnected(command: nil))
        let waiting = pending
        pending.removeAll()
        for (_, entry) in waiting {
            entry.promise.fail(error ?? QMPError.disconnected(command: entry.command))
        }
        events.finish()
    }
}
