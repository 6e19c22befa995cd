import Foundation

/// What `convert` writes.
public struct ConversionOptions: Sendable {
    public enum VHDType: String, Sendable, CaseIterable {
        case dynamic
        case fixed
    }

    public var format: DiskFormat
    /// qcow2 only: a power of two from 512 B to 2 MiB.
    public var qcow2ClusterSize: UInt64
    /// VHD only.
    public var vhdType: VHDType
    /// Replace an existing destination (atomically: the old file stays whole until the new one is).
    public var replace: Bool
    /// Sync the new image to stable storage before renaming it into place (the default). Off,
    /// a crash soon after may leave the destination empty or partial: only for scratch copies.
    public var durable: Bool

    public init(format: DiskFormat, qcow2ClusterSize: UInt64 = 64 << 10, vhdType: VHDType = .dynamic, replace: Bool = false, durable: Bool = true) {
        self.format = format
        self.qcow2ClusterSize = qcow2ClusterSize
        self.vhdType = vhdType
        self.replace = replace
        self.durable = durable
    }
}

/// What a conversion did.
public struct ConversionResult: Sendable, Equatable, Codable {
    public var virtualSize: UInt64
    /// Guest bytes written as data (zero ranges are not written).
    public var dataBytes: UInt64
    /// Size of the new file.
    public var fileSize: UInt64
}

/// Copies what a guest sees from one image into a new image of any writable format, keeping it
/// sparse: ranges that read as zeros are not written.
public enum DiskConverter {
    /// How much is read at a time: large enough for few system calls, small enough to stay cheap.
    static let chunkSize: UInt64 = 2 << 20

    /// Converts `source` (through its backing chain) to `destination`.
    ///
    /// The new image is written beside the destination under a temporary name, synced, and
    /// renamed into place: a cut, a kill or a full disk never leaves a half-written file under
    /// the destination's name.
    ///
    /// - Parameter progress: called after each chunk with (bytes done, total bytes).
    public static func convert(
        _ source: any DiskImage, to destination: String, options: ConversionOptions,
        progress: (UInt64, UInt64) -> Void = { _, _ in }
    ) throws(VirtualDiskError) -> ConversionResult {
        if !options.replace, FileManager.default.fileExists(atPath: destination) {
            throw .invalidRequest("\(destination) already exists; remove it or ask to replace it")
        }
        return try AtomicOutput.write(to: destination, durable: options.durable) { (file) throws(VirtualDiskError) -> ConversionResult in
            let writer = try makeWriter(file: file, size: source.virtualSize, options: options, name: (destination as NSString).lastPathComponent)
            let dataBytes = try copy(source, into: writer, progress: progress)
            try writer.finish()
            return ConversionResult(virtualSize: writer.virtualSize, dataBytes: dataBytes, fileSize: try file.size())
        }
    }

    static func makeWriter(file: DiskFile, size: UInt64, options: ConversionOptions, name: String) throws(VirtualDiskError) -> any DiskWriter {
        switch options.format {
        case .raw: try RawWriter(file: file, virtualSize: size)
        case .qcow2: try QCOW2Writer(file: file, virtualSize: (size + 511) / 512 * 512, clusterSize: options.qcow2ClusterSize)
        case .vhd: try VHDWriter(file: file, virtualSize: size, kind: options.vhdType == .fixed ? .fixed : .dynamic)
        case .vmdk: try VMDKStreamWriter(file: file, virtualSize: size, fileName: name)
        }
    }

    static func copy(_ source: any DiskImage, into writer: any DiskWriter, progress: (UInt64, UInt64) -> Void) throws(VirtualDiskError) -> UInt64 {
        let size = source.virtualSize
        let unit = writer.granularity
        let chunk = max(unit, chunkSize)
        // Reading (and decompressing) the next chunks overlaps with writing this one.
        let reader = ChunkReader(source: source, chunk: chunk)
        defer { reader.cancel() }
        var written: UInt64 = 0
        while let next = try reader.next() {
            if let buffer = next.buffer {
                defer { reader.recycle(buffer) }
                let raw = UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<Int(next.length)])
                written += try writeNonZeroRuns(raw, at: next.offset, unit: unit, into: writer)
            }
            progress(min(next.offset + next.length, size), size)
        }
        return written
    }

    /// Writes the runs of `data` made of non-zero units, one write per run.
    private static func writeNonZeroRuns(_ data: UnsafeRawBufferPointer, at offset: UInt64, unit: UInt64, into writer: any DiskWriter) throws(VirtualDiskError) -> UInt64 {
        let length = UInt64(data.count)
        var written: UInt64 = 0
        var runStart: UInt64?
        var start: UInt64 = 0
        while start <= length {
            let end = min(length, start + unit)
            let zero = start == length || UnsafeRawBufferPointer(rebasing: data[Int(start)..<Int(end)]).isAllZero
            if !zero, runStart == nil {
                runStart = start
            } else if zero, let first = runStart {
                let run = UnsafeRawBufferPointer(rebasing: data[Int(first)..<Int(start)])
                try writer.write(at: offset + first, run)
                written += UInt64(run.count)
                runStart = nil
            }
            if start == length { break }
            start = end
        }
        return written
    }

    static func holdsData(_ source: any DiskImage, from offset: UInt64, length: UInt64) throws(VirtualDiskError) -> Bool {
        var position = offset
        while position < offset + length {
            let extent = try source.resolvedExtent(at: position, maxLength: offset + length - position)
            if extent.kind == .data { return true }
            position += extent.length
        }
        return false
    }
}

/// Writes a file under a temporary name beside its destination and renames it into place
/// once whole and synced; on any failure the temporary file is removed.
enum AtomicOutput {
    static func write<Result>(to destination: String, durable: Bool = true, _ body: (DiskFile) throws(VirtualDiskError) -> Result) throws(VirtualDiskError) -> Result {
        let directory = (destination as NSString).deletingLastPathComponent
        let name = (destination as NSString).lastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.\(name).partial-\(UUID().uuidString.prefix(8))"
        let file = try DiskFile.create(path: temporary)
        file.skipsSync = !durable
        do throws(VirtualDiskError) {
            let result = try body(file)
            guard rename(temporary, destination) == 0 else {
                throw VirtualDiskError.io(path: destination, operation: "rename \(temporary) to", reason: DiskFile.lastError())
            }
            if durable {
                syncDirectory(directory.isEmpty ? "." : directory)
            }
            return result
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Makes the rename itself durable.
    private static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
