import Foundation
import Testing
@testable import VirtualDisk

/// `extend` grows the disk and its last partition; sfdisk, reading the result on its own,
/// must find a valid table whose last partition reaches the new end.
@Suite struct ExtendTests {
    struct Layout: Decodable {
        struct Table: Decodable {
            struct Entry: Decodable { var start: UInt64; var size: UInt64 }
            var label: String
            var lastlba: UInt64?
            var partitions: [Entry]
        }
        var partitiontable: Table
    }

    func sfdisk(_ arguments: [String], input: String? = nil) throws -> String {
        try InspectionTests.tool("/usr/sbin/sfdisk", arguments, input: input)
    }

    @Test(arguments: ["gpt", "dos"], ["raw", "qcow2"])
    func theLastPartitionGrowsToTheNewEnd(label: String, format: String) throws {
        let scratch = try Scratch()
        let raw = scratch.file("disk.raw")
        try DiskFile.create(path: raw).truncate(to: 64 << 20)
        _ = try sfdisk(["--quiet", raw], input: "label: \(label)\nstart=1MiB, size=16MiB\nstart=20MiB, size=30MiB\n")
        _ = try InspectionTests.tool("/usr/sbin/mke2fs", ["-q", "-F", "-t", "ext4", "-L", "user", "-E", "offset=\(20 << 20)", raw, "30M"])
        var disk = raw
        if format == "qcow2" {
            disk = scratch.file("disk.qcow2")
            try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", raw, disk)
        }
        let result = try DiskResizer.extend(disk, to: 256 << 20, format: DiskFormat(rawValue: format))
        #expect(result.newSize == 256 << 20)
        #expect(result.partitionNumber == 2)
        if format == "qcow2" {
            try Oracle.qemuImg("check", disk)
            try FileManager.default.removeItem(atPath: raw)
            try Oracle.qemuImg("convert", "-f", "qcow2", "-O", "raw", disk, raw)
        }
        // sfdisk finds no problem (a misplaced GPT backup header would be one) …
        _ = try sfdisk(["--verify", raw])
        let layout = try JSONDecoder().decode(Layout.self, from: Data(try sfdisk(["--json", raw]).utf8)).partitiontable
        let sectors = UInt64(256 << 20) / 512
        #expect(layout.partitions.count == 2)
        #expect(layout.partitions[0].size == 16 << 11, "the first partition is untouched")
        if label == "gpt" {
            #expect(layout.lastlba == sectors - 34)
            #expect(layout.partitions[1].start + layout.partitions[1].size - 1 == sectors - 34)
        } else {
            #expect(layout.partitions[1].start + layout.partitions[1].size == sectors)
        }
        // … and the filesystem inside is intact, to be grown by the guest.
        let inspection = try DiskInspection(of: try DiskOpener.open(raw, format: .raw, policy: .standalone))
        #expect(inspection.partitionTable?.partitions.last?.filesystem?.label == "user")
    }

    @Test func aDiskIsNeverShrunkAndOddSizesAreRefused() throws {
        let scratch = try Scratch()
        let raw = scratch.file("disk.raw")
        try DiskFile.create(path: raw).truncate(to: 8 << 20)
        #expect(throws: VirtualDiskError.self) { _ = try DiskResizer.extend(raw, to: 4 << 20, format: .raw) }
        #expect(throws: VirtualDiskError.self) { _ = try DiskResizer.extend(raw, to: (8 << 20) + 100, format: .raw) }
        #expect(try DiskFile(path: raw).size() == 8 << 20)
    }

    @Test func aFixedVHDGrowsAndStaysReadableByQEMU() throws {
        let scratch = try Scratch()
        let vhd = scratch.file("disk.vhd")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", try scratch.patternDisk(), vhd)
        let before = try Oracle.rawBytes(vhd, format: "vpc", scratch: scratch.path)
        let result = try DiskResizer.extend(vhd, to: 64 << 20, format: .vhd)
        #expect(result.newSize >= 64 << 20)
        #expect(try Oracle.virtualSize(vhd, format: "vpc") == result.newSize)
        let after = try Oracle.rawBytes(vhd, format: "vpc", scratch: scratch.path)
        #expect(after.prefix(before.count) == before)
        #expect(after.dropFirst(before.count).allSatisfy { $0 == 0 })
    }
}
