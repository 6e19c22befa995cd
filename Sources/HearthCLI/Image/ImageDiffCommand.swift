import ArgumentParser
import Foundation
import ImageSync

struct ImageDiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Say what pulling one version onto a machine holding another will cost, before doing it."
    )

    @Argument(help: "The image's name.")
    var name: String

    @Option(help: "A version the machine already holds (repeatable; none means a first pull).")
    var from: [String] = []

    @Option(help: "The version to pull.")
    var to: String

    @OptionGroup var repository: RepositoryClientOptions

    @Option(help: "The folder keeping this machine's trusted metadata (default: a private scratch folder).")
    var into: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let scratch = into.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory.appendingPathComponent("hearth-diff-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { if into == nil { try? FileManager.default.removeItem(at: scratch) } }
        let trusted = try repository.open(store: scratch)
        do {
            try await trusted.refresh()
            let target = try trusted.target(name: name, version: to)
            let (_, index) = try await trusted.index(for: target)
            var held: [(String, BlockIndex)] = []
            for version in from {
                let (_, other) = try await trusted.index(for: try trusted.target(name: name, version: version))
                held.append((version, other))
            }
            await trusted.transport.shutdown()
            let estimate = DeltaEstimate.estimate(target: target, index: index, held: held)
            if json {
                try printJSON(estimate)
                return
            }
            let base = from.isEmpty ? "nothing" : from.joined(separator: ", ")
            print("\(name) \(to) onto a machine holding \(base):")
            print("  blocks:        \(estimate.blocks) (\(ProgressBar.bytes(estimate.dataBytes)) of data, \(ProgressBar.bytes(estimate.virtualSize)) virtual)")
            print("  reused:        \(estimate.blocksReused) blocks already on the machine")
            print("  to download:   \(ProgressBar.bytes(estimate.bytesToFetch)) in \(estimate.requests) request(s), \(estimate.blocksToFetch) blocks")
            let share = estimate.fullBytes == 0 ? 0 : Double(estimate.bytesToFetch) / Double(estimate.fullBytes) * 100
            print(String(format: "  whole version: %@ compressed; the delta is %.1f%% of it", ProgressBar.bytes(estimate.fullBytes), share))
        } catch {
            await trusted.transport.shutdown()
            throw error
        }
    }
}
