import Foundation
import Testing
@testable import VirtualDisk

/// QEMU cannot read or write differencing VHDs, so these tests build one by hand from the
/// specification: a child whose one block holds 8 sectors of its own over a parent made by
/// qemu-img.
@Suite struct VHDDifferencingTests {
    func makeChild(_ scratch: Scratch, parentID: [UInt8]? = nil) throws -> (child: String, parent: any DiskImage) {
        let parentPath = scratch.file("parent.vhd")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", try scratch.patternDisk(), parentPath)
        let parent = try #require(try DiskOpener.open(parentPath, format: .vhd, policy: .standalone) as? VHDImage)
        let blockSize: UInt64 = 2 << 20
        let entries = parent.blockTable.count

        var footer = parent.footer
        footer.diskType = .differencing
        footer.dataOffset = 512
        footer.uniqueID = Array(repeating: 0x42, count: 16)
        let locatorName = Array(".\\parent.vhd".utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let tableBytes = (entries * 4 + 511) / 512 * 512
        let locatorOffset = UInt64(1536 + tableBytes)
        let blockSector = (locatorOffset + 512) / 512

        var header = [UInt8](repeating: 0, count: 1024)
        header.replaceSubrange(0..<8, with: Array("cxsparse".utf8))
        header.putBigEndian(UInt64.max, at: 8)
        header.putBigEndian(UInt64(1536), at: 16)
        header.putBigEndian(UInt32(0x0001_0000), at: 24)
        header.putBigEndian(UInt32(entries), at: 28)
        header.putBigEndian(UInt32(blockSize), at: 32)
        header.replaceSubrange(40..<56, with: parentID ?? parent.footer.uniqueID)
        let unicode = Array("parent.vhd".utf16).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        header.replaceSubrange(64..<64 + unicode.count, with: unicode)
        header.replaceSubrange(576..<580, with: Array("W2ru".utf8))
        header.putBigEndian(UInt32(512), at: 580)
        header.putBigEndian(UInt32(locatorName.count), at: 584)
        header.putBigEndian(locatorOffset, at: 592)
        header.putBigEndian(VHDFooter.checksum(header, skipping: 36), at: 36)

        var table = [UInt8](repeating: 0xFF, count: tableBytes)
        table.putBigEndian(UInt32(blockSector), at: 4) // block 1
        var bitmap = [UInt8](repeating: 0, count: 512)
        bitmap[0] = 0xFF // sectors 0–7 of block 1 are the child's
        let data = [UInt8](repeating: 0xEE, count: Int(blockSize))

        let childPath = scratch.file("child.vhd")
        let file = try DiskFile.create(path: childPath)
        try file.write(footer.serialized(), at: 0)
        try file.write(header, at: 512)
        try file.write(table, at: 1536)
        try file.write(locatorName + [UInt8](repeating: 0, count: 512 - locatorName.count), at: locatorOffset)
        try file.write(bitmap, at: blockSector * 512)
        try file.write(data, at: blockSector * 512 + 512)
        try file.write(footer.serialized(), at: blockSector * 512 + 512 + blockSize)
        return (childPath, parent)
    }

    @Test func sectorsTheChildHoldsReadFromItAndTheRestFromTheParent() throws {
        let scratch = try Scratch()
        let (childPath, parent) = try makeChild(scratch)
        let child = try DiskOpener.open(childPath, policy: .sameDirectory(as: childPath))
        #expect(child.chain.count == 2)
        var expected = try parent.readAll()
        expected.replaceSubrange((2 << 20)..<((2 << 20) + 4096), with: [UInt8](repeating: 0xEE, count: 4096))
        #expect(try child.readAll() == expected)
        #expect(try child.extent(at: 2 << 20, maxLength: 1 << 20) == Extent(offset: 2 << 20, length: 4096, kind: .data))
        #expect(try child.extent(at: (2 << 20) + 4096, maxLength: 4096).kind == .unallocated)

        // Converted, the chain flattens to what the guest saw.
        let flat = scratch.file("flat.qcow2")
        _ = try DiskConverter.convert(child, to: flat, options: .init(format: .qcow2))
        #expect(try Oracle.rawBytes(flat, format: "qcow2", scratch: scratch.path) == expected)
    }

    @Test func aParentThatIsNotTheOneTheChildWasMadeFromIsRefused() throws {
        let scratch = try Scratch()
        let (childPath, _) = try makeChild(scratch, parentID: Array(repeating: 7, count: 16))
        do {
            _ = try DiskOpener.open(childPath, policy: .sameDirectory(as: childPath))
            Issue.record("opened a child over the wrong parent")
        } catch {
            #expect("\(error)".contains("not the parent"))
        }
    }
}
