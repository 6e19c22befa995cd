import ArgumentParser
import Foundation
import VirtualDisk

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
