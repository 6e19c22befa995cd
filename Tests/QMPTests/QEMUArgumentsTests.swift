import Foundation
import Testing
@testable import QMP

/// The argument builder against golden files: what a VM is started with is reviewed as text.
/// Set HEARTH_UPDATE_GOLDEN=1 to rewrite the files after an intended change, then read the diff.
@Suite struct QEMUArgumentsTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static let kernelBoot = QEMUConfiguration(
        name: "work-vm",
        accelerator: .tcg,
        cpus: 2,
        memoryMiB: 512,
        kernelBoot: .init(kernel: "/kits/k/vmlinuz", initrd: "/kits/k/initramfs.cpio", commandLine: "console=ttyS0 hearth.root=hearth-root"),
        disks: [
            .init(id: "root", path: "/kits/k/root.img", format: .raw, readOnly: true, serial: "hearth-root"),
            .init(id: "user", path: "/var/lib/hearth/vms/work,1/user.qcow2", format: .qcow2, serial: "user"),
        ],
        firmwareFiles: [.init(name: "opt/org.hearth/probe", path: "/run/hearth/work/probe.sh")],
        qmpSocket: "/run/hearth/work/qmp.sock",
        consoleSocket: "/run/hearth/work/console.sock",
        consoleLog: "/run/hearth/work/console.log"
    )

    static let firmwareBootWithDisplay = QEMUConfiguration(
        name: "personal",
        machine: .pc,
        accelerator: .kvm,
        memoryMiB: 4096,
        disks: [.init(id: "system", path: "/vms/personal/system.qcow2", format: .qcow2)],
        qmpSocket: "/run/p/qmp.sock",
        consoleSocket: "/run/p/console.sock",
        consoleLog: "/run/p/console.log",
        vncSocket: "/run/p/vnc.sock",
        network: .userNAT,
        sandbox: false
    )

    @Test(arguments: [("kernel-boot", kernelBoot), ("firmware-boot-display", firmwareBootWithDisplay)])
    func matchesGoldenFile(name: String, configuration: QEMUConfiguration) throws {
        let arguments = try QEMUArguments.build(for: configuration)
        let text = arguments.joined(separator: "\n") + "\n"
        let golden = Self.goldenDirectory.appendingPathComponent("\(name).args")
        if ProcessInfo.processInfo.environment["HEARTH_UPDATE_GOLDEN"] == "1" {
            try text.write(to: golden, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(text == expected, "arguments differ from \(golden.path); if intended, rerun with HEARTH_UPDATE_GOLDEN=1")
    }

    @Test func sandboxIsOnByDefaultAndDeniesSpawningAndPrivileges() throws {
        let arguments = try QEMUArguments.build(for: Self.kernelBoot)
        let sandbox = try #require(arguments.firstIndex(of: "-sandbox"))
        #expect(arguments[sandbox + 1].hasPrefix("on,"))
        #expect(arguments[sandbox + 1].contains("spawn=deny"))
        #expect(arguments[sandbox + 1].contains("elevateprivileges=deny"))
        #expect(try !QEMUArguments.build(for: Self.firmwareBootWithDisplay).contains("-sandbox"))
    }

    @Test func commasInPathsAreEscapedSoTheyCannotInjectOptions() throws {
        var configuration = Self.kernelBoot
        configuration.disks = [.init(id: "evil", path: "/tmp/a,driver=host_device,filename=/dev/sda", format: .raw)]
        let arguments = try QEMUArguments.build(for: configuration)
        #expect(arguments.contains("driver=file,node-name=evil-file,filename=/tmp/a,,driver=host_device,,filename=/dev/sda,read-only=off"))
    }

    /// An encrypted disk is not on the command line at all (its key comes over QMP): QEMU
    /// starts paused, with an empty PCIe port for the disk to be plugged into.
    @Test func anEncryptedDiskWaitsForQMPAndItsKeyIsNeverOnTheCommandLine() throws {
        var configuration = Self.kernelBoot
        configuration.disks.append(.init(id: "local", path: "/var/lib/hearth/vms/work/local.qcow2", format: .qcow2, serial: "local",
                                         encryption: .init(createSize: 32 << 20)))
        let arguments = try QEMUArguments.build(for: configuration)
        #expect(arguments.contains("-S"))
        #expect(arguments.contains("pcie-root-port,id=local-port,chassis=1"))
        #expect(!arguments.contains { $0.contains("local.qcow2") || $0.contains("secret") || $0.contains("key") })
        #expect(arguments.contains { $0.contains("user.qcow2") }, "plain disks stay on the command line")
        #expect(try !QEMUArguments.build(for: Self.kernelBoot).contains("-S"), "without encrypted disks QEMU starts running")

        // Only writable qcow2 disks are encrypted.
        for disk in [QEMUConfiguration.Disk(id: "raw", path: "/d/raw.img", format: .raw, encryption: .init()),
                     QEMUConfiguration.Disk(id: "ro", path: "/d/ro.qcow2", format: .qcow2, readOnly: true, encryption: .init())] {
            var wrong = Self.kernelBoot
            wrong.disks = [disk]
            #expect { _ = try QEMUArguments.build(for: wrong) } throws: { "\($0)".contains("only writable qcow2 disks are encrypted") }
        }
    }

    @Test func kvmUsesTheHostCPUAndTCGTheMaximumModel() throws {
        #expect(try QEMUArguments.build(for: Self.firmwareBootWithDisplay).contains("host"))
        #expect(try QEMUArguments.build(for: Self.kernelBoot).contains("max"))
    }

    @Test func rejectsConfigurationsQEMUWouldMisread() {
        func failure(_ change: (inout QEMUConfiguration) -> Void) -> String? {
            var configuration = Self.kernelBoot
            change(&configuration)
            do {
                _ = try QEMUArguments.build(for: configuration)
                return nil
            } catch {
                if case .invalidConfiguration(let field, _) = error { return field }
                return "\(error)"
            }
        }
        #expect(failure { $0.name = "work vm" } == "name")
        #expect(failure { $0.name = "" } == "name")
        #expect(failure { $0.cpus = 0 } == "cpus")
        #expect(failure { $0.memoryMiB = 8 } == "memoryMiB")
        #expect(failure { $0.disks.append($0.disks[0]) } == "disks.id")
        #expect(failure { $0.disks[0].id = "1root" } == "disks.id")
        #expect(failure { $0.disks[0].serial = "a-serial-longer-than-twenty" } == "disks.serial")
        #expect(failure { $0.disks[0].path = "relative/root.img" } == "disks.path")
        #expect(failure { $0.firmwareFiles[0].name = "probe" } == "firmwareFiles.name")
        #expect(failure { $0.qmpSocket = "/" + String(repeating: "d", count: 120) + "/qmp.sock" } == "socket path")
        #expect(failure { $0.formatVersion = 99 } == "formatVersion")
        #expect(failure { _ in } == nil)
    }

    @Test func configurationRoundTripsThroughJSON() throws {
        let data = try JSONEncoder().encode(Self.kernelBoot)
        #expect(try JSONDecoder().decode(QEMUConfiguration.self, from: data) == Self.kernelBoot)
    }
}
