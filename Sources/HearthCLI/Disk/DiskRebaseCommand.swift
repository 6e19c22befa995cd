import ArgumentParser
import Foundation
import VirtualDisk

struct DiskRebaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebase",
        abstract: "Put a qcow2 overlay over another base, keeping what the guest sees.",
        discussion: "Clusters where the old chain and the new base differ are copied into the overlay first. With --unsafe only the name changes (for a moved base)."
    )

    @Argument(help: "The overlay.") var overlay: String
    @Option(help: "The new base; leave out to make the overlay stand alone.") var base: String?
    @Option(name: .customLong("base-format"), help: "The new base's format; detected when left out.") var baseFormat: DiskFormat?
    @Flag(help: "Change only the recorded name, copying nothing.") var unsafe = false
    @Option(name: .customLong("allow"), help: "A folder the chains may reference (repeatable; default: the overlay's folder).")
    var allowedDirectories: [String] = []

    func run() async throws {
        let policy = allowedDirectories.isEmpty ? DiskAccessPolicy.sameDirectory(as: overlay) : DiskAccessPolicy(allowedDirectories: allowedDirectories)
        let bar = ProgressBar("rebasing")
        try DiskLayers.rebase(overlay: overlay, onto: base, format: baseFormat, policy: policy, unsafe: unsafe) { bar.update($0, of: $1) }
        bar.finish()
        print(base.map { "\(overlay) now lies over \($0)" } ?? "\(overlay) now stands alone")
    }
}
