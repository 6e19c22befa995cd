import ArgumentParser
import Foundation
import ImageSync

struct ImageVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-read a pulled version and check every block against its signed index.",
        discussion: "Runs on one core and reports the rate, so it also measures how fast this machine hashes. Exits with status 1 when any block differs."
    )

    @Argument(help: "The image's name.")
    var name: String

    @Option(help: "The version to check.")
    var version: String

    @Option(help: "The folder it was pulled into.")
    var into: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let bar = ProgressBar("verifying \(name) \(version)", enabled: !json && isatty(STDERR_FILENO) == 1)
        let report = try ImageStore(root: URL(fileURLWithPath: into)).verify(name: name, version: version) { done, total in
            bar.update(done, of: total)
        }
        bar.finish()
        if json {
            try printJSON(report)
        } else {
            let rate = report.hashSeconds > 0 ? Double(report.bytesHashed) / report.hashSeconds : 0
            print(String(format: "%@ %@: %d blocks, %@ hashed and %@ read in %.2f s (SHA-256 at %@/s on one core)",
                         name, version, report.blocks, ProgressBar.bytes(report.bytesHashed), ProgressBar.bytes(report.bytesRead),
                         report.seconds, ProgressBar.bytes(UInt64(rate))))
            if report.intact {
                print("intact: every block matches the signed index")
            } else {
                let listed = report.damagedBlocks.map(String.init).joined(separator: ", ")
                print("DAMAGED: \(report.damaged) block(s) differ from the signed index (block numbers: \(listed)\(report.damaged > report.damagedBlocks.count ? ", …" : ""))")
                print("remove \(report.image.replacingOccurrences(of: "/system.img", with: "")) and pull the version again")
            }
        }
        if !report.intact { throw ExitCode(1) }
    }
}
