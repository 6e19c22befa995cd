import ArgumentParser
import Foundation
import ImageSync

struct ImagePushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Copy a repository folder into an OCI registry, so clients can pull from it.",
        discussion: "Uploads only the blobs the registry lacks, then the metadata, the timestamp last. Clients pull with --repo oci://HOST/NAME (oci+http:// for a registry without TLS)."
    )

    @Option(help: "The repository folder.")
    var repo: String

    @Option(help: "The registry repository, oci://HOST[:PORT]/NAME or oci+http://HOST[:PORT]/NAME.")
    var to: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let pusher = try OCIPusher(repository: URL(fileURLWithPath: repo), registry: to)
        let json = self.json
        let result = try await pusher.push { path in
            if !json { FileHandle.standardError.write(Data("uploading \(path)\n".utf8)) }
        }
        if json { return try printJSON(result) }
        print("pushed to \(to): \(result.blobsUploaded) blob(s) uploaded (\(ProgressBar.bytes(result.bytesUploaded))), \(result.blobsPresent) already there, \(result.tags) metadata tag(s)")
    }
}
