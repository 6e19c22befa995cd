import NIOCore

/// Splits QMP's stream into messages: QEMU ends every JSON object with CRLF and never puts a
/// raw newline inside one. A line longer than `maximumLength` is refused rather than buffered
/// without bound.
struct QMPLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let maximumLength: Int
    /// Bytes of the current message already searched for a newline, so that a long message
    /// arriving in many reads is scanned once, not once per read.
    private var scanned = 0

    init(maximumLength: Int) {
        self.maximumLength = maximumLength
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        guard let newline = view.dropFirst(scanned).firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = view.count
            if buffer.readableBytes > maximumLength {
                throw QMPError.malformedMessage(detail: "a message is longer than \(maximumLength) bytes")
            }
            return .needMoreData
        }
        scanned = 0
        let length = newline - view.startIndex
        guard length <= maximumLength, let line = buffer.readSlice(length: length) else {
            throw QMPError.malformedMessage(detail: "a message is longer than \(maximumLength) bytes")
        }
        buffer.moveReaderIndex(forwardBy: 1)
        // A bare CRLF carries nothing; QEMU does not send one, but a stub might.
        if line.readableBytesView.contains(where: { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: " ") }) {
            context.fireChannelRead(Self.wrapInboundOut(line))
        }
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A partial message at EOF is dropped: QEMU died mid-write, and the pending commands are
        // failed as disconnected by the channel handler.
        return .needMoreData
    }
}
