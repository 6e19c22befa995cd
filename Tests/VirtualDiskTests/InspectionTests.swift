import Foundation
import Testing
@testable import VirtualDisk

/// Partition tables written by sfdisk and filesystems made by their own mkfs tools, read back
/// by Hearth and checked against what `blkid` says of each filesystem.
@Suite struct InspectionTests {
    static func tool(_ path: String, _ arguments: [String], input: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw OracleError(message: "\(path) \(arguments) failed") }
        return String(decoding: data, as: UTF8.self)
    }

    /// blkid's view of a filesystem image: TYPE, LABEL, UUID.
    static func blkid(_ path: String) throws -> Filesystem {
        var fields: [String: String] = [:]
        for line in try tool("/usr/sbin/blkid", ["-p", "-o", "export", path]).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        return Filesystem(type: fields["TYPE"] ?? "?", label: fields["LABEL"], uuid: fields["UUID"])
    }

    /// Makes each filesystem in its own file, then copies it (sparsely) into the disk.
    static func makeFilesystems(on disk: String, at offsets: [UInt64], scratch: Scratch) throws -> [Filesystem] {
        let makers: [(String, UInt64, [String])] = [
            ("/usr/sbin/mke2fs", 64, ["-q", "-F", "-t", "ext4", "-L", "hearth-user", "-U", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]),
            ("/usr/sbin/mke2fs", 16, ["-q", "-F", "-t", "ext2", "-L", "old"]),
            ("/usr/sbin/mke2fs", 16, ["-q", "-F", "-t", "ext3", "-L", "journal"]),
            ("/usr/sbin/mkfs.vfat", 64, ["-n", "EFI", "-i", "1234ABCD"]),
            ("/usr/sbin/mkfs.xfs", 300, ["-q", "-f", "-L", "data", "-m", "uuid=11112222-3333-4444-5555-666677778888"]),
            ("/usr/sbin/mkswap", 16, ["-L", "swap", "-U", "aaaabbbb-cccc-dddd-eeee-ffff00001111"]),
            ("/usr/sbin/mkntfs", 16, ["-Q", "-F", "-q", "-L", "Windows"]),
        ]
        var expected: [Filesystem] = []
        for (index, (maker, sizeMiB, arguments)) in makers.enumerated() {
            let image = scratch.file("fs\(index).img")
            let file = try DiskFile.create(path: image, replace: true)
            try file.truncate(to: sizeMiB << 20)
            _ = try tool(maker, arguments + [image])
            expected.append(try blkid(image))
            _ = try tool("/usr/bin/dd", ["if=\(image)", "of=\(disk)", "bs=1M", "seek=\(offsets[index] >> 20)", "conv=sparse,notrunc", "status=none"])
            try FileManager.default.removeItem(atPath: image)
        }
        return expected
    }

    @Test(arguments: ["gpt", "dos"])
    func partitionsAndFilesystemsMatchBlkid(label: String) throws {
        let scratch = try Scratch()
        let raw = scratch.file("disk.raw")
        try DiskFile.create(path: raw).truncate(to: 600 << 20)
        let sizes: [UInt64] = [64, 16, 16, 64, 300, 16, 16]
        var script = "label: \(label)\n"
        var offsets: [UInt64] = []
        var start: UInt64 = 1
        for (index, size) in sizes.enumerated() {
            if label == "dos", index == 3 {
                // Partitions 4+ are logical, inside an extended partition.
                script += "start=\(start)MiB, type=5\n"
                start += 1
            }
            offsets.append(start << 20)
            script += "start=\(start)MiB, size=\(size)MiB\n"
            start += size + 1
        }
        _ = try Self.tool("/usr/sbin/sfdisk", ["--quiet", raw], input: script)
        let expected = try Self.makeFilesystems(on: raw, at: offsets, scratch: scratch)
        #expect(expected.map(\.type) == ["ext4", "ext2", "ext3", "vfat", "xfs", "swap", "ntfs"])

        // Read through qcow2, as an admin's image would come.
        let image = scratch.file("disk.qcow2")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", raw, image)
        let inspection = try DiskInspection(of: try DiskOpener.open(image, policy: .standalone))
        let table = try #require(inspection.partitionTable)
        #expect(table.scheme == (label == "gpt" ? .gpt : .mbr))
        #expect(table.partitions.map(\.offset) == offsets)
        #expect(table.partitions.map(\.length) == sizes.map { $0 << 20 })
        #expect(table.partitions.map(\.number) == (label == "gpt" ? [1, 2, 3, 4, 5, 6, 7] : [1, 2, 3, 5, 6, 7, 8]))
        #expect(table.partitions.map(\.filesystem) == expected)
    }

    @Test func aWholeDiskFilesystemAndAnEmptyDisk() throws {
        let scratch = try Scratch()
        let disk = scratch.file("whole.raw")
        try DiskFile.create(path: disk).truncate(to: 32 << 20)
        _ = try Self.tool("/usr/sbin/mke2fs", ["-q", "-F", "-t", "ext4", "-L", "whole", disk])
        let inspection = try DiskInspection(of: try DiskOpener.open(disk, format: .raw, policy: .standalone))
        #expect(inspection.partitionTable == nil)
        #expect(inspection.filesystem == (try Self.blkid(disk)))

        let empty = scratch.file("empty.raw")
        try DiskFile.create(path: empty).truncate(to: 1 << 20)
        let nothing = try DiskInspection(of: try DiskOpener.open(empty, format: .raw, policy: .standalone))
        #expect(nothing.partitionTable == nil && nothing.filesystem == nil)
    }
}
