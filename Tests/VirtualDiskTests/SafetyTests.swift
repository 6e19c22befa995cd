import Foundation
import Testing
@testable import VirtualDisk

/// A hostile image gets a clear error naming the field: never a crash, a hang, a file it was not
/// allowed to open, or unbounded memory.
@Suite struct SafetyTests {
    func qcow2(_ scratch: Scratch, name: String = "disk.qcow2") throws -> String {
        let path = scratch.file(name)
        try Oracle.qemuImg("convert", "-f", "raw", "-O", "qcow2", try scratch.patternDisk(), path)
        return path
    }

    func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let file = try DiskFile(path: path, writable: true)
        try file.write(bytes, at: offset)
    }

    func corruptField(_ error: any Error) -> String? {
        if case .corrupt(_, let field, _, _) = error as? VirtualDiskError { return field }
        return nil
    }

    @Test func aBackingFileOutsideTheAllowedFoldersIsRefused() throws {
        let scratch = try Scratch()
        let elsewhere = try Scratch()
        let base = try qcow2(elsewhere, name: "base.qcow2")
        let overlay = scratch.file("overlay.qcow2")
        try Oracle.qemuImg("create", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay)

        #expect(throws: VirtualDiskError.accessDenied(path: DiskAccessPolicy.canonical(base), referencedBy: overlay, role: "backing file")) {
            _ = try DiskOpener.open(overlay, policy: .sameDirectory(as: overlay))
        }
        #expect(throws: VirtualDiskError.self) { _ = try DiskOpener.open(overlay, policy: .standalone) }
        let allowed = DiskAccessPolicy(allowedDirectories: [scratch.path, elsewhere.path])
        #expect(try DiskOpener.open(overlay, policy: allowed).chain.count == 2)
    }

    @Test func aSymlinkDoesNotLeadOutOfTheAllowedFolder() throws {
        let scratch = try Scratch()
        let elsewhere = try Scratch()
        let base = try qcow2(elsewhere, name: "base.qcow2")
        try FileManager.default.createSymbolicLink(atPath: scratch.file("link.qcow2"), withDestinationPath: base)
        let overlay = scratch.file("overlay.qcow2")
        try Oracle.qemuImg("create", "-f", "qcow2", "-b", "link.qcow2", "-F", "qcow2", overlay)
        #expect(throws: VirtualDiskError.self) { _ = try DiskOpener.open(overlay, policy: .sameDirectory(as: overlay)) }
    }

    @Test func aVMDKExtentNamingASystemFileIsRefused() throws {
        let scratch = try Scratch()
        let descriptor = """
        # Disk DescriptorFile
        version=1
        CID=fffffffe
        parentCID=ffffffff
        createType="monolithicFlat"
        RW 2048 FLAT "/etc/passwd" 0
        """
        try descriptor.write(toFile: scratch.file("evil.vmdk"), atomically: true, encoding: .utf8)
        #expect(throws: VirtualDiskError.accessDenied(path: "/etc/passwd", referencedBy: scratch.file("evil.vmdk"), role: "extent")) {
            _ = try DiskOpener.open(scratch.file("evil.vmdk"), policy: .sameDirectory(as: scratch.file("evil.vmdk")))
        }
    }

    @Test func aBackingChainThatLoopsEnds() throws {
        let scratch = try Scratch()
        let a = scratch.file("a.qcow2")
        try Oracle.qemuImg("create", "-f", "qcow2", a, "1M")
        try Oracle.qemuImg("create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", scratch.file("b.qcow2"))
        // Point a at b: a → b → a → …
        try Oracle.qemuImg("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", a)
        #expect(throws: VirtualDiskError.backingChainTooDeep(path: scratch.file("a.qcow2"), limit: 16)) {
            _ = try DiskOpener.open(a, policy: .sameDirectory(as: a))
        }
    }

    @Test func aNamedFormatIsNeverSecondGuessed() throws {
        let scratch = try Scratch()
        // A raw disk whose guest wrote a qcow2 header into its first sector, naming /etc/shadow.
        let header = try DiskFile(path: try qcow2(scratch, name: "template.qcow2")).read(count: 512, at: 0)
        let raw = scratch.file("guest.raw")
        let file = try DiskFile.create(path: raw)
        try file.truncate(to: 1 << 20)
        try file.write(header, at: 0)
        let opened = try DiskOpener.open(raw, format: .raw, policy: .standalone)
        #expect(opened.format == .raw)
        #expect(try opened.read(at: 0, count: 4) == [0x51, 0x46, 0x49, 0xFB])
        #expect(opened.virtualSize == 1 << 20)
    }

    @Test func impossibleHeaderFieldsAreNamed() throws {
        let scratch = try Scratch()
        let cases: [(UInt64, [UInt8], String)] = [
            (20, UInt32(30).bigEndianBytes, "cluster_bits"),
            (36, UInt32(0xFFFF_FFFF).bigEndianBytes, "l1_size"),
            (36, UInt32(0).bigEndianBytes, "l1_size"),
            (40, UInt64(1 << 40).bigEndianBytes, "l1_table_offset"),
            (40, UInt64(12345).bigEndianBytes, "l1_table_offset"),
            (48, UInt64(1 << 50).bigEndianBytes, "refcount_table_offset"),
            (96, UInt32(7).bigEndianBytes, "refcount_order"),
            (100, UInt32(13).bigEndianBytes, "header_length"),
            (60, UInt32(1 << 30).bigEndianBytes, "nb_snapshots"),
            (8, UInt64(0xFFFF_FFFF_FFFF_FFF0).bigEndianBytes, "backing_file_offset"),
        ]
        for (offset, bytes, field) in cases {
            let path = try qcow2(scratch, name: "bad-\(field)-\(offset).qcow2")
            try patch(path, at: offset, bytes)
            do {
                _ = try DiskOpener.open(path, format: .qcow2, policy: .standalone)
                Issue.record("opened a qcow2 with a bad \(field)")
            } catch {
                #expect(corruptField(error) == field, "\(error)")
                #expect("\(error)".contains("byte \(offset)"))
            }
        }
    }

    /// Found by the fuzzer (Fuzz/corpus/qcow2/backing-offset-overflow.qcow2): a backing file
    /// name's offset near 2^64 plus its size overflowed, and Hearth stopped instead of naming it.
    @Test func aBackingFileOffsetThatWouldOverflowIsNamed() throws {
        let scratch = try Scratch()
        let path = try qcow2(scratch)
        try patch(path, at: 16, UInt32(16).bigEndianBytes)
        try patch(path, at: 8, UInt64(0xFFFF_FFFF_FFFF_FFF8).bigEndianBytes)
        #expect(throws: VirtualDiskError.self) { _ = try DiskOpener.open(path, format: .qcow2, policy: .standalone) }
        do {
            _ = try DiskOpener.open(path, format: .qcow2, policy: .standalone)
        } catch {
            #expect(corruptField(error) == "backing_file_offset", "\(error)")
        }
    }

    @Test func anL2TablePastTheEndOfTheFileIsNamedWhenRead() throws {
        let scratch = try Scratch()
        let path = try qcow2(scratch)
        let image = try #require(try DiskOpener.open(path, policy: .standalone) as? QCOW2Image)
        try patch(path, at: image.header.l1TableOffset, (UInt64(1) << 63 | UInt64(1) << 40).bigEndianBytes)
        let reopened = try DiskOpener.open(path, policy: .standalone)
        #expect(throws: VirtualDiskError.self) { _ = try reopened.read(at: 0, count: 4096) }
        do {
            _ = try reopened.read(at: 0, count: 4096)
        } catch {
            #expect(corruptField(error) == "L1 entry 0")
        }
    }

    @Test func aTruncatedImageIsCorruptNotACrash() throws {
        let scratch = try Scratch()
        for format in ["qcow2", "vpc", "vmdk"] {
            let path = scratch.file("cut.\(format)")
            try Oracle.qemuImg("convert", "-f", "raw", "-O", format, try scratch.patternDisk(), path)
            let size = try DiskFile(path: path).size()
            for cut in [UInt64(0), 100, 600, size / 2, size - 100] {
                let copy = scratch.file("cut-\(cut).\(format)")
                try? FileManager.default.removeItem(atPath: copy)
                try FileManager.default.copyItem(atPath: path, toPath: copy)
                try DiskFile(path: copy, writable: true).truncate(to: cut)
                do {
                    let image = try DiskOpener.open(copy, format: DiskFormat(qemuName: format), policy: .standalone)
                    _ = try image.readAll()
                } catch let error as VirtualDiskError {
                    // Any clear error is right; what matters is that nothing crashed or hung.
                    #expect(!"\(error)".isEmpty)
                }
            }
        }
    }
}
