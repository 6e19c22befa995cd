import ArgumentParser
import Foundation
import ImageSync

struct ImageInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a repository's signing keys and its first root metadata.",
        discussion: "Prints the root metadata file that clients pin with --trust. Keep the key folder private, and the root key offline if you can."
    )

    @OptionGroup var options: RepositoryPublisherOptions

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let root = try options.publisher.initialize()
        if json {
            try printJSON(["repository": options.repo, "keys": options.keys, "trustAnchor": root.path])
            return
        }
        print("repository:   \(options.repo)")
        print("signing keys: \(options.keys) (root, targets, snapshot, timestamp; mode 0600)")
        print("trust anchor: \(root.path)")
        print("Clients pin the trust anchor: hearth image pull NAME --repo URL --trust \(root.lastPathComponent) --into DIR")
    }
}
