import Foundation
import GuestKit
@testable import HearthCLI
import QMP

/// A VM booted from the guest test kit without an Engine, as the boot tests start it:
/// the kit's kernel and initramfs, its root disk attached read-only (the kit is never written),
/// extra disks by name, and a probe script handed over fw_cfg.
struct KitVM: Sendable {
    struct ExtraDisk: Sendable {
        public var name: String
        public var path: String
        public var format: QEMUConfiguration.Disk.Format

        public init(name: String, path: String, format: QEMUConfiguration.Disk.Format = .raw) {
            self.name = name
            self.path = path
            self.format = format
        }
    }

    var kit: GuestKit
    /// Sockets, logs and the probe file live here; keep the path short (socket paths are
    /// limited to 107 bytes).
    var runDirectory: String
    var name: String
    var accelerator: Accelerator
    var memoryMiB: Int
    var disks: [ExtraDisk]
    var probe: String?

    init(kit: GuestKit, runDirectory: String, name: String, accelerator: Accelerator, memoryMiB: Int = 256, disks: [ExtraDisk] = [], probe: String? = nil) {
        self.kit = kit
        self.runDirectory = runDirectory
        self.name = name
        self.accelerator = accelerator
        self.memoryMiB = memoryMiB
        self.disks = disks
        self.probe = probe
    }

    var consoleLog: String { "\(runDirectory)/console.log" }
    var qemuLog: String { "\(runDirectory)/qemu.log" }

    /// Writes the probe file and returns the configuration QEMU is started with.
    func prepare() throws -> QEMUConfiguration {
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        var firmwareFiles: [QEMUConfiguration.FirmwareFile] = []
        if let probe {
            let probePath = "\(runDirectory)/probe.sh"
            try Data(probe.utf8).write(to: URL(fileURLWithPath: probePath))
            firmwareFiles.append(.init(name: GuestKit.probeFirmwareName, path: probePath))
        }
        let root = QEMUConfiguration.Disk(id: "root", path: kit.rootDisk, format: .raw, readOnly: true, serial: GuestKit.rootDiskSerial)
        let extra = disks.enumerated().map { index, disk in
            QEMUConfiguration.Disk(id: "disk\(index)", path: disk.path, format: disk.format, serial: disk.name)
        }
        return QEMUConfiguration(
            name: name,
            accelerator: accelerator,
            memoryMiB: memoryMiB,
            kernelBoot: .init(kernel: kit.kernel, initrd: kit.initramfs, commandLine: kit.kernelCommandLine),
            disks: [root] + extra,
            firmwareFiles: firmwareFiles,
            qmpSocket: "\(runDirectory)/qmp.sock",
            consoleSocket: "\(runDirectory)/console.sock",
            consoleLog: consoleLog
        )
    }

    /// Waits for the probe's report on the console. On a timeout or an early exit QEMU is killed.
    func waitForProbe(in process: QEMUProcess, timeout: Duration) async throws -> ProbeReport {
        try await process.waitForConsole(containing: "HEARTH-PROBE-END", timeout: timeout)
        guard let report = ProbeReport.parse(console: ConsoleLog(path: consoleLog).contents()) else {
            await process.kill()
            throw QEMUError.consoleTimeout(expected: "a whole probe report", seconds: Narrator.seconds(timeout), consoleLog: consoleLog)
        }
        return report
    }
}
