import ArgumentParser
import Foundation
import VirtualDisk

struct DiskCompactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compact",
        abstract: "Rewrite an image in order without zero and unused clusters (atomically; an overlay keeps its base)."
    )

    @Argument(help: "The image file.") var file: String
    @Option(name: .customLong("from"), help: "The image's format; detected when left out.") var format: DiskFormat?

    func run() async throws {
        let result = try DiskCompactor.compact(file, format: format)
        print("compacted \(file): \(ProgressBar.bytes(result.oldFileSize)) → \(ProgressBar.bytes(result.newFileSize)) on disk")
    }
}
