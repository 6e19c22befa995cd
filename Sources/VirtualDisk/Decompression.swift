import CZlib
import CZstd

/// Inflates and decompresses compressed clusters and grains into a buffer of known size. The
/// output never grows past `output.count`, whatever the input claims.
enum Decompression {
    /// Raw deflate (qcow2: windowBits -12) or zlib-wrapped deflate (VMDK: windowBits 15).
    /// Succeeds only when `output` is filled.
    static func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, windowBits: Int32) -> Bool {
        inflatedCount(input, into: output, windowBits: windowBits) == output.count
    }

    /// Inflates into `output` and returns how many bytes came out, or `nil` for a broken stream.
    static func inflatedCount(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, windowBits: Int32) -> Int? {
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        stream.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(output.count)
        let result = CZlib.inflate(&stream, Z_FINISH)
        // The input may carry padding after the stream ends; the output is what counts.
        guard result == Z_STREAM_END || result == Z_BUF_ERROR || result == Z_OK else { return nil }
        return output.count - Int(stream.avail_out)
    }

    /// Zstandard frames, decompressed until `output` is full.
    static func zstd(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool {
        guard let context = ZSTD_createDCtx() else { return false }
        defer { ZSTD_freeDCtx(context) }
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var outBuffer = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        while outBuffer.pos < outBuffer.size {
            let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
            if ZSTD_isError(result) != 0 { return false }
            if inBuffer.pos == inBuffer.size && outBuffer.pos < outBuffer.size && result != 0 { return false }
            if result == 0 && inBuffer.pos == inBuffer.size && outBuffer.pos < outBuffer.size { return false }
        }
        return true
    }

    /// zlib-wrapped deflate at `level`, for VMDK grains; `nil` if it does not fit `capacity`.
    static func deflate(_ input: UnsafeRawBufferPointer, level: Int32 = 1) -> [UInt8]? {
        var bound = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(bound))
        let result = output.withUnsafeMutableBytes { out in
            compress2(out.baseAddress?.assumingMemoryBound(to: Bytef.self), &bound, input.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(input.count), level)
        }
        guard result == Z_OK else { return nil }
        output.removeSubrange(Int(bound)...)
        return output
    }
}
