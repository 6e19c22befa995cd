import Foundation
import Testing
@testable import VirtualDisk

/// Snapshots, resize, commit and rebase change images in place; `qemu-img check` must find
/// every refcount right afterwards, and the guest must see exactly what it should.
@Suite struct EditingTests {
    static let layouts = ["cluster_size=65536", "cluster_size=512", "cluster_size=65536,refcount_bits=2", "cluster_size=65536,refcount_bits=64", "cluster_size=65536,extended_l2=on", "compat=0.10,cluster_size=4096"]

    func qcow2(_ scratch: Scratch, _ options: String = "cluster_size=65536", name: String = "disk.qcow2", seed: UInt64 = 1) throws -> String {
        let path = scratch.file(name)
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", "-o", options, try scratch.patternDisk("src-\(name).raw", seed: seed), path)
        return path
    }

    func check(_ path: String) throws {
        // Exit status 0: no corruption and no leaks.
        try Oracle.qemuImg("check", "-f", "qcow2", path)
    }

    /// Restore points of a LUKS-encrypted disk (the personal desktop's, with a TPM): the
    /// snapshot tables are in clear, so Hearth edits them without the key; QEMU, with the key,
    /// reads the data back as it was, and finds every refcount right.
    @Test func restorePointsWorkOnLUKSEncryptedImagesWithoutTheKey() throws {
        let scratch = try Scratch()
        let disk = scratch.file("encrypted.qcow2")
        // A test passphrase: qemu-img and qemu-io take it on their command line here.
        let secret = ["--object", "secret,id=k,data=a-test-passphrase"]
        let opened = ["--image-opts", "driver=qcow2,file.filename=\(disk),encrypt.key-secret=k"]
        try Oracle.run("qemu-img", ["create"] + secret + ["-q", "-f", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10", disk, "16M"])
        func io(_ command: String) throws -> String { try Oracle.run("qemu-io", secret + ["-c", command] + opened) }
        _ = try io("write -P 0xaa 0 1M")

        try DiskSnapshots.create(disk, name: "before")
        _ = try io("write -P 0xbb 0 1M")
        #expect(try DiskSnapshots.list(disk).map(\.name) == ["before"])
        try DiskSnapshots.revert(disk, to: "before")
        let read = try io("read -P 0xaa 0 1M")
        #expect(!read.contains("Pattern verification failed"), "\(read)")
        try DiskSnapshots.delete(disk, "before")
        #expect(try DiskSnapshots.list(disk).isEmpty)
        // Exit status 0: no corruption, no leaks (the LUKS header's clusters kept).
        try Oracle.run("qemu-img", ["check"] + secret + opened)
        // Its data stays QEMU's to read, with the key.
        #expect { _ = try DiskOpener.open(disk, policy: .sameDirectory(as: disk)) } throws: { "\($0)".contains("LUKS") }
    }

    @Test(arguments: layouts)
    func snapshotsMadeByHearthAreWhatQEMUExpects(options: String) throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch, options)
        let original = try Oracle.rawBytes(disk, format: "qcow2", scratch: scratch.path)

        try DiskSnapshots.create(disk, name: "before-update")
        try check(disk)
        #expect(try Oracle.qemuImg("snapshot", "-l", disk).contains("before-update"))

        // QEMU writes over shared clusters: they must be copied, not overwritten.
        try Oracle.qemuIO(disk, format: "qcow2", "write -P 0x99 0 1M", "write -z 3M 512k", "write -P 0x98 8M 64k")
        try check(disk)
        #expect(try Oracle.rawBytes(disk, format: "qcow2", snapshot: "before-update", scratch: scratch.path) == original)
        let changed = try Oracle.rawBytes(disk, format: "qcow2", scratch: scratch.path)
        #expect(changed != original)

        try DiskSnapshots.create(disk, name: "after-update")
        try DiskSnapshots.revert(disk, to: "before-update")
        try check(disk)
        #expect(try Oracle.rawBytes(disk, format: "qcow2", scratch: scratch.path) == original)
        // After the revert, writes must again leave the snapshots alone.
        try Oracle.qemuIO(disk, format: "qcow2", "write -P 0x42 2M 128k")
        try check(disk)
        #expect(try Oracle.rawBytes(disk, format: "qcow2", snapshot: "after-update", scratch: scratch.path) == changed)

        try DiskSnapshots.delete(disk, "before-update")
        try check(disk)
        try DiskSnapshots.delete(disk, "after-update")
        try check(disk)
        #expect(try DiskSnapshots.list(disk).isEmpty)
    }

    @Test func oneBitRefcountsCannotHoldASnapshotAndTheImageIsLeftAlone() throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch, "refcount_bits=1")
        let before = try Data(contentsOf: URL(fileURLWithPath: disk))
        #expect(throws: VirtualDiskError.self) { try DiskSnapshots.create(disk, name: "nope") }
        #expect(try Data(contentsOf: URL(fileURLWithPath: disk)) == before)
    }

    @Test func aSnapshotQEMUTookIsDeletedCleanly() throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch)
        try Oracle.qemuImg("snapshot", "-c", "by-qemu", disk)
        try Oracle.qemuIO(disk, format: "qcow2", "write -P 0x11 0 2M")
        #expect(try DiskSnapshots.list(disk).map(\.name) == ["by-qemu"])
        try DiskSnapshots.delete(disk, "by-qemu")
        try check(disk)
        #expect(throws: VirtualDiskError.self) { try DiskSnapshots.delete(disk, "by-qemu") }
        try DiskSnapshots.create(disk, name: "x")
        #expect(throws: VirtualDiskError.self) { try DiskSnapshots.create(disk, name: "x") }
    }

    @Test(arguments: ["cluster_size=65536", "cluster_size=512"])
    func growingAQcow2KeepsItsDataAndItsRefcounts(options: String) throws {
        let scratch = try Scratch()
        let disk = try qcow2(scratch, options)
        let original = try Oracle.rawBytes(disk, format: "qcow2", scratch: scratch.path)
        // 512-byte clusters map 32 KiB per L2 table: the L1 table must move to grow to 1 GiB.
        let result = try DiskResizer.extend(disk, to: 1 << 30, format: .qcow2)
        #expect(result.newSize == 1 << 30)
        try check(disk)
        #expect(try Oracle.virtualSize(disk, format: "qcow2") == 1 << 30)
        let opened = try DiskOpener.open(disk, format: .qcow2, policy: .standalone)
        #expect(Data(try opened.read(at: 0, count: original.count)) == original)
        #expect(try opened.read(at: (1 << 30) - 4096, count: 4096).allSatisfy { $0 == 0 })
        try Oracle.qemuIO(disk, format: "qcow2", "write -P 0x31 1000M 1M")
        try check(disk)
        #expect(throws: VirtualDiskError.self) { _ = try DiskResizer.extend(disk, to: 1 << 20, format: .qcow2) }
    }

    @Test(arguments: ["raw", "qcow2"])
    func commitWritesTheOverlayIntoItsBase(baseFormat: String) throws {
        let scratch = try Scratch()
        let base = scratch.file("base.\(baseFormat)")
        try Oracle.qemuImg("convert", "-f", "raw", "-O", baseFormat, try scratch.patternDisk(), base)
        if baseFormat == "qcow2" {
            try Oracle.qemuImg("snapshot", "-c", "kept", base)
        }
        let overlay = scratch.file("overlay.qcow2")
        try Overlay.create(at: overlay, base: base, baseFormat: DiskFormat(qemuName: baseFormat)!)
        try Oracle.qemuIO(overlay, format: "qcow2", "write -P 0x61 100k 300k", "write -z 3M 1M", "write -P 0x62 9M 1k")
        let expected = try Oracle.rawBytes(overlay, format: "qcow2", scratch: scratch.path)

        try DiskLayers.commit(overlay: overlay, policy: .sameDirectory(as: overlay))
        if baseFormat == "qcow2" { try check(base) }
        try check(overlay)
        #expect(try Oracle.rawBytes(base, format: baseFormat, scratch: scratch.path) == expected)
        #expect(try Oracle.rawBytes(overlay, format: "qcow2", scratch: scratch.path) == expected)
        #expect(try DiskFile(path: overlay).size() < 1 << 20, "the overlay is emptied")
    }

    @Test func rebaseKeepsWhatTheGuestSees() throws {
        let scratch = try Scratch()
        let oldBase = try qcow2(scratch, name: "old.qcow2", seed: 1)
        let newBase = try qcow2(scratch, name: "new.qcow2", seed: 2)
        let overlay = scratch.file("top.qcow2")
        try Overlay.create(at: overlay, base: oldBase, baseFormat: .qcow2)
        try Oracle.qemuIO(overlay, format: "qcow2", "write -P 0x71 1M 64k")
        let before = try Oracle.rawBytes(overlay, format: "qcow2", scratch: scratch.path)

        try DiskLayers.rebase(overlay: overlay, onto: newBase, format: .qcow2, policy: .sameDirectory(as: overlay))
        try check(overlay)
        let info = try Oracle.qemuImg("info", "--output=json", overlay)
        #expect(info.contains("\"backing-filename\": \"new.qcow2\""))
        #expect(try Oracle.rawBytes(overlay, format: "qcow2", scratch: scratch.path) == before)

        try DiskLayers.rebase(overlay: overlay, onto: nil, format: nil, policy: .sameDirectory(as: overlay))
        try check(overlay)
        #expect(!(try Oracle.qemuImg("info", "--output=json", overlay)).contains("backing-filename"))
        #expect(try Oracle.rawBytes(overlay, format: "qcow2", scratch: scratch.path) == before)
    }
}
