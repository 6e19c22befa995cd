import Foundation
import Testing
@testable import VirtualDisk

/// Backing chains, zero clusters, subclusters and internal snapshots, made by qemu-img and
/// qemu-io and read back against `qemu-img convert`.
@Suite struct LayeringReadTests {
    func expectSameAsOracle(_ image: String, format: String = "qcow2", snapshot: String? = nil, scratch: Scratch) throws {
        var opened = try DiskOpener.open(image, format: DiskFormat(qemuName: format), policy: .sameDirectory(as: image))
        if let snapshot {
            opened = try #require(opened as? QCOW2Image).opening(snapshot: snapshot)
        }
        let expected = try Oracle.rawBytes(image, format: format, snapshot: snapshot, scratch: scratch.path)
        let actual = try opened.readAll()
        #expect(actual.count == expected.count)
        #expect(actual == expected, "first difference at byte \(zip(actual, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
    }

    @Test(arguments: ["qcow2", "raw"])
    func overlayWithWritesAndZeroClustersOverABase(baseFormat: String) throws {
        let scratch = try Scratch()
        let base = scratch.file("base.\(baseFormat)")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", baseFormat, try scratch.patternDisk(), base)
        let overlay = scratch.file("overlay.qcow2")
        // The overlay is larger than its base: the tail reads as zeros.
        try Oracle.qemuImg("create", "-f", "qcow2", "-b", "base.\(baseFormat)", "-F", baseFormat, overlay, "12M")
        try Oracle.qemuIO(overlay, format: "qcow2", "write -P 0xab 512k 100k", "write -z 3M 192k", "write -P 0x11 10M 4k", "discard 0 64k")
        try expectSameAsOracle(overlay, scratch: scratch)
        let opened = try DiskOpener.open(overlay, policy: .sameDirectory(as: overlay))
        #expect(opened.chain.count == 2)
        #expect(try opened.extent(at: 3 << 20, maxLength: 1 << 20).kind == .zero)
    }

    @Test func extendedL2OverlayWithSubclusterWrites() throws {
        let scratch = try Scratch()
        let base = scratch.file("base.qcow2")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", try scratch.patternDisk(), base)
        let overlay = scratch.file("overlay.qcow2")
        try Oracle.qemuImg("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", "-b", "base.qcow2", "-F", "qcow2", overlay)
        try Oracle.qemuIO(overlay, format: "qcow2", "write -P 0xcd 4k 3k", "write -z 70k 4k", "write -P 0xee 3M 2k", "write -z 6M 2k")
        try expectSameAsOracle(overlay, scratch: scratch)
    }

    @Test func threeLevelChain() throws {
        let scratch = try Scratch()
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", try scratch.patternDisk(), scratch.file("a.qcow2"))
        try Oracle.qemuImg("create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", scratch.file("b.qcow2"))
        try Oracle.qemuIO(scratch.file("b.qcow2"), format: "qcow2", "write -P 0x22 1M 1M")
        try Oracle.qemuImg("create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", scratch.file("c.qcow2"))
        try Oracle.qemuIO(scratch.file("c.qcow2"), format: "qcow2", "write -P 0x33 1536k 64k", "write -z 0 8k")
        try expectSameAsOracle(scratch.file("c.qcow2"), scratch: scratch)
    }

    @Test func internalSnapshotsReadAsTheyWereTaken() throws {
        let scratch = try Scratch()
        let image = scratch.file("disk.qcow2")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", try scratch.patternDisk(), image)
        try Oracle.qemuImg("snapshot", "-c", "first", image)
        try Oracle.qemuIO(image, format: "qcow2", "write -P 0x44 0 256k", "write -z 3M 1M")
        try Oracle.qemuImg("snapshot", "-c", "second", image)
        try Oracle.qemuIO(image, format: "qcow2", "write -P 0x55 2M 64k")

        let opened = try #require(try DiskOpener.open(image, policy: .standalone) as? QCOW2Image)
        let snapshots = try opened.snapshots()
        #expect(snapshots.map(\.name) == ["first", "second"])
        #expect(snapshots.allSatisfy { $0.virtualSize == opened.virtualSize })
        try expectSameAsOracle(image, scratch: scratch)
        try expectSameAsOracle(image, snapshot: "first", scratch: scratch)
        try expectSameAsOracle(image, snapshot: "second", scratch: scratch)
        #expect(throws: VirtualDiskError.self) { _ = try opened.opening(snapshot: "third") }
    }
}
