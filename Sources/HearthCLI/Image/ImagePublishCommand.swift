import ArgumentParser
import Foundation
import ImageSync
import VirtualDisk

struct ImagePublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish a disk image as a new, immutable version of an image.",
        discussion: "Reads any format `hearth disk` reads. Blocks the repository already holds, from any image, are not stored again."
    )

    @Argument(help: "The disk image to publish.")
    var disk: String

    @OptionGroup var options: RepositoryPublisherOptions

    @Option(help: "The image's name.")
    var name: String

    @Option(help: "The new version's name.")
    var version: String

    @Option(name: .customLong("from"), help: "The disk's format (raw, qcow2, vhd, vmdk); detected when left out.")
    var format: DiskFormat?

    @Option(help: "Block size, a power of two from 4K to 4M.")
    var blockSize: ByteSize = ByteSize(argument: "64K")!

    @Option(help: "zstd compression level for new blocks, 1 (fastest) to 19 (smallest).")
    var level: Int32 = PublishOptions().compressionLevel

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        var publishOptions = PublishOptions()
        publishOptions.blockSize = Int(blockSize.bytes)
        publishOptions.compressionLevel = level
        let bar = ProgressBar("publishing", enabled: !json && isatty(STDERR_FILENO) == 1)
        let started = ContinuousClock.now
        let result = try options.publisher.publish(disk: disk, format: format, name: name, version: version, options: publishOptions) { done, total in
            bar.update(done, of: total)
        }
        bar.finish()
        if json {
            try printJSON(result.info)
            return
        }
        let seconds = Narrator.seconds(ContinuousClock.now - started)
        print("published \(name) \(version): \(ProgressBar.bytes(result.info.virtualSize)) virtual, \(ProgressBar.bytes(result.info.dataBytes)) of data in \(result.info.blocks) blocks")
        print("new in the repository: \(result.newBlocks) blocks, \(ProgressBar.bytes(result.newBytes)) compressed in \(result.newPacks.count) pack(s); the rest was already there")
        print(String(format: "took %.1f s", seconds))
    }
}
