import ArgumentParser
import Foundation
import VirtualDisk

struct DiskInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show an image's format, virtual size, allocated bytes, backing chain and snapshots."
    )

    @Argument(help: "The image file.")
    var file: String

    @OptionGroup var input: DiskInputOptions

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let info = try DiskInfo(of: try input.open(file))
        if json {
            try printJSON(info)
            return
        }
        print("image:          \(info.path)")
        print("format:         \(info.format.rawValue)")
        print("virtual size:   \(ProgressBar.bytes(info.virtualSize)) (\(info.virtualSize) bytes)")
        print("allocated:      \(ProgressBar.bytes(info.allocatedBytes))")
        for (key, value) in (info.chain.first?.details ?? [:]).sorted(by: { $0.key < $1.key }) {
            print("\(key + ":")\(String(repeating: " ", count: max(1, 16 - key.count - 1)))\(value)")
        }
        if info.chain.count > 1 {
            print("backing chain:")
            for layer in info.chain.dropFirst() {
                print("  \(layer.path) (\(layer.format.rawValue), \(ProgressBar.bytes(layer.virtualSize)))")
            }
        }
        if !info.snapshots.isEmpty {
            print("snapshots:")
            print("  ID    NAME                  DATE                  VM SIZE")
            for snapshot in info.snapshots {
                let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(snapshot.date)))
                print("  \(snapshot.id.padding(toLength: 5, withPad: " ", startingAt: 0)) \(snapshot.name.padding(toLength: 21, withPad: " ", startingAt: 0)) \(date)  \(ProgressBar.bytes(snapshot.vmStateSize))")
            }
        }
    }
}
