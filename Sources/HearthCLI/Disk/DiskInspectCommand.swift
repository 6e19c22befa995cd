import ArgumentParser
import Foundation
import VirtualDisk

struct DiskInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Look inside an image without booting it: partition table, and each partition's filesystem type, label and UUID.",
        discussion: "Recognises MBR (with logical partitions) and GPT; ext2/3/4, FAT, NTFS, XFS and swap."
    )

    @Argument(help: "The image file.")
    var file: String

    @OptionGroup var input: DiskInputOptions

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let inspection = try DiskInspection(of: try input.open(file))
        if json {
            try printJSON(inspection)
            return
        }
        func describe(_ filesystem: Filesystem?) -> String {
            guard let filesystem else { return "no filesystem recognised" }
            return [filesystem.type, filesystem.label.map { "label \"\($0)\"" }, filesystem.uuid.map { "UUID \($0)" }].compactMap { $0 }.joined(separator: ", ")
        }
        guard let table = inspection.partitionTable else {
            print("no partition table; whole disk: \(describe(inspection.filesystem))")
            return
        }
        print("\(table.scheme.rawValue.uppercased()) partition table \(table.identifier), \(table.partitions.count) partitions")
        print("  #  START         SIZE        TYPE                                  FILESYSTEM")
        for partition in table.partitions {
            let start = String(partition.offset).padding(toLength: 13, withPad: " ", startingAt: 0)
            let size = ProgressBar.bytes(partition.length).padding(toLength: 11, withPad: " ", startingAt: 0)
            let type = partition.type.padding(toLength: 37, withPad: " ", startingAt: 0)
            let name = partition.name.flatMap { $0.isEmpty ? nil : "name \"\($0)\"; " } ?? ""
            print("  \(String(partition.number).padding(toLength: 2, withPad: " ", startingAt: 0)) \(start) \(size) \(type) \(name)\(describe(partition.filesystem))")
        }
    }
}
