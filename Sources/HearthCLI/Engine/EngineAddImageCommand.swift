import ArgumentParser
import Foundation
import HearthCore
import HearthEngine
import VirtualDisk

struct EngineAddImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-image",
        abstract: "Put a gold image version into the Engine's store (converted to qcow2, never written afterwards)."
    )

    @OptionGroup var engineRoot: EngineRootOptions
    @Option(help: "The image's name.") var name: String
    @Option(help: "The version.") var version: String
    @Argument(help: "The disk image (raw, qcow2, VHD or VMDK).") var file: String
    @Option(name: .customLong("from"), help: "The file's format; detected when left out.") var format: DiskFormat?

    func run() async throws {
        let image = ImageReference(name: name, version: version)
        let layout = EngineLayout(root: engineRoot.root)
        let target = layout.imageDisk(image)
        guard !FileManager.default.fileExists(atPath: target) else {
            throw ValidationError("\(image) is already in the store; versions never change (add a new version)")
        }
        try FileManager.default.createDirectory(atPath: layout.imageDirectory(image), withIntermediateDirectories: true)
        let source = try DiskOpener.open(file, format: format, policy: .sameDirectory(as: file))
        let bar = ProgressBar("importing")
        let result = try DiskConverter.convert(source, to: target, options: .init(format: .qcow2)) { bar.update($0, of: $1) }
        bar.finish()
        // Read-only: nothing writes a gold image; overlays do.
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: target)
        print("added \(image): \(ProgressBar.bytes(result.virtualSize)), \(ProgressBar.bytes(result.fileSize)) on disk")
    }
}
