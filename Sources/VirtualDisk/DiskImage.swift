/// What a range of a disk image holds, in this layer.
public enum ExtentKind: Sendable, Equatable {
    /// Stored data in this layer.
    case data
    /// Reads as zeros, without reaching the backing file.
    case zero
    /// Not in this layer: it reads from the backing image, or as zeros without one.
    case unallocated
}

/// A run of bytes of the same kind, starting at a guest offset.
public struct Extent: Sendable, Equatable {
    public var offset: UInt64
    public var length: UInt64
    public var kind: ExtentKind
}

/// A disk image opened for reading. Implementations describe and read their own layer; the
/// extension below joins a layer to its backing chain.
public protocol DiskImage: AnyObject, Sendable {
    var format: DiskFormat { get }
    var path: String { get }
    /// The size the guest sees, in bytes.
    var virtualSize: UInt64 { get }
    /// The image this one is a delta over, already opened, or `nil`.
    var backing: (any DiskImage)? { get }

    /// The extent starting at `offset` (`< virtualSize`), at most `maxLength` bytes long,
    /// and at least one byte.
    func extent(at offset: UInt64, maxLength: UInt64) throws(VirtualDiskError) -> Extent

    /// Reads bytes that `extent` reported as `.data`, into `buffer`.
    func readData(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VirtualDiskError)
}

extension DiskImage {
    /// Reads what the guest sees from `offset`, through the backing chain. Bytes past the
    /// virtual size are a caller error.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VirtualDiskError) {
        guard offset <= virtualSize, UInt64(buffer.count) <= virtualSize - offset else {
            throw .invalidRequest("read of \(buffer.count) bytes at \(offset) is past the end of \(path) (\(virtualSize) bytes)")
        }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let run = try extent(at: position, maxLength: UInt64(buffer.count - done))
            let length = Int(run.length)
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + length])
            switch run.kind {
            case .data:
                try readData(at: position, into: slice)
            case .zero:
                slice.initializeMemory(as: UInt8.self, repeating: 0)
            case .unallocated:
                if let backing, position < backing.virtualSize {
                    let fromBacking = Int(min(UInt64(length), backing.virtualSize - position))
                    try backing.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: slice[0..<fromBacking]))
                    UnsafeMutableRawBufferPointer(rebasing: slice[fromBacking...]).initializeMemory(as: UInt8.self, repeating: 0)
                } else {
                    slice.initializeMemory(as: UInt8.self, repeating: 0)
                }
            }
            done += length
        }
    }

    /// Reads `count` bytes at `offset` into a new array.
    public func read(at offset: UInt64, count: Int) throws(VirtualDiskError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var failure: VirtualDiskError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(VirtualDiskError) {
                try read(at: offset, into: buffer)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// The extent at `offset` as the guest sees it through the chain: `.data` where any
    /// layer holds data, `.zero` otherwise.
    public func resolvedExtent(at offset: UInt64, maxLength: UInt64) throws(VirtualDiskError) -> Extent {
        let run = try extent(at: offset, maxLength: maxLength)
        guard run.kind == .unallocated else { return run }
        guard let backing, offset < backing.virtualSize else {
            return Extent(offset: offset, length: run.length, kind: .zero)
        }
        let below = try backing.resolvedExtent(at: offset, maxLength: min(run.length, backing.virtualSize - offset))
        return Extent(offset: offset, length: below.length, kind: below.kind == .data ? .data : .zero)
    }

    /// The chain from this image down, this one first.
    public var chain: [any DiskImage] {
        var images: [any DiskImage] = [self]
        while let next = images.last?.backing {
            images.append(next)
        }
        return images
    }
}
