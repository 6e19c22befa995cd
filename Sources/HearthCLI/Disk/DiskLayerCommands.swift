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

struct DiskSnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Create, list, revert to and delete internal snapshots of a qcow2 image (restore points).",
        subcommands: [Create.self, List.self, Revert.self, Delete.self]
    )

    struct Create: AsyncParsableCommand {
        @Argument var file: String
        @Argument var name: String
        func run() async throws {
            let snapshot = try DiskSnapshots.create(file, name: name)
            print("created snapshot \(snapshot.id) '\(snapshot.name)' of \(file)")
        }
    }

    struct List: AsyncParsableCommand {
        @Argument var file: String
        @Flag(help: "Print JSON instead of text.") var json = false
        func run() async throws {
            let snapshots = try DiskSnapshots.list(file)
            if json {
                try printJSON(snapshots)
                return
            }
            if snapshots.isEmpty { print("\(file) has no snapshots") }
            for snapshot in snapshots {
                let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(snapshot.date)))
                print("\(snapshot.id)\t\(snapshot.name)\t\(date)\t\(ProgressBar.bytes(snapshot.virtualSize))")
            }
        }
    }

    struct Revert: AsyncParsableCommand {
        @Argument var file: String
        @Argument(help: "The snapshot's ID or name.") var snapshot: String
        func run() async throws {
            try DiskSnapshots.revert(file, to: snapshot)
            print("\(file) now reads as it did at snapshot '\(snapshot)'")
        }
    }

    struct Delete: AsyncParsableCommand {
        @Argument var file: String
        @Argument(help: "The snapshot's ID or name.") var snapshot: String
        func run() async throws {
            try DiskSnapshots.delete(file, snapshot)
            print("deleted snapshot '\(snapshot)' of \(file)")
        }
    }
}

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
