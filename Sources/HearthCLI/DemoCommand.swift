import ArgumentParser
import Foundation
import GuestKit
import QMP

/// `hearth demo`: Hearth's main job on embedded defaults. For now it builds the guest test
/// kit and boots a VM from it, narrating each step; it grows into the end-to-end story.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run Hearth's main job on embedded defaults: build the guest kit, boot a VM, run a probe in it."
    )

    @Option(help: "Where kits and downloaded packages are kept.")
    var cacheDir: String = GuestKit.defaultCacheDirectory

    @Option(help: "Where the VM's disks, sockets and logs go, kept afterwards (default: a new folder under /tmp, removed after a successful run).")
    var workDir: String?

    @Option(help: "auto (KVM where it really works, else TCG), kvm or tcg.")
    var accel: AcceleratorOption = .auto

    @Option(help: "Seconds to wait for the guest's boot marker.")
    var bootTimeout: Int = 180

    @Flag(help: "Keep the work folder after a successful run.")
    var keepFiles = false

    enum AcceleratorOption: String, ExpressibleByArgument, CaseIterable {
        case auto, kvm, tcg
    }

    func validate() throws {
        guard (10...3600).contains(bootTimeout) else {
            throw ValidationError("--boot-timeout must be 10 to 3600 seconds")
        }
    }

    func run() async throws {
        let runDirectory = try workDir ?? Self.makeRunDirectory()
        // Only a folder the demo made itself is removed afterwards.
        let removeAfterwards = workDir == nil && !keepFiles
        let narrator = Narrator(totalSteps: 7)
        print("Hearth demo: boot a VM from the guest test kit (files in \(runDirectory))")
        do {
            try await run(in: runDirectory, narrator: narrator)
        } catch {
            print("The demo stopped. Logs: \(runDirectory)/qemu.log (QEMU) and \(runDirectory)/console.log (guest console).")
            throw error
        }
        print("Done in \(Narrator.format(narrator.elapsed)).")
        if removeAfterwards {
            try? FileManager.default.removeItem(atPath: runDirectory)
        } else {
            print("Files kept in \(runDirectory).")
        }
    }

    private func run(in runDirectory: String, narrator: Narrator) async throws {
        let kit: GuestKit = try await narrator.step("Preparing the guest test kit from Debian packages") {
            let (kit, provenance) = try GuestKit.prepare(cacheDirectory: cacheDir) { narrator.detail($0) }
            return (kit, "\(provenance == .cached ? "reused" : "built") kit \(kit.release), kernel \(kit.kernelRelease)")
        }

        let accelerator: Accelerator = try await narrator.step("Choosing the accelerator") {
            let choice = AcceleratorProbe.probe()
            switch accel {
            case .auto:
                if let warning = choice.warning {
                    narrator.warn(warning)
                    return (.tcg, "TCG (see the warning above)")
                }
                return (choice.accelerator, "KVM: \(choice.reason)")
            case .kvm:
                return (.kvm, "KVM, as asked (the probe says: \(choice.reason))")
            case .tcg:
                return (.tcg, "TCG, as asked")
            }
        }

        let dataDisk = "\(runDirectory)/data.img"
        let vm = KitVM(
            kit: kit, runDirectory: runDirectory, name: "hearth-demo", accelerator: accelerator,
            disks: [.init(name: "data", path: dataDisk)], probe: Self.probe
        )
        let (process, qmp): (QEMUProcess, QMPClient) = try await narrator.step("Starting QEMU with a 64 MiB data disk") {
            try GuestKit.makeDataDisk(at: dataDisk)
            let process = try QEMUProcess.launch(try vm.prepare(), stderrLog: vm.qemuLog)
            let qmp = try await process.connectQMP()
            let version = qmp.greeting.version.qemu
            return ((process, qmp), "QEMU \(version.major).\(version.minor).\(version.micro) running as pid \(process.pid), QMP connected")
        }

        do {
            try await narrator.step("Booting the guest (waiting for its boot marker)") {
                let elapsed = try await process.waitForConsole(containing: GuestKit.bootMarker, timeout: .seconds(bootTimeout))
                return ((), "the guest printed its boot marker \(Narrator.format(elapsed)) after QEMU started")
            }
            let report = try await narrator.step("Running the probe: write a file on the data disk and read it back") {
                let report = try await vm.waitForProbe(in: process, timeout: .seconds(60))
                guard report.status == 0 else {
                    throw DemoError.probeFailed(status: report.status, output: report.lines)
                }
                return (report, "the guest read back: \(report.lines.first ?? "")")
            }
            try await narrator.step("Shutting down (ACPI power button, then quit, then kill)") {
                let outcome = await process.shutdown(qmp: qmp, grace: .seconds(30))
                await qmp.close()
                return ((), "\(outcome == .guestPoweredOff ? "the guest powered off cleanly" : "stopped: \(outcome.rawValue)")")
            }
            try await narrator.step("Checking on the host what the guest wrote") {
                let written = try GuestKit.readFile("/hello.txt", fromDisk: dataDisk).map { String(decoding: $0, as: UTF8.self) }
                guard let written, written.trimmingCharacters(in: .newlines) == report.lines.first else {
                    throw DemoError.fileMismatch(expected: report.lines.first ?? "", found: written)
                }
                return ((), "/hello.txt on data.img holds the same line")
            }
        } catch {
            _ = await process.shutdown(qmp: qmp, grace: .seconds(5))
            await qmp.close()
            throw error
        }
    }

    /// The guest writes a line that only this boot can produce, syncs, and reads it back.
    static let probe = """
    set -e
    disk=$(hearth-disk data)
        mkdir -p /mnt/data
    mount -t ext4 "$disk" /mnt/data
    echo "written by the guest in boot $(cat /proc/sys/kernel/random/boot_id)" > /mnt/data/hello.txt
    sync
    cat /mnt/data/hello.txt
    umount /mnt/data
    """

    static func makeRunDirectory() throws -> String {
        let path = "/tmp/hearth-demo-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

enum DemoError: Error, CustomStringConvertible {
    case probeFailed(status: Int32, output: [String])
    case fileMismatch(expected: String, found: String?)

    var description: String {
        switch self {
        case .probeFailed(let status, let output):
            "the probe failed in the guest with status \(status): \(output.suffix(3).joined(separator: " | "))"
        case .fileMismatch(let expected, let found):
            "the data disk does not hold what the guest reported writing (expected '\(expected)', found \(found.map { "'\($0)'" } ?? "no file"))"
        }
    }
}
