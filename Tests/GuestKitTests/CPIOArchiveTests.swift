import Foundation
import Testing
@testable import GuestKit

/// The initramfs writer, read back by Debian's `cpio`: what the kernel unpacks is what an
/// independent reader sees.
@Suite struct CPIOArchiveTests {
    func listing(of archive: Data) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-\(UUID().uuidString).cpio")
        try archive.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "cpio -itv --quiet < '\(file.path)'"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return String(decoding: output, as: UTF8.self)
    }

    @Test func cpioReadsEveryKindOfEntryWithRootOwnership() throws {
        var archive = CPIOArchive()
        archive.addDirectory("bin")
        archive.addFile("bin/busybox", contents: Data(repeating: 0x7f, count: 1001), mode: 0o755)
        archive.addSymlink("bin/sh", target: "busybox")
        archive.addCharacterDevice("dev/console", major: 5, minor: 1)
        archive.addFile("init", contents: Data("#!/bin/sh\n".utf8), mode: 0o755)
        let data = archive.finish()
        #expect(data.count % 4 == 0)

        let lines = try listing(of: data).split(separator: "\n").map(String.init)
        #expect(lines.count == 5)
        #expect(lines.contains { $0.hasPrefix("drwxr-xr-x") && $0.hasSuffix(" bin") })
        #expect(lines.contains { $0.hasPrefix("-rwxr-xr-x") && $0.contains(" 1001 ") && $0.hasSuffix(" bin/busybox") })
        #expect(lines.contains { $0.hasPrefix("lrwxrwxrwx") && $0.hasSuffix("bin/sh -> busybox") })
        #expect(lines.contains { $0.hasPrefix("crw-------") && $0.contains("5,") && $0.hasSuffix(" dev/console") })
        #expect(lines.allSatisfy { $0.contains(" root ") })
    }

    @Test func theSameInputsGiveTheSameBytes() {
        func build() -> Data {
            var archive = CPIOArchive()
            archive.addDirectory("lib")
            archive.addFile("lib/a.ko", contents: Data([1, 2, 3]))
            return archive.finish()
        }
        #expect(build() == build())
    }
}
