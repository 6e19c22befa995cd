import ArgumentParser
import Foundation
import ImageSync

struct ImageRefreshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh",
        abstract: "Re-sign the repository's timestamp so clients keep seeing it as current.",
        discussion: "Clients refuse a timestamp past its expiry (a frozen mirror looks exactly like that). Run this regularly, well within the expiry."
    )

    @OptionGroup var options: RepositoryPublisherOptions

    @Flag(help: "Also re-sign the targets and a new snapshot.")
    var all = false

    func run() async throws {
        let expires = try options.publisher.refresh(snapshot: all)
        print("timestamp re-signed; valid until \(expires.ISO8601Format())")
    }
}
