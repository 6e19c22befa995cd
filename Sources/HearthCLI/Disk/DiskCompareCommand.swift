import ArgumentParser
import Foundation
import VirtualDisk

struct DiskCompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare what two images show a guest; exits 1 when they differ.",
        discussion: "Where one image is larger, its extra bytes must read as zeros."
    )

    @Argument var first: String
    @Argument var second: String

    @Option(name: .customLong("allow"), help: "A folder the images may reference (repeatable; default: each image's own folder).")
    var allowedDirectories: [String] = []

    func run() async throws {
        func open(_ path: String) throws -> any DiskImage {
            let policy = allowedDirectories.isEmpty ? DiskAccessPolicy.sameDirectory(as: path) : DiskAccessPolicy(allowedDirectories: allowedDirectories)
            return try DiskOpener.open(path, policy: policy)
        }
        let bar = ProgressBar("comparing")
        let difference = try DiskComparison.firstDifference(try open(first), try open(second)) { bar.update($0, of: $1) }
        bar.finish()
        if let difference {
            print("the images differ, first at byte \(difference)")
            throw ExitCode(1)
        }
        print("the images are identical")
    }
}
