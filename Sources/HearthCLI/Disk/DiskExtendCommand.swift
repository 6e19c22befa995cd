import ArgumentParser
import Foundation
import VirtualDisk

struct DiskExtendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extend",
        abstract: "Grow a disk (raw, qcow2, fixed VHD) and its last MBR or GPT partition so the guest sees the room.",
        discussion: "Grow the filesystem inside afterwards with the guest's own tool (for example resize2fs)."
    )

    @Argument(help: "The image file.")
    var file: String

    @Argument(help: "The new size, such as 20G.")
    var size: ByteSize

    @Option(name: .customLong("from"), help: "The image's format; detected when left out.")
    var format: DiskFormat?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let result = try DiskResizer.extend(file, to: size.bytes, format: format)
        if json {
            try printJSON(result)
            return
        }
        print("grew \(file) from \(ProgressBar.bytes(result.oldSize)) to \(ProgressBar.bytes(result.newSize))")
        if let number = result.partitionNumber, let length = result.partitionLength, let scheme = result.scheme {
            print("grew \(scheme.rawValue.uppercased()) partition \(number) to \(ProgressBar.bytes(length)); grow its filesystem inside the guest (resize2fs, xfs_growfs, …)")
        } else {
            print("no partition table: grow the filesystem on the whole disk inside the guest")
        }
    }
}
