import ArgumentParser
import Foundation
import GuestKit

/// `hearth guest-kit …`: the bootable test guest built from Debian packages.
struct GuestKitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guest-kit",
        abstract: "Build the guest test kit: Debian's cloud kernel, a virtio initramfs and a busybox root disk.",
        subcommands: [Build.self]
    )

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the kit, or reuse the cached one when its inputs have not changed.",
            discussion: "Needs apt's package lists (apt-get update) and network access to Debian's mirrors the first time."
        )

        @Option(help: "Where kits and downloaded packages are kept.")
        var cacheDir: String = GuestKit.defaultCacheDirectory

        @Flag(help: "Print the kit as JSON instead of text.")
        var json = false

        func run() async throws {
            let json = self.json
            let (kit, provenance) = try GuestKit.prepare(cacheDirectory: cacheDir) { line in
                if !json { print("  \(line)") }
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                struct Output: Encodable {
                    var kit: GuestKit
                    var provenance: String
                    var kernel: String
                    var initramfs: String
                    var rootDisk: String
                }
                let output = Output(kit: kit, provenance: provenance.rawValue, kernel: kit.kernel, initramfs: kit.initramfs, rootDisk: kit.rootDisk)
                print(String(decoding: try encoder.encode(output), as: UTF8.self))
            } else {
                print("guest kit \(provenance == .cached ? "reused from the cache" : "built"): \(kit.directory)")
                print("  kernel     \(kit.kernel) (\(kit.kernelPackage) \(kit.kernelVersion))")
                print("  initramfs  \(kit.initramfs)")
                print("  root disk  \(kit.rootDisk) (busybox \(kit.busyboxVersion))")
            }
        }
    }
}
