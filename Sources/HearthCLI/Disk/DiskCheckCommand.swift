import ArgumentParser
import Foundation
import VirtualDisk

struct DiskCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check an image's structure and, for qcow2, every refcount; exits 2 on errors, 3 on leaks only.",
        discussion: "--repair sets each refcount to the number of real uses: it reclaims leaked clusters and protects shared ones. Nothing else is changed."
    )

    @Argument(help: "The image file.") var file: String
    @Option(name: .customLong("from"), help: "The image's format; detected when left out.") var format: DiskFormat?
    @Flag(help: "Fix refcounts (safe: nothing a guest reads changes).") var repair = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() async throws {
        let report = try DiskChecker.check(file, format: format, repair: repair)
        if json {
            try printJSON(report)
        } else {
            for error in report.errors { print("ERROR: \(error)") }
            if report.leakedClusters > 0 {
                print("\(report.leakedClusters) leaked clusters (\(ProgressBar.bytes(report.leakedBytes))): space wasted, no data at risk")
            }
            if report.isClean {
                print("\(file): no errors, no leaks")
            } else if report.repaired {
                print("repaired the refcounts; run check again to confirm")
            } else {
                print("run 'hearth disk check --repair \(file)' to fix the refcounts")
            }
        }
        if !report.repaired {
            if !report.errors.isEmpty { throw ExitCode(2) }
            if report.leakedClusters > 0 { throw ExitCode(3) }
        }
    }
}
