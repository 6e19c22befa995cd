import ArgumentParser
import Foundation
import VirtualDisk

/// `hearth disk …`: look at, convert and layer virtual disks.
struct DiskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disk",
        abstract: "Inspect, convert and layer virtual disks (raw, qcow2, VHD, VMDK).",
        subcommands: [
            DiskInfoCommand.self, DiskInspectCommand.self, DiskConvertCommand.self, DiskCompareCommand.self, DiskOverlayCommand.self,
            DiskResetCommand.self, DiskSnapshotCommand.self, DiskCommitCommand.self, DiskRebaseCommand.self, DiskExtendCommand.self, DiskCheckCommand.self, DiskCompactCommand.self,
        ]
    )
}

/// How an image is opened: its format if known, and which folders it may reference.
struct DiskInputOptions: ParsableArguments {
    @Option(name: .customLong("from"), help: "The image's format (raw, qcow2, vhd, vmdk); detected when left out.")
    var format: DiskFormat?

    @Option(name: .customLong("allow"), help: "A folder whose files the image may reference as backing files or extents (repeatable; default: the image's own folder).")
    var allowedDirectories: [String] = []

    func open(_ path: String) throws -> any DiskImage {
        let policy = allowedDirectories.isEmpty ? DiskAccessPolicy.sameDirectory(as: path) : DiskAccessPolicy(allowedDirectories: allowedDirectories)
        return try DiskOpener.open(path, format: format, policy: policy)
    }
}

extension DiskFormat: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(qemuName: argument.lowercased())
    }
}

extension ConversionOptions.VHDType: ExpressibleByArgument {}

/// Reads a size such as `512`, `64K`, `10G` (powers of 1024).
struct ByteSize: ExpressibleByArgument {
    var bytes: UInt64

    init?(argument: String) {
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var text = argument.uppercased()
        if text.hasSuffix("IB") { text.removeLast(2) } else if text.hasSuffix("B") { text.removeLast() }
        var multiplier: UInt64 = 1
        if let last = text.last, let unit = units[last] {
            multiplier = unit
            text.removeLast()
        }
        guard let value = UInt64(text), value <= UInt64.max / multiplier else { return nil }
        bytes = value * multiplier
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
