import Foundation

/// Writes a streamOptimized VMDK (the disk inside an OVA): compressed grains with markers in
/// guest order, then grain tables, the grain directory and a footer, in one pass.
final class VMDKStreamWriter: DiskWriter {
    let file: DiskFile
    let virtualSize: UInt64
    let granularity: UInt64 = 64 << 10
    private let grainSectors: UInt64 = 128
    private let entriesPerTable: UInt64 = 512
    private let capacitySectors: UInt64
    private var grainTable: [UInt32]
    private var position: UInt64
    private var lastGrain: Int64 = -1

    private static let overheadSectors: UInt64 = 128
    private static let descriptorSectors: UInt64 = 20

    init(file: DiskFile, virtualSize: UInt64, fileName: String) throws(VirtualDiskError) {
        self.file = file
        self.capacitySectors = (virtualSize + 511) / 512
        self.virtualSize = capacitySectors * 512
        let grains = (capacitySectors + grainSectors - 1) / grainSectors
        let tables = (grains + entriesPerTable - 1) / entriesPerTable
        grainTable = [UInt32](repeating: 0, count: Int(tables * entriesPerTable))
        position = Self.overheadSectors * 512
        try file.truncate(to: 0)
        try file.write(header(gdOffset: VMDKSparseExtent.gdAtEnd), at: 0)
        try file.write(descriptor(fileName: fileName), at: 512)
        try file.truncate(to: position)
    }

    func write(at offset: UInt64, _ buffer: UnsafeRawBufferPointer) throws(VirtualDiskError) {
        guard offset % granularity == 0 else {
            throw .invalidRequest("streamOptimized VMDK writes must start on a grain boundary")
        }
        var done = 0
        while done < buffer.count {
            let grain = (offset + UInt64(done)) / granularity
            guard Int64(grain) > lastGrain else {
                throw .invalidRequest("a streamOptimized VMDK is written in one pass, in guest order")
            }
            let length = Int(min(granularity, UInt64(buffer.count - done)))
            let data = UnsafeRawBufferPointer(rebasing: buffer[done..<done + length])
            guard let compressed = Decompression.deflate(data) else {
                throw .io(path: file.path, operation: "compress a grain for", reason: "zlib failed")
            }
            var record = (grain * grainSectors).littleEndianBytes + UInt32(compressed.count).littleEndianBytes + compressed
            record += [UInt8](repeating: 0, count: (512 - record.count % 512) % 512)
            grainTable[Int(grain)] = UInt32(position / 512)
            try file.write(record, at: position)
            position += UInt64(record.count)
            lastGrain = Int64(grain)
            done += length
        }
    }

    func finish() throws(VirtualDiskError) {
        let tables = grainTable.count / Int(entriesPerTable)
        var directory: [UInt32] = []
        for table in 0..<tables {
            try writeMarker(type: 1, sectors: entriesPerTable * 4 / 512)
            directory.append(UInt32(position / 512))
            let entries = grainTable[table * Int(entriesPerTable)..<(table + 1) * Int(entriesPerTable)]
            try writePadded(entries.flatMap { $0.littleEndianBytes })
        }
        let directoryBytes = UInt64(directory.count * 4 + 511) / 512 * 512
        try writeMarker(type: 2, sectors: directoryBytes / 512)
        let gdOffset = position / 512
        try writePadded(directory.flatMap { $0.littleEndianBytes })
        try writeMarker(type: 3, sectors: 1)
        try writePadded(header(gdOffset: gdOffset))
        try writePadded([UInt8](repeating: 0, count: 512)) // end-of-stream marker
        try file.sync()
    }

    private func writeMarker(type: UInt32, sectors: UInt64) throws(VirtualDiskError) {
        try writePadded(sectors.littleEndianBytes + UInt32(0).littleEndianBytes + type.littleEndianBytes)
    }

    private func writePadded(_ bytes: [UInt8]) throws(VirtualDiskError) {
        let padded = bytes + [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
        try file.write(padded, at: position)
        position += UInt64(padded.count)
    }

    private func header(gdOffset: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 512)
        bytes.putLittleEndian(VMDKSparseExtent.magic, at: 0)
        bytes.putLittleEndian(UInt32(3), at: 4)
        bytes.putLittleEndian(UInt32(1 | 1 << 16 | 1 << 17), at: 8) // newline test, compressed, markers
        bytes.putLittleEndian(capacitySectors, at: 12)
        bytes.putLittleEndian(grainSectors, at: 20)
        bytes.putLittleEndian(UInt64(1), at: 28)
        bytes.putLittleEndian(Self.descriptorSectors, at: 36)
        bytes.putLittleEndian(UInt32(entriesPerTable), at: 44)
        bytes.putLittleEndian(UInt64(0), at: 48)
        bytes.putLittleEndian(gdOffset, at: 56)
        bytes.putLittleEndian(Self.overheadSectors, at: 64)
        bytes[73] = 0x0A
        bytes[74] = 0x20
        bytes[75] = 0x0D
        bytes[76] = 0x0A
        bytes.putLittleEndian(UInt16(1), at: 77) // deflate
        return bytes
    }

    private func descriptor(fileName: String) -> [UInt8] {
        let cylinders = min(65535, capacitySectors / (16 * 63))
        let text = """
        # Disk DescriptorFile
        version=1
        CID=\(String(UInt32.random(in: 1..<UInt32.max), radix: 16))
        parentCID=ffffffff
        createType="streamOptimized"

        # Extent description
        RW \(capacitySectors) SPARSE "\(fileName)"

        # The Disk Data Base
        #DDB

        ddb.virtualHWVersion = "4"
        ddb.geometry.cylinders = "\(cylinders)"
        ddb.geometry.heads = "16"
        ddb.geometry.sectors = "63"
        ddb.adapterType = "ide"

        """
        var bytes = Array(text.utf8)
        bytes += [UInt8](repeating: 0, count: Int(Self.descriptorSectors * 512) - bytes.count)
        return bytes
    }
}
