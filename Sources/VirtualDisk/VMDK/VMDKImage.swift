import Foundation

/// A VMDK disk: monolithicSparse, streamOptimized (one sparse extent in the file itself), or a
/// text descriptor naming FLAT, SPARSE and ZERO extents (monolithicFlat and split disks).
public final class VMDKImage: DiskImage {
    public let format = DiskFormat.vmdk
    public let path: String
    public let virtualSize: UInt64
    public let backing: (any DiskImage)? = nil
    /// The descriptor's `createType` (monolithicSparse, streamOptimized, monolithicFlat, …).
    public let createType: String
    let extents: [Part]

    /// One extent, mapped to guest bytes `start ..< start + length`.
    struct Part {
        enum Storage {
            case flat(RawImage)
            case sparse(VMDKSparseExtent)
            case zero
        }

        var start: UInt64
        var length: UInt64
        var storage: Storage
    }

    /// Descriptor files larger than this are not VMDK descriptors.
    static let maximumDescriptorBytes: UInt64 = 1 << 20

    private init(path: String, createType: String, extents: [Part]) {
        self.path = path
        self.createType = createType
        self.extents = extents
        self.virtualSize = extents.last.map { $0.start + $0.length } ?? 0
    }

    static func open(_ file: DiskFile, policy: DiskAccessPolicy, depth: Int) throws(VirtualDiskError) -> VMDKImage {
        let magic = try file.read(count: 4, at: 0, field: "magic", zeroPastEnd: true)
        if magic == VMDKSparseExtent.magic.littleEndianBytes {
            let sparse = try VMDKSparseExtent(file: file)
            let type = sparse.descriptor.flatMap { Descriptor.parse($0).createType } ?? (sparse.compressed ? "streamOptimized" : "monolithicSparse")
            return VMDKImage(path: file.path, createType: type, extents: [Part(start: 0, length: sparse.capacitySectors * 512, storage: .sparse(sparse))])
        }
        let size = try file.size()
        guard size <= maximumDescriptorBytes else {
            throw .notFormat(path: file.path, format: .vmdk)
        }
        let text = String(decoding: try file.read(count: Int(size), at: 0, field: "descriptor"), as: UTF8.self)
        guard text.contains("createType") else {
            throw .notFormat(path: file.path, format: .vmdk)
        }
        let descriptor = Descriptor.parse(text)
        if descriptor.parentFileNameHint != nil {
            throw .unsupported(path: file.path, feature: "VMDK delta disks (parentFileNameHint)")
        }
        var parts: [Part] = []
        var start: UInt64 = 0
        for (index, line) in descriptor.extents.enumerated() {
            guard line.sectors < 1 << 40, line.offsetSectors < 1 << 40, start < 1 << 56 else {
                throw .corrupt(path: file.path, field: "extent \(index)", offset: 0, reason: "\(line.sectors) sectors at sector \(line.offsetSectors) is beyond any real disk")
            }
            let length = line.sectors * 512
            let storage: Part.Storage
            switch line.type {
            case "ZERO":
                storage = .zero
            case "FLAT", "VMFS":
                guard let name = line.file else {
                    throw .corrupt(path: file.path, field: "extent \(index)", offset: 0, reason: "a FLAT extent names no file")
                }
                let extentFile = try DiskFile(path: try policy.resolve(name, referencedBy: file.path, role: "extent"))
                storage = .flat(try RawImage(file: extentFile, virtualSize: length, dataOffset: line.offsetSectors * 512))
            case "SPARSE":
                guard let name = line.file else {
                    throw .corrupt(path: file.path, field: "extent \(index)", offset: 0, reason: "a SPARSE extent names no file")
                }
                let sparse = try VMDKSparseExtent(file: try DiskFile(path: try policy.resolve(name, referencedBy: file.path, role: "extent")))
                storage = .sparse(sparse)
            default:
                throw .unsupported(path: file.path, feature: "VMDK extents of type \(line.type)")
            }
            parts.append(Part(start: start, length: length, storage: storage))
            start += length
        }
        guard !parts.isEmpty else {
            throw .corrupt(path: file.path, field: "extents", offset: 0, reason: "the descriptor lists no extents")
        }
        return VMDKImage(path: file.path, createType: descriptor.createType ?? "unknown", extents: parts)
    }

    private func part(at offset: UInt64) -> Part {
        // Few extents (a split disk has one per 2 GiB); a linear scan is enough.
        extents.last { $0.start <= offset } ?? extents[0]
    }

    public func extent(at offset: UInt64, maxLength: UInt64) throws(VirtualDiskError) -> Extent {
        let part = part(at: offset)
        let local = offset - part.start
        let limit = min(maxLength, part.length - local)
        switch part.storage {
        case .zero:
            return Extent(offset: offset, length: limit, kind: .zero)
        case .flat(let raw):
            let inner = try raw.extent(at: local, maxLength: limit)
            return Extent(offset: offset, length: inner.length, kind: inner.kind)
        case .sparse(let sparse):
            func kind(_ entry: UInt32) -> ExtentKind {
                entry == 0 ? .zero : (entry == 1 && sparse.zeroedGrainEntries ? .zero : .data)
            }
            let first = kind(try sparse.grainEntry(at: local))
            var length = min(limit, sparse.grainBytes - local % sparse.grainBytes)
            while length < limit, kind(try sparse.grainEntry(at: local + length)) == first {
                length = min(limit, length + sparse.grainBytes)
            }
            return Extent(offset: offset, length: length, kind: first)
        }
    }

    public func readData(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VirtualDiskError) {
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let part = part(at: position)
            let local = position - part.start
            var length = Int(min(part.length - local, UInt64(buffer.count - done)))
            let slice = { UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + length]) }
            switch part.storage {
            case .zero:
                slice().initializeMemory(as: UInt8.self, repeating: 0)
            case .flat(let raw):
                try raw.readData(at: local, into: slice())
            case .sparse(let sparse):
                length = min(length, Int(sparse.grainBytes - local % sparse.grainBytes))
                let entry = try sparse.grainEntry(at: local)
                if entry == 0 || (entry == 1 && sparse.zeroedGrainEntries) {
                    slice().initializeMemory(as: UInt8.self, repeating: 0)
                } else {
                    try sparse.readGrain(at: local, entry: entry, into: slice())
                }
            }
            done += length
        }
    }
}

/// The parts of a VMDK text descriptor this library uses.
struct Descriptor {
    struct ExtentLine {
        var access: String
        var sectors: UInt64
        var type: String
        var file: String?
        var offsetSectors: UInt64
    }

    var createType: String?
    var parentFileNameHint: String?
    var extents: [ExtentLine] = []

    static func parse(_ text: String) -> Descriptor {
        var descriptor = Descriptor()
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.isEmpty { continue }
            if let value = Self.value(of: "createType", in: line) {
                descriptor.createType = value
            } else if let value = Self.value(of: "parentFileNameHint", in: line) {
                descriptor.parentFileNameHint = value
            } else if line.hasPrefix("RW ") || line.hasPrefix("RDONLY ") || line.hasPrefix("NOACCESS ") {
                // RW 2097152 FLAT "disk-flat.vmdk" 0
                var fields: [String] = []
                var quoted: String?
                if let open = line.firstIndex(of: "\""), let close = line[line.index(after: open)...].firstIndex(of: "\"") {
                    quoted = String(line[line.index(after: open)..<close])
                    fields = line[..<open].split(separator: " ").map(String.init) + line[line.index(after: close)...].split(separator: " ").map(String.init)
                } else {
                    fields = line.split(separator: " ").map(String.init)
                }
                guard fields.count >= 3, let sectors = UInt64(fields[1]) else { continue }
                let offset = fields.count >= 4 ? UInt64(fields[3]) ?? 0 : 0
                descriptor.extents.append(ExtentLine(access: fields[0], sectors: sectors, type: fields[2], file: quoted, offsetSectors: offset))
            }
        }
        return descriptor
    }

    private static func value(of key: String, in line: String) -> String? {
        guard line.hasPrefix(key), let equals = line.firstIndex(of: "=") else { return nil }
        guard line[..<equals].trimmingCharacters(in: .whitespaces) == key else { return nil }
        return line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
}
