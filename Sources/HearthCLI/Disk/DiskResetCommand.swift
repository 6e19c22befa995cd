import ArgumentParser
import Foundation
import VirtualDisk

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
