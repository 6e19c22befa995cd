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
        discussion: """
        Managed by a Center: the first run enrolls with --center, --center-ca and a one-time token \
        (--enroll-token-file, or HEARTH_ENROLL_TOKEN; never on the command line); later runs find the \
        identity under the root and need no option. The Engine then checks in at start and at the \
        interval the Center's policy sets, runs the VMs assigned to its user, pulls their images by \
        delta, and keeps working offline within its lease.

        Unmanaged: --definitions names a JSON file with the VMs.

        Guests boot the guest kit's kernel and initramfs with the image as their root disk (serial 'system').
        """
    )

    @OptionGroup var engineRoot: EngineRootOptions

    @Option(help: "A JSON file with the VM definitions ({\"formatVersion\": 1, \"vms\": [...]}), for an Engine no Center manages.")
    var definitions: String?

    @Option(help: "The Center to enroll with, as https://HOST:PORT (first run only).")
    var center: String?

    @Option(name: .customLong("center-ca"), help: "The Center's CA certificate (PEM), as its admin hands it over (first run only).")
    var centerCA: String?

    @Option(name: .customLong("enroll-token-file"), help: "A file holding the one-time enrollment token (first run only; or set HEARTH_ENROLL_TOKEN).")
    var enrollTokenFile: String?

    @Option(name: .customLong("bandwidth-limit"), help: "Cap image downloads at this many bytes per second (for example 2000000).")
    var bandwidthLimit: Double?

    @Option(help: "The control socket (default: ROOT/control.sock).")
    var control: String?

    @Option(name: .customLong("allow-user"), help: "A user id that may control the VMs besides root (repeatable).")
    var allowedUsers: [UInt32] = []

    @Option(help: "The TPM, as a tpm2-tss TCTI (default: device:/dev/tpmrm0).")
    var tpm: String = "device:/dev/tpmrm0"

    @Flag(name: .customLong("insecure-no-tpm"), help: "Run without a TPM, for development only: nothing is measured and VM disks are not encrypted; said at every start and reported at check-in.")
    var insecureNoTPM = false

    @Flag(help: "Start every VM when the Engine starts.")
    var autostart = false

    @Option(help: "Where the guest kit is cached.")
    var cacheDir: String = GuestKit.defaultCacheDirectory

    func run() async throws {
        let layout = EngineLayout(root: engineRoot.root)
        let enrolled = try EngineIdentity.load(layout)
        guard definitions != nil || center != nil || enrolled != nil else {
            throw ValidationError("name a Center to enroll with (--center, --center-ca, --enroll-token-file) or a definitions file (--definitions)")
        }
        let kit = try GuestKit.prepare(cacheDirectory: cacheDir).kit
        let choice = AcceleratorProbe.probe()
        if let warning = choice.warning { Self.say(warning) }
        let boot = GuestBoot(kernel: kit.kernel, initrd: kit.initramfs, commandLine: "console=ttyS0 loglevel=4 panic=-1 hearth.root=system", bootMarker: GuestKit.bootMarker)
        let security = SecurityZone(mode: insecureNoTPM ? .insecureDevelopment : .tpm(tcti: tpm), root: layout.root)
        let engine = try Engine(layout: layout, boot: boot, accelerator: choice.accelerator, security: security)
        switch security.standing {
        case .secure: Self.say("engine: security zone: measured and approved")
        case .insecureDevelopment: Self.say("engine: INSECURE: running without a TPM (--insecure-no-tpm); nothing is measured and VM disks are not encrypted. For development only.")
        default: Self.say("engine: security zone: \(security.standing.report): \(security.standing.reason ?? ""); work desktops will not start")
        }
        let server = ControlServer(path: control ?? "\(engineRoot.root)/control.sock", engine: engine, allowedUsers: Set(allowedUsers + [getuid()]))
        if definitions == nil {
            let identity: EngineIdentity, files: EngineIdentity.Files
            if let enrolled { (identity, files) = enrolled } else { (identity, files) = try await enroll(layout) }
            var options = ManagementZone.Options()
            options.bandwidthLimit = bandwidthLimit
            options.virtualization = choice.accelerator == .kvm ? "kvm" : "tcg"
            let management = try await ManagementZone(engine: engine, identity: identity, files: files, options: options)
            try server.start()
            Self.say("engine: device \(identity.deviceID), managed by \(identity.center); control socket \(server.path)")
            Self.say("engine: lease \(management.lease.standing)")
            let loop = Task { await management.run() }
            await Self.waitForTermination()
            loop.cancel()
            server.stop()
            Self.say("engine: stopped; running VMs keep running")
            return
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: definitions!))
        let list = try JSONDecoder().decode(VMDefinitionList.self, from: data)
        try await engine.define(list)
        try server.start()
        Self.say("engine: \(list.vms.count) VMs defined; control socket \(server.path)")
        if autostart {
            for vm in list.vms {
                do {
                    try await engine.start(vm.name)
                    Self.say("engine: \(vm.name) is running")
                } catch {
                    Self.say("engine: \(vm.name) did not start: \(error)")
                }
            }
        }
        await Self.waitForTermination()
        server.stop()
        Self.say("engine: stopped; running VMs keep running")
    }

    /// First run: enroll with the Center named on the command line.
    private func enroll(_ layout: EngineLayout) async throws -> (EngineIdentity, EngineIdentity.Files) {
        guard let center, let centerCA else {
            throw ValidationError("this Engine is not enrolled yet: give --center and --center-ca, and the token with --enroll-token-file or HEARTH_ENROLL_TOKEN")
        }
        let token: String
        if let file = enrollTokenFile {
            token = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let value = ProcessInfo.processInfo.environment["HEARTH_ENROLL_TOKEN"] {
            token = value.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            throw ValidationError("give the one-time enrollment token in a file (--enroll-token-file) or in HEARTH_ENROLL_TOKEN; never on the command line, where other users can read it")
        }
        guard !token.isEmpty else { throw ValidationError("the enrollment token is empty") }
        let caPEM = try String(contentsOfFile: centerCA, encoding: .utf8)
        let name = ProcessInfo.processInfo.hostName
        let enrolled = try await EngineIdentity.enroll(center: center, caPEM: caPEM, token: token, deviceName: name, layout: layout)
        Self.say("engine: enrolled as device \(enrolled.0.deviceID) with \(center)")
        return enrolled
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

extension EngineRunCommand {
    /// A daemon's output is its log: each line goes out at once, even into a file, so a kill
    /// loses none.
    static func say(_ line: String) {
        print(line)
        fflush(nil)
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
