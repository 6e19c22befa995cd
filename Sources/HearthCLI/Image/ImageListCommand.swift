import ArgumentParser
import Foundation
import ImageSync

struct ImageListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the image versions a repository signs, or those pulled into a folder."
    )

    @Option(help: "A repository folder or URL (needs --trust).")
    var repo: String?

    @Option(help: "The trust anchor for --repo.")
    var trust: String?

    @Option(help: "A folder versions were pulled into.")
    var into: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func validate() throws {
        guard (repo != nil) != (into != nil) else { throw ValidationError("give either --repo (with --trust) or --into") }
        if repo != nil && trust == nil { throw ValidationError("--repo needs --trust, the root metadata this machine pins") }
    }

    func run() async throws {
        if let into {
            let versions = ImageStore(root: URL(fileURLWithPath: into)).installed()
            if json { return try printJSON(versions) }
            if versions.isEmpty { print("no versions in \(into)") }
            for version in versions {
                print("\(version.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(version.version.padding(toLength: 16, withPad: " ", startingAt: 0)) \(ProgressBar.bytes(version.virtualSize).padding(toLength: 10, withPad: " ", startingAt: 0)) pulled \(version.pulled.ISO8601Format())")
            }
            return
        }
        var options = try RepositoryClientOptions.parse(["--repo", repo!, "--trust", trust!])
        options.minRate = 2048
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-list-\(getpid())")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let trusted = try options.open(store: scratch)
        let targets: TargetsMetadata
        do { targets = try await trusted.refresh() } catch {
            await trusted.transport.shutdown()
            throw error
        }
        await trusted.transport.shutdown()
        let versions = targets.targets.values.map(\.custom).sorted { $0.sequence < $1.sequence }
        if json { return try printJSON(versions) }
        if versions.isEmpty { print("the repository holds no versions yet") }
        for info in versions {
            print("\(info.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(info.version.padding(toLength: 16, withPad: " ", startingAt: 0)) \(ProgressBar.bytes(info.virtualSize).padding(toLength: 10, withPad: " ", startingAt: 0)) \(ProgressBar.bytes(info.storedBytes).padding(toLength: 10, withPad: " ", startingAt: 0)) compressed, published \(info.published.ISO8601Format())")
        }
    }
}
