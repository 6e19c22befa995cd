import CZstd
import Foundation

/// One-shot zstd frames through Debian's libzstd. Each block is its own frame, so a client can
/// fetch and check any block alone.
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

    /// Decompresses a frame into exactly `output.count` bytes; false when the frame is corrupt
    /// or its size is not exactly that.
    static func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool {
        let size = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        guard size == UInt64(output.count) else { return false }
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
