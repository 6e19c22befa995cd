import CZstd
import Foundation

/// zstd frames through Debian's libzstd: one block alone, or a run of blocks as one frame.
enum Zstd {
    /// Compresses `input` into a frame, or returns `nil` when that would not save space.
    static func compress(_ input: UnsafeRawBufferPointer, level: Int32, into output: inout [UInt8]) -> Int? {
        let bound = ZSTD_compressBound(input.count)
        if output.count < bound { output = [UInt8](repeating: 0, count: bound) }
        let written = output.withUnsafeMutableBytes { out in
            ZSTD_compress(out.baseAddress, out.count, input.baseAddress, input.count, level)
        }
        guard ZSTD_isError(written) == 0, written < input.count else { return nil }
        return written
    }

    /// Decompresses the frame(s) in `input` into exactly `output.count` bytes, whether or not the
    /// frame header states its size; false when corrupt, shorter or longer.
    static func decompressExactly(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool {
        let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if declared == ZSTD_CONTENTSIZE_ERROR { return false }
        if declared != ZSTD_CONTENTSIZE_UNKNOWN, declared != UInt64(output.count) { return false }
        let result = ZSTD_decompress(output.baseAddress, output.count, input.baseAddress, input.count)
        return ZSTD_isError(result) == 0 && result == output.count
    }

    /// Decompresses a whole stream whose decompressed size must not exceed `limit`.
    static func decompress(_ input: [UInt8], limit: Int) -> [UInt8]? {
        guard let context = ZSTD_createDCtx() else { return nil }
        defer { ZSTD_freeDCtx(context) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        return input.withUnsafeBytes { source -> [UInt8]? in
            var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            while true {
                let (result, produced) = chunk.withUnsafeMutableBytes { out -> (Int, Int) in
                    var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                    let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                    return (result, outBuffer.pos)
                }
                if ZSTD_isError(result) != 0 { return nil }
                output.append(contentsOf: chunk[0..<produced])
                if output.count > limit { return nil }
                if result == 0 && inBuffer.pos == inBuffer.size { return output }
                if inBuffer.pos == inBuffer.size && produced == 0 { return nil } // truncated
            }
        }
    }

    /// Compresses blocks one after another into one frame, each block flushed so the frame's
    /// size is known as it grows (the caller ends a frame before it could pass its limit).
    final class FrameCompressor {
        private let context: OpaquePointer
        private var output: [UInt8]
        private(set) var frame: [UInt8] = []
        /// The most one more block can add to the frame.
        let blockBound: Int

        init(level: Int32, blockSize: Int) {
            context = ZSTD_createCCtx()
            ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
            blockBound = ZSTD_compressBound(blockSize) + 16
            output = [UInt8](repeating: 0, count: blockBound)
        }

        deinit { ZSTD_freeCCtx(context) }

        /// Whether another block of up to the block size still fits under `maximumStored`.
        func fits(maximumStored: Int) -> Bool { frame.count + blockBound <= maximumStored }

        func add(_ block: UnsafeRawBufferPointer) {
            run(block, directive: ZSTD_e_flush)
        }

        /// Ends the frame and returns it; the compressor is ready for the next one.
        func finish() -> [UInt8] {
            run(UnsafeRawBufferPointer(start: nil, count: 0), directive: ZSTD_e_end)
            let done = frame
            frame = []
            return done
        }

        private func run(_ input: UnsafeRawBufferPointer, directive: ZSTD_EndDirective) {
            var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
            while true {
                let (remaining, produced) = output.withUnsafeMutableBytes { out -> (Int, Int) in
                    var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                    let remaining = ZSTD_compressStream2(context, &outBuffer, &inBuffer, directive)
                    return (remaining, outBuffer.pos)
                }
                // Errors here are out of memory or a misuse: neither can be recovered from.
                precondition(ZSTD_isError(remaining) == 0, "zstd: \(String(cString: ZSTD_getErrorName(remaining)))")
                frame.append(contentsOf: output[0..<produced])
                if remaining == 0 && inBuffer.pos == inBuffer.size { return }
            }
        }
    }

    static func compressWhole(_ input: [UInt8], level: Int32) -> [UInt8] {
        var output = [UInt8]()
        let written = input.withUnsafeBytes { compress($0, level: level, into: &output) }
        if let written { return Array(output[0..<written]) }
        // Incompressible: still a frame, so readers need not guess.
        let bound = ZSTD_compressBound(input.count)
        var raw = [UInt8](repeating: 0, count: bound)
        let size = raw.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { ZSTD_compress(out.baseAddress, out.count, $0.baseAddress, $0.count, 1) }
        }
        return Array(raw[0..<size])
    }
}
