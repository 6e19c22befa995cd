import ArgumentParser
import Foundation
import ImageSync

struct ImagePullCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Pull a version of an image into a folder, fetching only the blocks this machine lacks.",
        discussion: "Every block is checked against the repository's signed index. An interrupted pull resumes where it stopped. The version appears as DIR/NAME/VERSION/system.img only when whole."
    )

    @Argument(help: "The image's name.")
    var name: String

    @Option(help: "The version to pull; the newest when left out.")
    var version: String?

    @OptionGroup var repository: RepositoryClientOptions

    @Option(help: "The folder holding pulled versions (the Engine's images folder).")
    var into: String

    @Flag(help: "Print progress events and the result as JSON lines.")
    var json = false

    func run() async throws {
        let store = ImageStore(root: URL(fileURLWithPath: into))
        try FileManager.default.createDirectory(at: store.root, withIntermediateDirectories: true)
        let trusted = try repository.open(store: store.root)
        defer { Task { await trusted.transport.shutdown() } }
        let puller = Puller(repository: trusted, store: store)
        let bar = ProgressBar("pulling \(name)", enabled: !json && isatty(STDERR_FILENO) == 1)
        let json = self.json
        let reporter = ProgressReporter(bar: bar, json: json)
        puller.progress = { reporter.report($0) }
        let started = ContinuousClock.now
        let result: PullResult
        do {
            result = try await puller.pull(name: name, version: version)
        } catch {
            bar.finish()
            await trusted.transport.shutdown()
            throw error
        }
        bar.finish()
        await trusted.transport.shutdown()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(["result": result]), as: UTF8.self))
            return
        }
        if result.alreadyPresent {
            print("\(name) \(result.version) is already here: \(result.image)")
            return
        }
        let seconds = Narrator.seconds(ContinuousClock.now - started)
        print("pulled \(name) \(result.version) into \(result.image) (\(ProgressBar.bytes(result.virtualSize)) virtual)")
        print("downloaded \(ProgressBar.bytes(result.bytesFetched)) in \(result.requests) request(s); \(result.blocksFromLocal) blocks (\(ProgressBar.bytes(result.bytesFromLocal))) reused from versions already here; \(result.blocksResumed) blocks kept from an interrupted pull")
        print(String(format: "took %.1f s; every block verified against the signed index", seconds))
    }
}

/// Draws pull progress as a bar, or prints it as JSON lines (at most ten a second).
final class ProgressReporter: @unchecked Sendable {
    // @unchecked: called from the one task running the pull.
    let bar: ProgressBar
    let json: Bool
    private var lastPhase: PullProgress.Phase?
    private var lastPrint = ContinuousClock.now - .seconds(1)

    init(bar: ProgressBar, json: Bool) {
        self.bar = bar
        self.json = json
    }

    func report(_ status: PullProgress) {
        if json {
            let now = ContinuousClock.now
            guard status.phase != lastPhase || now - lastPrint >= .milliseconds(100) else { return }
            lastPhase = status.phase
            lastPrint = now
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(["progress": status]) {
                // Unbuffered, so the Engine reading the pipe sees each event as it happens.
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            }
            return
        }
        switch status.phase {
        case .copying where status.bytesToCopy > 0:
            bar.update(status.bytesCopied, of: status.bytesToCopy)
        case .fetching:
            bar.update(status.bytesFetched, of: status.bytesToFetch)
        default:
            break
        }
    }
}
