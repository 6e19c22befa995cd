import Foundation
import Testing
@testable import VirtualDisk

/// Every image Hearth writes passes `qemu-img check` (where qemu-img can check the format) and
/// `qemu-img compare` against its source.
@Suite struct WriteOracleTests {
    struct Target: CustomStringConvertible, Sendable {
        var options: ConversionOptions
        var description: String {
            switch options.format {
            case .qcow2: "qcow2 cluster \(options.qcow2ClusterSize)"
            case .vhd: "vhd \(options.vhdType.rawValue)"
            default: options.format.rawValue
            }
        }
    }

    static let targets: [Target] = [
        Target(options: .init(format: .raw)),
        Target(options: .init(format: .qcow2, qcow2ClusterSize: 512)),
        Target(options: .init(format: .qcow2, qcow2ClusterSize: 64 << 10)),
        Target(options: .init(format: .qcow2, qcow2ClusterSize: 2 << 20)),
        Target(options: .init(format: .vhd, vhdType: .dynamic)),
        Target(options: .init(format: .vhd, vhdType: .fixed)),
        Target(options: .init(format: .vmdk)),
    ]

    /// Sources: qemu-img's own output in each format, and an overlay chain.
    static let sources = ["raw", "qcow2", "qcow2-chain", "vpc", "vmdk"]

    static func makeSource(_ kind: String, in scratch: Scratch) throws -> (path: String, format: String) {
        let pattern = try scratch.patternDisk()
        switch kind {
        case "raw":
            return (pattern, "raw")
        case "qcow2-chain":
            try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", pattern, scratch.file("base.qcow2"))
            try Oracle.qemuImg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", scratch.file("top.qcow2"))
            try Oracle.qemuIO(scratch.file("top.qcow2"), format: "qcow2", "write -P 0x5a 2M 1M", "write -z 0 64k")
            return (scratch.file("top.qcow2"), "qcow2")
        default:
            let path = scratch.file("source.\(kind)")
            try Oracle.qemuImg("convert", "-f", "raw", "-O", kind, pattern, path)
            return (path, kind)
        }
    }

    @Test(arguments: sources, targets)
    func writtenImagesPassQemuImgCheckAndCompare(source kind: String, target: Target) throws {
        let scratch = try Scratch()
        let (source, sourceFormat) = try Self.makeSource(kind, in: scratch)
        let destination = scratch.file("out.\(target.options.format.qemuName)")
        let image = try DiskOpener.open(source, format: DiskFormat(qemuName: sourceFormat), policy: .sameDirectory(as: source))
        var reported: UInt64 = 0
        let result = try DiskConverter.convert(image, to: destination, options: target.options) { done, _ in reported = done }
        #expect(reported == image.virtualSize)
        #expect(result.virtualSize == (try Oracle.virtualSize(destination, format: target.options.format.qemuName)))

        if target.options.format == .qcow2 || target.options.format == .vmdk {
            try Oracle.qemuImg("check", "-f", target.options.format.qemuName, destination)
        }
        // compare exits non-zero on any difference; a larger VHD must differ only by zeros.
        try Oracle.qemuImg("compare", "-f", sourceFormat, "-F", target.options.format.qemuName, source, destination)
        // And Hearth reads back what it wrote.
        let reread = try DiskOpener.open(destination, format: target.options.format, policy: .standalone)
        #expect(try reread.read(at: 3 << 20, count: 4096) == (try image.read(at: 3 << 20, count: 4096)))
        // Sparse: about 3 MiB of the 9 MiB disk hold data, and only the units holding them are
        // written (units are 2 MiB for dynamic VHD and 2 MiB qcow2 clusters, 6–8 MiB is all zeros).
        let coarse = target.options.format == .vhd && target.options.vhdType == .dynamic || target.options.qcow2ClusterSize == 2 << 20 && target.options.format == .qcow2
        #expect(result.dataBytes < (coarse ? 8 << 20 : 6 << 20))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.contains(".partial-") }
        #expect(leftovers.isEmpty)
    }

    @Test func aConversionWithoutSyncGivesTheSameImage() throws {
        let scratch = try Scratch()
        let source = try scratch.patternDisk()
        let destination = scratch.file("scratch.qcow2")
        let image = try DiskOpener.open(source, format: .raw, policy: .standalone)
        _ = try DiskConverter.convert(image, to: destination, options: .init(format: .qcow2, durable: false))
        try Oracle.qemuImg("check", destination)
        try Oracle.qemuImg("compare", "-f", "raw", "-F", "qcow2", source, destination)
    }

    /// Raw output goes around the page cache in aligned pieces; a disk whose size is not a
    /// multiple of 4 KiB ends in a piece that cannot, and still arrives whole, in a folder on
    /// disk and in one in memory (tmpfs, where O_DIRECT may be refused).
    @Test(arguments: [false, true])
    func aRawImageOfAnOddSizeConvertsWholeToTheLastByte(inMemory: Bool) throws {
        let scratch = try Scratch()
        let folder = inMemory ? "/dev/shm/hearth-odd-\(UUID().uuidString.prefix(8))" : scratch.path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { if inMemory { try? FileManager.default.removeItem(atPath: folder) } }
        let size = (5 << 20) + 1536
        var bytes = [UInt8](repeating: 0, count: size)
        for index in stride(from: 0, to: 3 << 20, by: 1) { bytes[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 13) }
        for index in (size - 3000)..<size { bytes[index] = UInt8(truncatingIfNeeded: index | 1) }
        let source = scratch.file("odd.raw")
        try Data(bytes).write(to: URL(fileURLWithPath: source))
        let qcow2 = scratch.file("odd.qcow2")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", source, qcow2)
        for (input, format) in [(source, DiskFormat.raw), (qcow2, .qcow2)] {
            let destination = "\(folder)/out-\(format.rawValue).raw"
            let image = try DiskOpener.open(input, format: format, policy: .standalone)
            let result = try DiskConverter.convert(image, to: destination, options: .init(format: .raw))
            #expect(result.fileSize == UInt64(size))
            #expect(try Data(contentsOf: URL(fileURLWithPath: destination)) == Data(bytes), "from \(format)")
        }
    }

    @Test func aFailedConversionLeavesTheOldDestinationWhole() throws {
        let scratch = try Scratch()
        let destination = scratch.file("keep.qcow2")
        try Oracle.qemuImg("create", "-f", "qcow2", destination, "1M")
        let before = try Data(contentsOf: URL(fileURLWithPath: destination))
        let source = try DiskOpener.open(try scratch.patternDisk(), format: .raw, policy: .standalone)
        // A cluster size qcow2 cannot have fails once the temporary file exists.
        #expect(throws: VirtualDiskError.self) {
            _ = try DiskConverter.convert(source, to: destination, options: .init(format: .qcow2, qcow2ClusterSize: 3000, replace: true))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: destination)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.contains(".partial-") }.isEmpty)
        #expect(throws: VirtualDiskError.self) {
            _ = try DiskConverter.convert(source, to: destination, options: .init(format: .qcow2))
        }
    }
}

@Suite struct OverlayTests {
    @Test func anOverlayIsResetToItsBaseAndStaysValid() throws {
        let scratch = try Scratch()
        let base = scratch.file("gold.qcow2")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", try scratch.patternDisk(), base)
        let overlay = scratch.file("system.qcow2")
        try Overlay.create(at: overlay, base: base, baseFormat: .qcow2)
        try Oracle.qemuImg("check", overlay)
        let info = try Oracle.qemuImg("info", "--output=json", overlay)
        #expect(info.contains("\"backing-filename\": \"gold.qcow2\""))
        #expect(info.contains("\"backing-filename-format\": \"qcow2\""))

        // The guest writes; the overlay now differs from its base.
        try Oracle.qemuIO(overlay, format: "qcow2", "write -P 0x77 0 4M")
        #expect(throws: OracleError.self) { try Oracle.qemuImg("compare", overlay, base) }
        let goldBefore = try Data(contentsOf: URL(fileURLWithPath: base))

        try Overlay.reset(overlay)
        try Oracle.qemuImg("check", overlay)
        try Oracle.qemuImg("compare", overlay, base)
        #expect(try Data(contentsOf: URL(fileURLWithPath: base)) == goldBefore, "the gold image was written")
        #expect(try DiskFile(path: overlay).size() < 1 << 20)
    }

    @Test func resettingADiskWithoutABaseIsRefused() throws {
        let scratch = try Scratch()
        let disk = scratch.file("user.qcow2")
        try Oracle.qemuImg("create", "-f", "qcow2", disk, "1M")
        #expect(throws: VirtualDiskError.self) { try Overlay.reset(disk) }
    }

    @Test func resetTakesTheSameMetadataWhateverTheDiskSize() throws {
        // Constant time shows as constant work: the new overlay's size does not grow with the disk.
        let scratch = try Scratch()
        var sizes: [UInt64] = []
        for (index, size) in ["64M", "64G", "4T"].enumerated() {
            let base = scratch.file("base\(index).qcow2")
            try Oracle.qemuImg("create", "-f", "qcow2", base, size)
            let overlay = scratch.file("overlay\(index).qcow2")
            try Overlay.create(at: overlay, base: base, baseFormat: .qcow2)
            try Oracle.qemuIO(overlay, format: "qcow2", "write -P 1 0 1M")
            try Overlay.reset(overlay)
            sizes.append(try DiskFile(path: overlay).size())
        }
        #expect(sizes.allSatisfy { $0 <= 4 * (64 << 10) }, "overlay sizes after reset: \(sizes)")
    }
}
