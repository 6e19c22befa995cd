import Foundation
import HearthCore
import QMP

// The Engine's side of the security zone (docs/SECURITY.md): what it measures, and what a wipe
// reports.
extension Engine {
    /// What the Engine hands its guests, in the order measured: itself, its configuration,
    /// QEMU, the firmware QEMU loads, and the guest kernel and initramfs.
    public static func measuredComponents(boot: GuestBoot, accelerator: Accelerator, root: String) throws -> [(component: String, path: String)] {
        let configuration = "\(root)/engine-configuration.json"
        let settings = ["accelerator": accelerator.rawValue, "kernelCommandLine": boot.commandLine, "bootMarker": boot.bootMarker]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try DurableFile.write(try encoder.encode(settings), to: configuration, mode: 0o644)
        var components: [(component: String, path: String)] = [
            ("engine", (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]),
            ("configuration", configuration),
        ]
        if let qemu = QEMUProcess.resolve(QEMUProcess.defaultExecutable) { components.append(("qemu", qemu)) }
        for firmware in ["/usr/share/qemu/bios-256k.bin", "/usr/share/qemu/linuxboot_dma.bin"] where FileManager.default.fileExists(atPath: firmware) {
            components.append(("firmware", firmware))
        }
        components.append(("kernel", boot.kernel))
        if let initrd = boot.initrd { components.append(("initramfs", initrd)) }
        return components
    }

    /// What a wipe removed from one VM.
    public struct WipedVM: Codable, Sendable, Equatable {
        public var name: String
        public var files: [String]
        public var bytes: UInt64
    }

    /// What a wipe did.
    public struct Wipe: Codable, Sendable, Equatable {
        public var vms: [WipedVM]
        /// How the data was made unreadable (crypto-erase, or deletion alone without a TPM).
        public var method: String
        /// The TPM's quote of the wipe, when asked for one (docs/SECURITY.md).
        public var evidence: WipeEvidence?
    }

    /// Whether a qcow2 file is encrypted (its header's crypt_method, at offset 32, is not 0).
    static func isEncrypted(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 36), head.count == 36 else { return false }
        return head[32..<36].contains { $0 != 0 }
    }
}
