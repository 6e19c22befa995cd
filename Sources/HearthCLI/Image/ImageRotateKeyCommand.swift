import ArgumentParser
import Foundation
import ImageSync

extension Role: ExpressibleByArgument {}

struct ImageRotateKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-key",
        abstract: "Replace one role's signing key; the old key stops being trusted at once.",
        discussion: "Writes a new root version signed by the current root key (and by the new one when the root key itself rotates); clients follow the chain from the root they pinned. The old key moves to KEYDIR/retired/."
    )

    @Argument(help: "The role: root, targets, snapshot or timestamp.")
    var role: Role

    @OptionGroup var options: RepositoryPublisherOptions

    func run() async throws {
        let version = try options.publisher.rotateKey(role)
        print("\(role.rawValue) key replaced; root metadata is now version \(version)")
    }
}
