import ArgumentParser
import Foundation
import VirtualDisk

struct DiskConvertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert an image to another format, keeping it sparse; a backing chain is flattened.",
        discussion: "The new image is written under a temporary name and renamed into place when whole."
    )

    @Argument(help: "The source image.")
    var source: String

    @Argument(help: "The image to write.")
    var destination: String

    @Option(name: .customLong("to"), help: "The format to write: raw, qcow2, vhd or vmdk (streamOptimized).")
    var targetFormat: DiskFormat

    @OptionGroup var input: DiskInputOptions

    @Option(help: "qcow2 cluster size (512 to 2M).")
    var clusterSize: ByteSize = ByteSize(argument: "64K")!

    @Option(help: "VHD type: dynamic or fixed.")
    var vhdType: ConversionOptions.VHDType = .dynamic

    @Flag(help: "Replace the destination if it exists.")
    var replace = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let image = try input.open(source)
        let bar = ProgressBar("converting")
        let options = ConversionOptions(format: targetFormat, qcow2ClusterSize: clusterSize.bytes, vhdType: vhdType, replace: replace)
        let result = try DiskConverter.convert(image, to: destination, options: options) { bar.update($0, of: $1) }
        bar.finish()
        if json {
            try printJSON(result)
        } else {
            print("wrote \(destination): \(targetFormat.rawValue), \(ProgressBar.bytes(result.virtualSize)) virtual, \(ProgressBar.bytes(result.dataBytes)) of data, file \(ProgressBar.bytes(result.fileSize))")
        }
    }
}

struct DiskCompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare what two images show a guest; exits 1 when they differ.",
        discussion: "Where one image is larger, its extra bytes must read as zeros."
    )

    @Argument var first: String
    @Argument var second: String

    @Option(name: .customLong("allow"), help: "A folder the images may reference (repeatable; default: each image's own folder).")
    var allowedDirectories: [String] = []

    func run() async throws {
        func open(_ path: String) throws -> any DiskImage {
            let policy = allowedDirectories.isEmpty ? DiskAccessPolicy.sameDirectory(as: path) : DiskAccessPolicy(allowedDirectories: allowedDirectories)
            return try DiskOpener.open(path, policy: policy)
        }
        let bar = ProgressBar("comparing")
        let difference = try DiskComparison.firstDifference(try open(first), try open(second)) { bar.update($0, of: $1) }
        bar.finish()
        if let difference {
            print("the images differ, first at byte \(difference)")
            throw ExitCode(1)
        }
        print("the images are identical")
    }
}

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

struct DiskResetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Throw away everything written to an overlay; constant time whatever the disk size."
    )

    @Argument(help: "The overlay to empty.")
    var overlay: String

    func run() async throws {
        try Overlay.reset(overlay)
        print("reset \(overlay): it reads as its base again")
    }
}
