import ArgumentParser
import Foundation
import VirtualDisk

struct DiskCommitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Write a qcow2 overlay's changes into its base (raw or qcow2), then empty the overlay."
    )

    @Argument(help: "The overlay.") var overlay: String
    @Option(name: .customLong("allow"), help: "A folder the chain may reference (repeatable; default: the overlay's folder).")
    var allowedDirectories: [String] = []

    func run() async throws {
        let policy = allowedDirectories.isEmpty ? DiskAccessPolicy.sameDirectory(as: overlay) : DiskAccessPolicy(allowedDirectories: allowedDirectories)
        let bar = ProgressBar("committing")
        try DiskLayers.commit(overlay: overlay, policy: policy) { bar.update($0, of: $1) }
        bar.finish()
        print("committed \(overlay) into its base; the overlay is empty again")
    }
}
