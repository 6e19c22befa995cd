import Foundation
import Synchronization

/// Reads an image chunk by chunk on a thread of its own, a few chunks ahead of the consumer,
/// so that reading and decompressing overlap with writing. At most ``depth`` chunks are in
/// memory at once.
final class ChunkReader: Sendable {
    struct Chunk {
        var offset: UInt64
        var length: UInt64
        /// `nil` when the chunk reads as zeros throughout (nothing was read).
        var buffer: AlignedBuffer?
    }

    private struct State {
        var ready: [Chunk] = []
        var spare: [AlignedBuffer] = []
        var failure: VirtualDiskError?
        var finished = false
        var cancelled = false
    }

    static let depth = 4
    private let state = Mutex(State())
    private let filled = DispatchSemaphore(value: 0)
    private let free = DispatchSemaphore(value: ChunkReader.depth)

    init(source: any DiskImage, chunk: UInt64) {
        let thread = Thread { [self] in produce(source: source, chunk: chunk) }
        thread.name = "hearth-disk-reader"
        thread.start()
    }

    private func produce(source: any DiskImage, chunk: UInt64) {
        var offset: UInt64 = 0
        let size = source.virtualSize
        while offset < size {
            free.wait()
            if state.withLock({ $0.cancelled }) { return }
            let length = min(chunk, size - offset)
            var item = Chunk(offset: offset, length: length, buffer: nil)
            do throws(VirtualDiskError) {
                if try DiskConverter.holdsData(source, from: offset, length: length) {
                    let buffer = state.withLock { $0.spare.popLast() } ?? AlignedBuffer(count: Int(chunk))
                    do throws(VirtualDiskError) {
                        try source.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<Int(length)]))
                    } catch {
                        state.withLock { $0.spare.append(buffer) }
                        throw error
                    }
                    item.buffer = buffer
                } else {
                    free.signal() // nothing held for this chunk
                }
            } catch {
                state.withLock { $0.failure = error; $0.finished = true }
                filled.signal()
                return
            }
            let chunkItem = item
            state.withLock { $0.ready.append(chunkItem) }
            filled.signal()
            offset += length
        }
        state.withLock { $0.finished = true }
        filled.signal()
    }

    /// The next chunk in order, `nil` at the end.
    func next() throws(VirtualDiskError) -> Chunk? {
        while true {
            let (chunk, failure, done) = state.withLock { state -> (Chunk?, VirtualDiskError?, Bool) in
                if !state.ready.isEmpty { return (state.ready.removeFirst(), nil, false) }
                return (nil, state.failure, state.finished)
            }
            if let chunk { return chunk }
            if let failure { throw failure }
            if done { return nil }
            filled.wait()
        }
    }

    /// Gives a chunk's buffer back for reuse.
    func recycle(_ buffer: AlignedBuffer) {
        state.withLock { $0.spare.append(buffer) }
        free.signal()
    }

    /// Stops the reader thread after its current chunk.
    func cancel() {
        state.withLock { $0.cancelled = true }
        free.signal()
    }
}
