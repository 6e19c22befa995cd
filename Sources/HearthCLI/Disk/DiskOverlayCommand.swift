import ArgumentParser
import Foundation
import VirtualDisk

struct DiskOverlayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overlay",
        abstract: "Create an empty qcow2 overlay over a read-only base image."
    )

    @Argument(help: "The overlay to create.")
    var overlay: String

    @Option(help: "The base image, never written through the overlay.")
    var base: String

    @Option(name: .customLong("base-format"), help: "The base's format; detected when left out.")
    var baseFormat: DiskFormat?

    @Option(help: "The overlay's virtual size (default: the base's).")
    var size: ByteSize?

    @Flag(help: "Replace the overlay if it exists.")
    var replace = false

    func run() async throws {
        let format = try baseFormat ?? DiskOpener.detect(try DiskFile(path: base))
        try Overlay.create(at: overlay, base: base, baseFormat: format, virtualSize: size?.bytes, replace: replace)
        print("created \(overlay) over \(base) (\(format.rawValue))")
    }
}
