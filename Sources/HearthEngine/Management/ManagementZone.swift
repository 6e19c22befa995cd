import Crypto
import Foundation
import HearthCore
import ImageSync
import Logging
import TPMPolicy
import X509

/// The Engine's management zone: calls home to the Center, converges on the desired state it
/// answers with (VMs, image versions, policies), keeps the lease, and carries out commands.
/// Offline it goes on from what it last heard, within the lease.
///
/// What it keeps under the Engine's root, each file written whole or not at all:
///
///     ROOT/identity/        who the device is (`EngineIdentity`)
///     ROOT/lease.json       the last lease and the clock's high-water mark (`LeaseKeeper`)
///     ROOT/desired.json     the last desired state, to start from offline
///     ROOT/commands.json    the commands carried out and their results, so a redelivered
///                           command is reported again, not carried out twice
public actor ManagementZone {
    public struct Options: Sendable {
        /// Cap on image downloads, bytes per second.
        public var bandwidthLimit: Double?
        /// The wall clock (tests move it; the lease is judged by `LeaseKeeper`'s clock over it).
        public var now: @Sendable () -> Date = { Date() }
        public var engineVersion = "0.1.0"
        /// What the Engine's accelerator probe found: "kvm" or "tcg".
        public var virtualization = "tcg"
        /// Start each assigned VM once its image is on the machine (the user controls it after).
        public var autostart = true

        public init() {}
    }

    public nonisolated let engine: Engine
    public nonisolated let layout: EngineLayout
    public nonisolated let identity: EngineIdentity
    public nonisolated let lease: LeaseKeeper
    /// The client for Center calls; replaced when the certificate is renewed.
    nonisolated var client: CenterClient { clientBox.value }
    nonisolated let clientBox: ClientBox
    /// The certificate and key in use (the certificate changes at renewal).
    private var files: EngineIdentity.Files
    nonisolated let options: Options
    let logger: Logger
    /// Read by the Engine's start gate and by pull progress, from outside the actor.
    nonisolated let shared = Shared()
    private var desired: [AssignedVM] = []
    private var handled: [String: CommandReport]
    private var pulls: [ImageReference: Task<Void, Never>] = [:]
    /// VMs started once since the Engine began (or since a lock or approval cleared them).
    var autostarted: Set<String> = []
    /// The Center's nonce from the last check-in, for the TPM's next quote; kept across
    /// restarts so the first report after one is attested too.
    private var nonce: String? {
        get { (try? String(contentsOfFile: "\(layout.root)/nonce", encoding: .utf8)).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } }
        set { if let newValue { try? DurableFile.write(Data(newValue.utf8), to: "\(layout.root)/nonce") } }
    }
    /// Set by `checkInSoon()`: the loop ends its wait and checks in.
    private var nudged = false

    /// Opens the management zone of an enrolled Engine and applies the desired state it last
    /// heard (offline start).
    public init(engine: Engine, identity: EngineIdentity, files: EngineIdentity.Files, options: Options = Options(),
                logger: Logger = Logger(label: "hearth.engine.management")) async throws {
        self.engine = engine
        layout = engine.layout
        self.identity = identity
        self.options = options
        self.logger = logger
        clientBox = ClientBox(try CenterClient(center: identity.center, caPEM: files.caPEM, identity: (files.certificatePEM, files.keyPEM)))
        self.files = files
        lease = try LeaseKeeper(path: "\(engine.layout.root)/lease.json", leaseKey: identity.leaseKey, deviceID: identity.deviceID, now: options.now,
                                tpm: engine.security.leaseAnchor())
        handled = (try? JSONDecoder().decode([String: CommandReport].self, from: Data(contentsOf: URL(fileURLWithPath: "\(engine.layout.root)/commands.json")))) ?? [:]
        let lease = lease
        let shared = shared
        await engine.setStartGate { definition in
            Self.refusal(for: definition, lease: lease, policy: shared.policy(for: definition.name))
        }
        if let data = FileManager.default.contents(atPath: "\(engine.layout.root)/desired.json") {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            if let stored = try? decoder.decode([AssignedVM].self, from: data) {
                try await apply(stored)
            }
        }
    }

    /// Why a VM may not start now, by the lease and its policy.
    static func refusal(for definition: VMDefinition, lease: LeaseKeeper, policy: EffectivePolicy?) -> String? {
        if definition.role == .work {
            switch lease.standing {
            case .valid: break
            case let standing:
                return "the work VM's lease \(standing); connect this PC to a network so the Engine can check in with the Center, which renews it"
            }
        }
        if let expiry = policy?.imageExpiry, lease.now() >= expiry {
            return "its image \(definition.image) expired on \(expiry.ISO8601Format()) by IT's policy; IT must publish a newer version"
        }
        return nil
    }

    // MARK: Calling home

    /// Calls home forever: at the interval the Center sets, and while it cannot be reached,
    /// sooner, with exponential backoff and jitter (5 s doubling up to the interval).
    public func run() async {
        var failures = 0
        var interval = 300
        while !Task.isCancelled {
            let delay: Double
            do {
                interval = try await checkIn().checkInInterval
                failures = 0
                delay = Double(interval)
            } catch {
                failures += 1
                let backoff = min(Double(interval), 5 * pow(2, Double(min(failures - 1, 16))))
                delay = backoff * Double.random(in: 0.8...1.2)
                logger.warning("check-in failed; trying again", metadata: ["error": "\(error)", "in.seconds": "\(Int(delay))", "lease": "\(lease.standing)"])
            }
            // Waits in short slices so that `checkInSoon()` is heard within a quarter second.
            let until = ContinuousClock.now + .milliseconds(Int(delay * 1000))
            while !Task.isCancelled, !nudged, ContinuousClock.now < until {
                try? await Task.sleep(for: .milliseconds(250))
            }
            nudged = false
        }
    }

    /// Ends the loop's wait: it checks in now rather than at the interval (as after "check in
    /// now" from the user, or when the demo does not want to wait).
    public func checkInSoon() {
        nudged = true
    }

    /// One check-in: report status, take the lease, carry out commands, converge on the VMs.
    @discardableResult
    public func checkIn() async throws -> CheckInResponse {
        await renewCertificateIfDue()
        let answer = try await client.checkIn(try await status())
        try lease.accept(answer.lease)
        // The nonce for the next quote, and for a wipe's receipt in this answer.
        if let fresh = answer.nonce, fresh.count == 64, fresh.allSatisfy(\.isHexDigit) { nonce = fresh }
        for command in answer.commands {
            await carryOut(command)
        }
        adoptSecurity(answer)
        try await apply(answer.vms)
        return answer
    }

    /// Days before its certificate expires that the Engine asks for a new one.
    static let renewalWindow: TimeInterval = 30 * 86_400

    /// Renews the device certificate (same key) once it has `renewalWindow` or less left by the
    /// lease's clock. The certificate it replaces stays valid at the Center until it expires, so
    /// a lost answer costs nothing: the next check-in tries again.
    func renewCertificateIfDue() async {
        guard let current = try? Certificate(pemEncoded: files.certificatePEM),
              lease.now() >= current.notValidAfter.addingTimeInterval(-Self.renewalWindow) else { return }
        do {
            let key = try P256.Signing.PrivateKey(pemRepresentation: files.keyPEM)
            let pem = try await client.renewCertificate(csr: try EngineIdentity.certificateRequest(key: key, deviceName: identity.deviceID))
            guard let renewed = try? Certificate(pemEncoded: pem), renewed.publicKey == Certificate.PublicKey(key.publicKey),
                  renewed.notValidAfter >= current.notValidAfter else {
                throw ManagementError.badCenter("the renewed certificate is not for this device's key or expires sooner than the one it replaces")
            }
            try DurableFile.write(Data(pem.utf8), to: "\(EngineIdentity.folder(layout))/device.pem", mode: 0o644)
            files.certificatePEM = pem
            let old = clientBox.swap(try CenterClient(center: identity.center, caPEM: files.caPEM, identity: (pem, files.keyPEM)))
            await old.shutdown()
            logger.notice("device certificate renewed", metadata: ["expires": "\(renewed.notValidAfter.ISO8601Format())"])
        } catch {
            logger.warning("device certificate not renewed; trying again at the next check-in",
                           metadata: ["error": "\(error)", "expires": "\(current.notValidAfter.ISO8601Format())"])
        }
    }

    /// What the Engine reports: inventory, VMs, image updates, compliance, lease, lock.
    public func status() async throws -> DeviceStatus {
        let vms = try await engine.status().map { DeviceStatus.VM(name: $0.name, state: $0.blocked == nil ? $0.phase.rawValue : "\($0.phase.rawValue) (may not start: \($0.blocked!))", image: $0.bootedImage) }
        let inventory = Inventory.collect(root: layout.root, virtualization: options.virtualization)
        return DeviceStatus(engineVersion: options.engineVersion, inventory: inventory, vms: vms, security: engine.security.standing.report,
                            updates: shared.updates(), compliance: Inventory.shortfalls(inventory, policies: desired.map { ($0.definition.name, $0.policy) }),
                            lease: "\(lease.standing)", locked: await engine.lockReason,
                            measurements: engine.security.measurementReport(nonce: nonce.map(EventLog.bytes(hex:))))
    }

    // MARK: Converging

    /// Makes the Engine run what the Center assigns: defines the VMs (each on the newest version
    /// of its image on the machine, switching at its next boot when a newer one arrives), pulls
    /// missing versions in the background, stops VMs no longer assigned, and starts each VM once.
    func apply(_ vms: [AssignedVM]) async throws {
        if vms != desired {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try DurableFile.write(try encoder.encode(vms), to: "\(layout.root)/desired.json")
            desired = vms
        }
        shared.setPolicies(Dictionary(vms.map { ($0.definition.name, $0.policy) }, uniquingKeysWith: { first, _ in first }))
        var definitions: [VMDefinition] = []
        let running = try await engine.status()
        for assigned in vms {
            var definition = assigned.definition
            // The policy caps the network a VM may reach.
            if assigned.policy.network.rank < definition.network.rank { definition.network = assigned.policy.network }
            let wanted = definition.image
            if !isInstalled(wanted) {
                startPull(wanted)
                // Until it arrives: the version the VM runs or ran, else any of that image here.
                let current = running.first { $0.name == definition.name }?.bootedImage
                let fallback = current.flatMap(parse).flatMap { isInstalled($0) ? $0 : nil } ?? installedVersions(of: wanted.name).last
                if let fallback { definition.image = fallback }
            }
            definitions.append(definition)
        }
        let keep = Set(definitions.map(\.name))
        for vm in running where !keep.contains(vm.name) && [.running, .starting].contains(vm.phase) {
            logger.info("VM no longer assigned; stopping it (its disks are kept)", metadata: ["vm.name": "\(vm.name)"])
            try await engine.stop(vm.name)
        }
        try await engine.define(VMDefinitionList(vms: definitions))
        guard options.autostart else { return }
        for status in try await engine.status() where !autostarted.contains(status.name) {
            guard let definition = definitions.first(where: { $0.name == status.name }), isInstalled(definition.image) else { continue }
            autostarted.insert(status.name)
            guard status.phase == .stopped, status.blocked == nil else { continue }
            do {
                try await engine.start(status.name)
                logger.info("VM started", metadata: ["vm.name": "\(status.name)", "image": "\(definition.image)"])
            } catch {
                logger.error("VM did not start", metadata: ["vm.name": "\(status.name)", "error": "\(error)"])
            }
        }
    }

    /// Image versions pulled or being pulled since this Engine started, with their progress.
    public nonisolated var updates: [ImageUpdate] { shared.updates() }

    /// Waits until every pull under way has ended (for tests and the demo).
    public func waitForPulls() async {
        while let (_, task) = pulls.first {
            await task.value
        }
    }

    private func isInstalled(_ image: ImageReference) -> Bool {
        FileManager.default.fileExists(atPath: layout.imageDisk(image))
    }

    private func installedVersions(of name: String) -> [ImageReference] {
        ImageStore(root: URL(fileURLWithPath: "\(layout.root)/images")).installed()
            .filter { $0.name == name }.sorted { $0.pulled < $1.pulled }
            .map { ImageReference(name: $0.name, version: $0.version) }
    }

    private func parse(_ text: String) -> ImageReference? {
        let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
        return parts.count == 2 ? ImageReference(name: parts[0], version: parts[1]) : nil
    }

    private func startPull(_ image: ImageReference) {
        guard pulls[image] == nil else { return }
        shared.setUpdate(ImageUpdate(image: image.description, state: .pulling))
        pulls[image] = Task { [weak self] in
            guard let self else { return }
            let outcome = await self.pull(image)
            await self.pullEnded(image, outcome)
        }
    }

    private func pullEnded(_ image: ImageReference, _ outcome: Result<PullResult, Error>) async {
        pulls[image] = nil
        switch outcome {
        case .success(let result):
            // The Center hears of the new version at once, not at the next interval. (A failure
            // waits for it: the retry comes with that check-in, not in a tight loop.)
            defer { nudged = true }
            // Every VM's own user must read the gold image; nothing writes it (overlays do).
            for folder in ["\(layout.root)/images", "\(layout.root)/images/\(image.name)", layout.imageDirectory(image)] {
                chmod(folder, 0o755)
            }
            chmod(layout.imageDisk(image), 0o444)
            shared.setUpdate(ImageUpdate(image: image.description, state: .ready, bytesFetched: result.bytesFetched,
                                         bytesToFetch: result.bytesFetched, virtualSize: result.virtualSize))
            logger.info("image pulled", metadata: ["image": "\(image)", "bytes.fetched": "\(result.bytesFetched)", "bytes.local": "\(result.bytesFromLocal)"])
            // The VMs on this image switch at their next boot; those not started yet start now.
            do { try await apply(desired) } catch {
                logger.error("could not apply the desired state after a pull", metadata: ["error": "\(error)"])
            }
        case .failure(let error):
            var update = shared.update(for: image.description) ?? ImageUpdate(image: image.description, state: .failed)
            update.state = .failed
            update.error = "\(error)"
            shared.setUpdate(update)
            logger.error("image pull failed; it resumes at the next check-in", metadata: ["image": "\(image)", "error": "\(error)"])
        }
    }

    /// Pulls one version from the Center's repository: by delta against every version here,
    /// resumable, every block checked against the signed index.
    private nonisolated func pull(_ image: ImageReference) async -> Result<PullResult, Error> {
        do {
            let anchor = URL(fileURLWithPath: EngineIdentity.repositoryRoot(layout))
            if !FileManager.default.fileExists(atPath: anchor.path) {
                // Pinned on first use, fetched over the mutually authenticated channel to the
                // Center whose CA the admin pinned at enrollment.
                guard let root = try await client.repositoryFile(RepositoryLayout.root(1), maxLength: 512 << 10) else {
                    throw ManagementError.center(status: 404, message: "the Center serves no image repository yet (no \(RepositoryLayout.root(1))); publish an image into it")
                }
                try DurableFile.write(root, to: anchor.path, mode: 0o644)
            }
            var limits = TransferLimits()
            limits.bandwidthLimit = options.bandwidthLimit
            let transport = HTTPTransport(baseURL: "\(identity.center)/repository", limits: limits, tls: client.tls)
            let store = ImageStore(root: URL(fileURLWithPath: "\(layout.root)/images"))
            let trusted = try TrustedRepository(transport: transport, pinnedRoot: anchor,
                                                stateDirectory: store.trustDirectory(anchor: try Data(contentsOf: anchor)), now: options.now)
            let puller = Puller(repository: trusted, store: store)
            let shared = shared
            puller.progress = { progress in
                shared.setUpdate(ImageUpdate(image: image.description, state: .pulling, bytesFetched: progress.bytesFetched,
                                             bytesToFetch: progress.bytesToFetch))
            }
            do {
                let result = try await puller.pull(name: image.name, version: image.version)
                await transport.shutdown()
                return .success(result)
            } catch {
                await transport.shutdown()
                throw error
            }
        } catch {
            return .failure(error)
        }
    }

    // MARK: Commands

    /// Carries out one command and reports how it went. A command seen before is only reported
    /// again: redelivery (a lost answer) does no harm.
    func carryOut(_ command: DeviceCommand) async {
        if let done = handled[command.id] {
            try? await client.report(command: command.id, done)
            return
        }
        try? await client.report(command: command.id, CommandReport(state: .acknowledged, result: nil))
        let report: CommandReport
        do {
            report = CommandReport(state: .completed, result: try await execute(command))
        } catch {
            report = CommandReport(state: .failed, result: "\(error)")
        }
        logger.notice("command carried out", metadata: ["command": "\(command.id)", "kind": "\(command.kind.rawValue)", "state": "\(report.state.rawValue)"])
        handled[command.id] = report
        if handled.count > 500, let oldest = handled.keys.sorted().first { handled[oldest] = nil }
        try? DurableFile.write(try JSONEncoder().encode(handled), to: "\(layout.root)/commands.json")
        do { try await client.report(command: command.id, report) } catch {
            logger.warning("could not report a command; the Center delivers it again and the report is repeated then",
                           metadata: ["command": "\(command.id)", "error": "\(error)"])
        }
    }

    private func execute(_ command: DeviceCommand) async throws -> String {
        switch command.kind {
        case .lock:
            let stopped = try await engine.lock(reason: "command \(command.id)")
            return "locked; stopped \(stopped.isEmpty ? "no VM" : stopped.joined(separator: ", "))"
        case .unlock:
            try await engine.unlock()
            autostarted.removeAll()
            return "unlocked"
        case .wipe:
            let wipe = try await engine.wipe(role: .work, command: command.id, nonce: nonce.map(EventLog.bytes(hex:)))
            try await engine.lock(reason: "wiped by command \(command.id)")
            let receipt = WipeReceipt(deviceID: identity.deviceID, command: command.id, wipedAt: lease.now(), vms: wipe.vms,
                                  bytes: wipe.vms.reduce(0) { $0 + $1.bytes },
                                  method: "work VMs stopped; \(wipe.method); the device locked", evidence: wipe.evidence)
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: try encoder.encode(receipt), as: UTF8.self)
        case .restartVM:
            guard let vm = command.vm else { throw ManagementError.badCenter("restartVM names no VM") }
            try await engine.restart(vm)
            return "\(vm) restarted"
        case .resetPersonalVM:
            let personal = await engine.definedVMs.filter { $0.role == .personal && (command.vm == nil || $0.name == command.vm) }
            guard !personal.isEmpty else { throw ManagementError.badCenter("this device has no personal VM\(command.vm.map { " named \($0)" } ?? "")") }
            for definition in personal {
                let wasRunning = try await engine.status().first { $0.name == definition.name }.map { [.running, .starting].contains($0.phase) } ?? false
                try await engine.stop(definition.name)
                try await engine.reset(definition.name)
                if wasRunning { try await engine.start(definition.name) }
            }
            return "reset \(personal.map(\.name).joined(separator: ", ")): local and user disks new"
        case .collectDiagnostics:
            let bundle = try await Diagnostics.collect(engine: engine, layout: layout, lease: "\(lease.standing)", updates: shared.updates(), now: lease.now())
            let kept = try await client.uploadDiagnostics(command: command.id, bundle)
            return "uploaded \(bundle.files.count) files (\(kept) bytes); read them with hearth admin diagnostics \(command.id)\n\(bundle.summary)"
        }
    }
}

/// What the Engine reports for a wipe (the command's result, kept in the Center's audit log).
public struct WipeReceipt: Codable, Sendable, Equatable {
    public var deviceID: String
    public var command: String
    public var wipedAt: Date
    public var vms: [Engine.WipedVM]
    public var bytes: UInt64
    public var method: String
    /// The TPM's quote of the wipe, which the Center verifies (with a TPM).
    public var evidence: WipeEvidence?
}

/// The Center client, replaced at certificate renewal, read from outside the actor by pulls.
final class ClientBox: @unchecked Sendable {
    // @unchecked: `client` is behind `lock`.
    private let lock = NSLock()
    private var client: CenterClient

    init(_ client: CenterClient) { self.client = client }
    var value: CenterClient { lock.withLock { client } }
    /// Puts `new` in place and returns the client it replaced (to shut down).
    func swap(_ new: CenterClient) -> CenterClient { lock.withLock { defer { client = new }; return client } }
}

/// State the Engine's start gate and pull progress read from outside the actor.
final class Shared: @unchecked Sendable {
    // @unchecked: every field is behind `lock`.
    private let lock = NSLock()
    private var policies: [String: EffectivePolicy] = [:]
    private var imageUpdates: [String: ImageUpdate] = [:]

    func policy(for vm: String) -> EffectivePolicy? { lock.withLock { policies[vm] } }
    func setPolicies(_ value: [String: EffectivePolicy]) { lock.withLock { policies = value } }
    func update(for image: String) -> ImageUpdate? { lock.withLock { imageUpdates[image] } }
    func setUpdate(_ update: ImageUpdate) { lock.withLock { imageUpdates[update.image] = update } }
    func updates() -> [ImageUpdate] { lock.withLock { imageUpdates.values.sorted { $0.image < $1.image } } }
}
