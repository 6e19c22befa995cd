import Foundation
import Testing
@testable import VirtualDisk

@Suite struct CheckCompactTests {
    func qcow2(_ scratch: Scratch, _ options: String = "cluster_size=65536") throws -> String {
        let path = scratch.file("disk.qcow2")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", "-o", options, try scratch.patternDisk(), path)
        return path
    }

    @Test func aCleanImageIsClean() throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch)
        try Oracle.qemuImg("snapshot", "-c", "s", disk)
        try Oracle.qemuIO(disk, format: "qcow2", "write -P 3 0 1M")
        let report = try DiskChecker.check(disk)
        #expect(report.isClean, "\(report)")
    }

    @Test func aLeakIsFoundAndReclaimed() throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch)
        // A cluster counted but used by nothing, as a crash between steps would leave.
        _ = try QCOW2Editor(path: disk).allocate(clusters: 3)
        #expect(throws: OracleError.self) { try Oracle.qemuImg("check", disk) }
        let report = try DiskChecker.check(disk)
        #expect(report.errors.isEmpty)
        #expect(report.leakedClusters == 3)
        let repaired = try DiskChecker.check(disk, repair: true)
        #expect(repaired.repaired)
        try Oracle.qemuImg("check", disk)
        #expect(try DiskChecker.check(disk).isClean)
    }

    @Test func aRefcountTooLowIsAnErrorAndRepairKeepsTheData() throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch)
        let before = try Oracle.rawBytes(disk, format: "qcow2", scratch: scratch.path)
        let image = try #require(try DiskOpener.open(disk, policy: .standalone) as? QCOW2Image)
        guard case .data(let host) = try image.mapping(at: 0).0 else {
            Issue.record("the first cluster should hold data")
            return
        }
        try QCOW2Editor(path: disk).adjustRefcounts([host / 65536], by: -1)
        let report = try DiskChecker.check(disk)
        #expect(report.errors.count == 1)
        #expect(report.errors.first?.contains("could overwrite") == true)
        _ = try DiskChecker.check(disk, repair: true)
        try Oracle.qemuImg("check", disk)
        #expect(try Oracle.rawBytes(disk, format: "qcow2", scratch: scratch.path) == before)
    }

    @Test func compactingDropsZerosAndKeepsTheContent() throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch, "cluster_size=65536,preallocation=full")
        let before = try Oracle.rawBytes(disk, format: "qcow2", scratch: scratch.path)
        let result = try DiskCompactor.compact(disk)
        #expect(result.newFileSize < result.oldFileSize)
        #expect(result.newFileSize < 5 << 20)
        try Oracle.qemuImg("check", disk)
        #expect(try Oracle.rawBytes(disk, format: "qcow2", scratch: scratch.path) == before)
    }

    @Test func compactingAnOverlayKeepsItsZerosOverTheBase() throws {
        let scratch = try Scratch()
        let base = try qcow2(scratch)
        let overlay = scratch.file("top.qcow2")
        try Overlay.create(at: overlay, base: base, baseFormat: .qcow2)
        // Zeros written as data over the base's data, and a zero cluster: both must survive.
        try Oracle.qemuIO(overlay, format: "qcow2", "write -P 0 0 128k", "write -z 3M 64k", "write -P 7 4M 64k")
        let before = try Oracle.rawBytes(overlay, format: "qcow2", scratch: scratch.path)
        _ = try DiskCompactor.compact(overlay)
        try Oracle.qemuImg("check", overlay)
        #expect(try Oracle.rawBytes(overlay, format: "qcow2", scratch: scratch.path) == before)
        #expect(try Oracle.qemuImg("info", overlay).contains("backing file: disk.qcow2"))
    }

    @Test func anImageWithSnapshotsIsNotCompacted() throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch)
        try Oracle.qemuImg("snapshot", "-c", "keep", disk)
        #expect(throws: VirtualDiskError.self) { _ = try DiskCompactor.compact(disk) }
    }
}

@Suite struct DirtyImageTests {
    @Test func aDirtyImageIsNotEditedUntilRepaired() throws {
        let scratch = try Scratch()
        let disk = scratch.file("dirty.qcow2")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", "-o", "lazy_refcounts=on", try scratch.patternDisk(), disk)
        // As QEMU leaves it when killed with lazy refcounts: the dirty bit set.
        let file = try DiskFile(path: disk, writable: true)
        var features = try file.read(count: 8, at: 72)
        features[7] |= 1
        try file.write(features, at: 72)

        #expect(throws: VirtualDiskError.self) { try DiskSnapshots.create(disk, name: "x") }
        #expect(try DiskChecker.check(disk).errors.contains { $0.contains("dirty") })
        #expect(try DiskChecker.check(disk, repair: true).repaired)
        try Oracle.qemuImg("check", disk)
        #expect(try DiskChecker.check(disk).isClean)
        try DiskSnapshots.create(disk, name: "x")
        try Oracle.qemuImg("check", disk)
    }
}
