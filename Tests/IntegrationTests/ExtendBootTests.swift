import Foundation
import GuestKit
import HearthCLI
import QMP
import Testing
import VirtualDisk

extension VMSuites {
    /// `hearth disk extend` on a full disk, then a real guest: the kernel must see the larger
    /// partition, and the filesystem on it must still mount.
    @Suite struct ExtendBootTests {
        @Test func aGuestSeesTheGrownPartition() async throws {
            let run = try BootTests.runDirectory()
            defer { try? FileManager.default.removeItem(atPath: run) }
            // A 64 MiB disk whose GPT's last partition fills it, holding ext4.
            let raw = "\(run)/user.raw"
            try DiskFile.create(path: raw).truncate(to: 64 << 20)
            try Self.tool("/usr/sbin/sfdisk", ["--quiet", raw], input: "label: gpt\nstart=1MiB, size=8MiB\nstart=10MiB\n")
            try Self.tool("/usr/sbin/mke2fs", ["-q", "-F", "-t", "ext4", "-L", "user", "-E", "offset=\(10 << 20)", raw, "53M"])
            let disk = "\(run)/user.qcow2"
            let image = try DiskOpener.open(raw, format: .raw, policy: .standalone)
            _ = try DiskConverter.convert(image, to: disk, options: .init(format: .qcow2))

            let result = try DiskResizer.extend(disk, to: 192 << 20, format: .qcow2)
            let expectedSectors = (UInt64(192 << 20) / 512 - 34) - UInt64(10 << 20) / 512 + 1
            #expect(result.partitionLength == expectedSectors * 512)

            let probe = """
            set -e
            disk=$(hearth-disk user)
            name=${disk#/dev/}
            echo "sectors=$(cat /sys/block/$name/${name}2/size)"
            mkdir -p /mnt/user
            mount -t ext4 ${disk}2 /mnt/user
            echo "mounted=yes"
            umount /mnt/user
            """
            let vm = KitVM(kit: try BootTests.kit(), runDirectory: run, name: "it-extend", accelerator: AcceleratorProbe.probe().accelerator,
                           disks: [.init(name: "user", path: disk, format: .qcow2)], probe: probe)
            let process = try QEMUProcess.launch(try vm.prepare(), stderrLog: vm.qemuLog)
            let qmp = try await process.connectQMP()
            do {
                try await process.waitForConsole(containing: GuestKit.bootMarker, timeout: BootTests.bootTimeout)
                let report = try await vm.waitForProbe(in: process, timeout: .seconds(60))
                #expect(report.status == 0, "probe output: \(report.lines)")
                #expect(report.lines.contains("sectors=\(expectedSectors)"), "probe output: \(report.lines)")
                #expect(report.lines.contains("mounted=yes"))
            } catch {
                await process.kill()
                throw error
            }
            _ = await process.shutdown(qmp: qmp, grace: .seconds(30))
            await qmp.close()
        }

        @discardableResult
        static func tool(_ path: String, _ arguments: [String], input: String? = nil) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            let output = Pipe()
            let stdin = Pipe()
            process.standardOutput = output
            process.standardInput = stdin
            process.standardError = FileHandle.nullDevice
            try process.run()
            if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
            try stdin.fileHandleForWriting.close()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw QEMUError.launchFailed(executable: path, reason: "exit \(process.terminationStatus)") }
            return String(decoding: data, as: UTF8.self)
        }
    }
}
