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

    @Flag(name: .customLong("no-sync"), help: "Do not sync the new image before renaming it into place (faster; a crash soon after may lose it). For scratch copies only.")
    var noSync = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let image = try input.open(source)
        let bar = ProgressBar("converting")
        let options = ConversionOptions(format: targetFormat, qcow2ClusterSize: clusterSize.bytes, vhdType: vhdType, replace: replace, durable: !noSync)
        let result = try DiskConverter.convert(image, to: destination, options: options) { bar.update($0, of: $1) }
        bar.finish()
        if json {
            try printJSON(result)
        } else {
            print("wrote \(destination): \(targetFormat.rawValue), \(ProgressBar.bytes(result.virtualSize)) virtual, \(ProgressBar.bytes(result.dataBytes)) of data, file \(ProgressBar.bytes(result.fileSize))")
        }
    }
}
