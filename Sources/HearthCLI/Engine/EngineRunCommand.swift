import ArgumentParser
import Foundation
import GuestKit
import HearthCore
import HearthEngine
import QMP

struct EngineRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the Engine until SIGINT or SIGTERM; VMs keep running when it ends and are found again at its next start.",
        discussion: "Guests boot the guest kit's kernel and initramfs with the image as their root disk (serial 'system')."
    )

    @OptionGroup var engineRoot: EngineRootOptions

    @Option(help: "A JSON file with the VM definitions ({\"formatVersion\": 1, \"vms\": [...]}).")
    var definitions: String

    @Option(help: "The control socket (default: ROOT/control.sock).")
    var control: String?

    @Option(name: .customLong("allow-user"), help: "A user id that may control the VMs besides root (repeatable).")
    var allowedUsers: [UInt32] = []

    @Flag(help: "Start every VM when the Engine starts.")
    var autostart = false

    @Option(help: "Where the guest kit is cached.")
    var cacheDir: String = GuestKit.defaultCacheDirectory

    func run() async throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: definitions))
        let list = try JSONDecoder().decode(VMDefinitionList.self, from: data)
        let kit = try GuestKit.prepare(cacheDirectory: cacheDir).kit
        let choice = AcceleratorProbe.probe()
        if let warning = choice.warning { print(warning) }
        let boot = GuestBoot(kernel: kit.kernel, initrd: kit.initramfs, commandLine: "console=ttyS0 loglevel=4 panic=-1 hearth.root=system", bootMarker: GuestKit.bootMarker)
        let engine = try Engine(layout: EngineLayout(root: engineRoot.root), boot: boot, accelerator: choice.accelerator)
        try await engine.define(list)
        let server = ControlServer(path: control ?? "\(engineRoot.root)/control.sock", engine: engine, allowedUsers: Set(allowedUsers + [getuid()]))
        try server.start()
        print("engine: \(list.vms.count) VMs defined; control socket \(server.path)")
        if autostart {
            for vm in list.vms {
                do {
                    try await engine.start(vm.name)
                    print("engine: \(vm.name) is running")
                } catch {
                    print("engine: \(vm.name) did not start: \(error)")
                }
            }
        }
        await Self.waitForTermination()
        server.stop()
        print("engine: stopped; running VMs keep running")
    }

    static func waitForTermination() async {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let once = Once()
            for number in [SIGINT, SIGTERM] {
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    if once.claim() { continuation.resume() }
                }
                source.resume()
                Once.keep(source)
            }
        }
    }
}

/// Resumes a continuation once, whichever signal comes first.
private final class Once: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    func claim() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }

    static func keep(_ source: any DispatchSourceSignal) {
        sources.append(source)
    }
}
