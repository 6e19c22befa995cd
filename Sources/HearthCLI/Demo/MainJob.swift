import Foundation
import GuestKit
import HearthCenter
import HearthCore
import HearthEngine
import ImageSync
import Logging
import NIOHTTP1
import QMP
import TPM

/// Hearth's main job, end to end on embedded defaults: a Center with its owner, a gold image
/// built from Debian packages and published, a user with a work and a personal desktop under a
/// policy, an Engine that enrolls and runs them, an update by delta, a lease that runs out, and a
/// remote wipe. Every part is the real one (the Center over HTTPS and SQLite, the Engine with
/// QEMU guests); what is simulated is only the passing of days, on a demo clock both share.
///
/// The admin's side goes through the Center's HTTP API, as `hearth admin` and the console do;
/// the Engine's side is the Engine's own check-in loop. `Options.fast` asks the Engine to check in
/// right after each admin change instead of waiting for its check-in interval; nothing else
/// differs.
final class MainJob {
    struct Options {
        var workDirectory: String
        var cacheDirectory: String = GuestKit.defaultCacheDirectory
        var accelerator: Accelerator = .tcg
        var bootTimeout: Duration = .seconds(180)
        var fast = false
        /// The check-in interval the demo's policy sets (the policy's smallest).
        var checkInInterval = 30
    }

    /// What the main job made and saw, for `--keep` and for the test that checks each step
    /// through the Center's API and the Engine's state.
    struct Outcome {
        var center: RunningCenter
        var base: String
        var caPEM: String
        var caPath: String
        var passwordFile: String
        var owner: AdminAPI
        var engine: Engine
        var zone: ManagementZone
        var loop: Task<Void, Never>
        var layout: EngineLayout
        var deviceID: String
        /// What each VM's probe reported in its first boot, and the work VM's after the update.
        var firstBoot: [String: [String: String]]
        var afterUpdate: [String: String]
        var v1: ImageUpdate
        var v2: ImageUpdate
        /// What the Engine said when the work VM was started with its lease run out.
        var leaseRefusal: String
        var wipeCommand: String
        var receipt: WipeReceipt
        /// The Center's verdict on the Engine's measured start as step 4 saw it (a check-in after the
        /// wipe turns it into "work key erased by a wipe"), and on the wipe's TPM evidence.
        var measurementVerdict: String
        var receiptVerdict: String
        var softwareTPM: SoftwareTPM?

        /// Stops the Engine's loop, its VMs, the Center and the software TPM.
        func finish() async {
            loop.cancel()
            for vm in (try? await engine.status()) ?? [] { try? await engine.stop(vm.name) }
            await center.shutdown()
            softwareTPM?.stop()
        }
    }

    static let imageName = "desktop"
    static let user = "alice"
    static let group = "staff"
    static let leaseDays = 14

    let options: Options
    let narrator: Narrator
    let clock = DemoClock()
    private let centerLog: FileLogHandler.Sink
    private let engineLog: FileLogHandler.Sink
    private var work: String { options.workDirectory }
    private var engineLayout: EngineLayout { EngineLayout(root: "\(work)/engine") }

    /// Parts started so far, stopped by `abandon()` when a step fails.
    private var running: RunningCenter?
    private var engine: Engine?
    private var loop: Task<Void, Never>?
    private var softwareTPM: SoftwareTPM?

    init(options: Options, narrator: Narrator) throws {
        self.options = options
        self.narrator = narrator
        centerLog = try FileLogHandler.Sink(path: "\(options.workDirectory)/center.log")
        engineLog = try FileLogHandler.Sink(path: "\(options.workDirectory)/engine.log")
    }

    /// Where to look when a step fails.
    var logs: String {
        "\(centerLog.path) (Center), \(engineLog.path) (Engine), \(engineLayout.root)/run/VM/{qemu,console}.log (each VM)"
    }

    /// Stops whatever was started, after a failure.
    func abandon() async {
        loop?.cancel()
        if let engine {
            for vm in (try? await engine.status()) ?? [] { try? await engine.stop(vm.name) }
        }
        await running?.shutdown()
        softwareTPM?.stop()
    }

    // MARK: The story

    func run() async throws -> Outcome {
        // 1. The Center and its admins.
        let passwordFile = "\(work)/owner-password"
        let (center, first, owner, approver) = try await narrator.step("Starting a Center (SQLite, its own CA) with its owner and a second admin") {
            let (center, first) = try await startCenter(port: 0)
            running = center
            let base = "https://127.0.0.1:\(center.port)", caPEM = center.center.ca.pem
            guard let oneTime = first.ownerPassword else { throw MainJobError.setUp("the Center made no owner: its data folder was not new") }
            // The owner's one-time password is changed at first login, as the Center demands.
            let password = Self.newPassword()
            guard FileManager.default.createFile(atPath: passwordFile, contents: Data("\(password)\n".utf8), attributes: [.posixPermissions: 0o600]) else {
                throw MainJobError.setUp("cannot write \(passwordFile)")
            }
            let owner = try await AdminAPI.login(base: base, caPEM: caPEM, "owner", oneTime, newPassword: password)
            // A wipe needs a second admin's approval.
            let approverPassword = Self.newPassword()
            try await owner.send(.POST, "/api/v1/admins", ["username": "approver", "password": approverPassword, "role": "operator"])
            let approver = try await AdminAPI.login(base: base, caPEM: caPEM, "approver", approverPassword, newPassword: Self.newPassword())
            return ((center, first, owner, approver),
                    "\(base), CA fingerprint \(first.caFingerprint.prefix(23))…; admins owner (password in \(passwordFile)) and approver (operator)")
        }
        let base = "https://127.0.0.1:\(center.port)"
        let caPEM = center.center.ca.pem

        // 2. Gold image v1, built from Debian packages and published.
        let kit: GuestKit = try await narrator.step("Building gold image v1 from Debian packages and publishing it") {
            let (kit, provenance) = try GuestKit.prepare(cacheDirectory: options.cacheDirectory) { narrator.detail($0) }
            let publisher = Publisher(repository: URL(fileURLWithPath: "\(work)/center/repository"),
                                      keys: KeyStore(directory: URL(fileURLWithPath: "\(work)/keys")))
            _ = try publisher.initialize()
            let disk = try makeVersion(of: kit, release: "\(Self.imageName) 1", at: "\(work)/\(Self.imageName)-1.img")
            let published = try publisher.publish(disk: disk, name: Self.imageName, version: "1")
            try await owner.send(.POST, "/api/v1/images", ["name": Self.imageName])
            try await owner.send(.POST, "/api/v1/images/\(Self.imageName)/versions", ["version": "1"])
            try await owner.send(.PUT, "/api/v1/images/\(Self.imageName)/channels/stable", ["version": "1"])
            return (kit, "\(provenance == .cached ? "reused the" : "built a") kit with kernel \(kit.kernelRelease); \(Self.imageName)@1 published "
                    + "(\(ByteFormat.string(published.info.virtualSize)) disk, \(published.newBlocks) blocks, \(ByteFormat.string(published.newBytes)) compressed) on channel stable")
        }

        // 3. Who gets which desktop, under which rules.
        try await narrator.step("Defining user \(Self.user), group \(Self.group), a work and a personal desktop, and a policy") {
            try await owner.send(.POST, "/api/v1/users", ["username": Self.user, "displayName": "Alice Example"])
            try await owner.send(.POST, "/api/v1/groups", ["name": Self.group])
            try await owner.send(.PUT, "/api/v1/groups/\(Self.group)/members/\(Self.user)")
            // Internet-only is enforced by the host's firewall for the VM's own QEMU user, which
            // takes root; a demo run by an ordinary user gives the personal desktop full access.
            let personalNetwork = getuid() == 0 ? "internet" : "full"
            for (name, role, network) in [("work", "work", "none"), ("personal", "personal", personalNetwork)] {
                try await owner.send(.POST, "/api/v1/vms", DesktopBody(name: name, role: role, image: Self.imageName, channel: "stable", cpus: 1,
                                                                       memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 64 << 20, network: network))
                try await owner.send(.PUT, "/api/v1/vms/\(name)/assignments/group/\(Self.group)")
            }
            try await owner.send(.PUT, "/api/v1/policies/group:\(Self.group)", Policy(leaseDays: Self.leaseDays, checkInIntervalSeconds: options.checkInInterval,
                                                                                      usbClasses: ["hid"], backupSchedule: "daily"))
            try await owner.send(.PUT, "/api/v1/policies/vm:work", Policy(network: VMDefinition.NetworkMode.none))
            return ((), "work (no network) and personal (\(personalNetwork == "internet" ? "internet only" : "full network: internet-only needs root")) assigned to \(Self.group); lease \(Self.leaseDays) days, check-in every \(options.checkInInterval) s")
        }

        // 4. The Engine enrolls, pulls v1 and boots both desktops.
        let layout = engineLayout
        let (theEngine, zone, deviceID, firstBoot, measurementVerdict) = try await narrator.step("Enrolling an Engine; it pulls \(Self.imageName)@1 and boots both desktops, whose probes write the user's files") {
            let token = try await owner.decode(TokenAnswer.self, .POST, "/api/v1/enrollment-tokens", ["user": Self.user]).secret
            let (identity, files) = try await EngineIdentity.enroll(center: base, caPEM: caPEM, token: token, deviceName: "\(Self.user)-laptop", layout: layout)
            let engine = try await makeEngine(kit: kit, layout: layout)
            self.engine = engine
            var zoneOptions = ManagementZone.Options()
            zoneOptions.now = { [clock] in clock.now }
            zoneOptions.virtualization = options.accelerator == .kvm ? "kvm" : "tcg"
            let zone = try await ManagementZone(engine: engine, identity: identity, files: files, options: zoneOptions,
                                                logger: FileLogHandler.logger("hearth.engine.management", to: engineLog))
            loop = Task { await zone.run() }
            try await showPull(of: "\(Self.imageName)@1", zone: zone)
            var reports: [String: [String: String]] = [:]
            for vm in ["work", "personal"] {
                reports[vm] = try await probeReport(vm, engine: engine)
            }
            // The Center hears of both at the next check-in.
            try await nudge(zone, "to report both desktops running")
            try await until("the Center sees both desktops running on device \(identity.deviceID)", timeout: interval) {
                let device = try await owner.decode(Device.self, .GET, "/api/v1/devices/\(identity.deviceID)")
                return device.status?.vms.filter { $0.state == "running" }.count == 2
            }
            let device = try await owner.decode(Device.self, .GET, "/api/v1/devices/\(identity.deviceID)")
            let security: String
            if engine.security.encryptsDisks {
                guard engine.security.standing == .secure, device.measurementVerdict?.hasPrefix("approved") == true else {
                    throw MainJobError.outcome("the security zone is \(engine.security.standing.report) (\(engine.security.standing.reason ?? "")); the Center says: \(device.measurementVerdict ?? "nothing")")
                }
                security = "; measured start \(device.measurementVerdict ?? ""), disks encrypted with TPM-sealed keys"
            } else {
                security = "; no TPM: disks not encrypted"
            }
            return ((engine, zone, identity.deviceID, reports, device.measurementVerdict ?? "none"),
                    "device \(identity.deviceID.prefix(8))… enrolled; both desktops run \(Self.imageName)@1; the user's file says: \(reports["work"]?["user"] ?? "?")\(security)")
        }

        // 5. v2: only the delta crosses the network; the work VM restarts into it, files intact.
        let (v1, v2, afterUpdate) = try await narrator.step("Publishing \(Self.imageName)@2; the Engine pulls only the delta and the work desktop restarts into it") {
            let publisher = Publisher(repository: URL(fileURLWithPath: "\(work)/center/repository"),
                                      keys: KeyStore(directory: URL(fileURLWithPath: "\(work)/keys")))
            let disk = try makeVersion(of: kit, release: "\(Self.imageName) 2", at: "\(work)/\(Self.imageName)-2.img")
            _ = try publisher.publish(disk: disk, name: Self.imageName, version: "2")
            try await owner.send(.POST, "/api/v1/images/\(Self.imageName)/versions", ["version": "2"])
            try await owner.send(.PUT, "/api/v1/images/\(Self.imageName)/channels/stable", ["version": "2"])
            try await nudge(zone, "to hear of \(Self.imageName)@2")
            try await showPull(of: "\(Self.imageName)@2", zone: zone)
            let restart = try await owner.decode(CommandRecord.self, .POST, "/api/v1/devices/\(deviceID)/commands", ["kind": "restartVM", "vm": "work"])
            try await nudge(zone, "to receive the admin's restart of the work desktop")
            try await waitForCommand(restart.id, device: deviceID, owner: owner)
            let report = try await probeReport("work", engine: theEngine)
            guard report["release"] == "\(Self.imageName) 2" else {
                throw MainJobError.outcome("the work desktop restarted on '\(report["release"] ?? "?")', not \(Self.imageName) 2")
            }
            guard report["user"] == firstBoot["work"]?["user"] else {
                throw MainJobError.outcome("the user's file changed across the update: '\(report["user"] ?? "none")'")
            }
            guard let v1 = zone.updates.first(where: { $0.image == "\(Self.imageName)@1" }),
                  let v2 = zone.updates.first(where: { $0.image == "\(Self.imageName)@2" }) else {
                throw MainJobError.outcome("the Engine reports no pull of \(Self.imageName)@1 and @2")
            }
            return ((v1, v2, report),
                    "moved \(ByteFormat.string(v2.bytesFetched)) for a \(ByteFormat.string(v2.virtualSize)) image (v1 took \(ByteFormat.string(v1.bytesFetched))); "
                    + "work runs \(Self.imageName) 2 and the user's file is intact")
        }

        // 6. Offline past the lease: the work desktop refuses; a check-in renews the lease.
        let (leaseRefusal, restarted) = try await narrator.step("Going offline for \(Self.leaseDays + 1) days on the demo clock; the lease runs out, then a check-in renews it") {
            await center.shutdown()
            running = nil
            clock.advance(days: Self.leaseDays + 1)
            try await theEngine.stop("work")
            var refusal = ""
            do {
                try await theEngine.start("work")
                throw MainJobError.outcome("the work desktop started with its lease run out")
            } catch let error as MainJobError {
                throw error
            } catch {
                refusal = "\(error)"
            }
            guard refusal.contains("lease") else { throw MainJobError.outcome("the work desktop did not start, but not for its lease: \(refusal)") }
            try await theEngine.restart("personal")
            narrator.detail("the work desktop refuses: \(refusal)")
            narrator.detail("the personal desktop still starts (the lease binds only the work desktop)")
            let (restarted, _) = try await startCenter(port: center.port)
            running = restarted
            try await nudge(zone, "now that the Center is back (offline it retries with backoff)")
            try await until("a check-in renews the lease", timeout: interval) {
                if case .valid = zone.lease.standing { return true }
                return false
            }
            try await theEngine.start("work")
            return ((refusal, restarted), "back online: lease \(zone.lease.standing); the work desktop starts again")
        }
        let ownerAgain = try await owner.again()
        let approverAgain = try await approver.again()

        // 7. A remote wipe, approved by a second admin, with its receipt in the audit log.
        let (wipeCommand, receipt, receiptVerdict) = try await narrator.step("Wiping the device remotely: the owner asks, the approver approves, the Engine reports a receipt the Center verifies") {
            let wipe = try await ownerAgain.decode(CommandRecord.self, .POST, "/api/v1/devices/\(deviceID)/commands", ["kind": "wipe"])
            guard wipe.state == .awaitingApproval else { throw MainJobError.outcome("a wipe did not wait for a second admin (\(wipe.state.rawValue))") }
            try await approverAgain.send(.POST, "/api/v1/commands/\(wipe.id)/approve")
            try await nudge(zone, "to receive the approved wipe")
            try await waitForCommand(wipe.id, device: deviceID, owner: ownerAgain)
            let audit = try await ownerAgain.decode([AuditEntry].self, .GET, "/api/v1/audit?action=command.completed&target=device:\(deviceID)")
            guard let entry = audit.first(where: { $0.after?.contains(wipe.id) == true }), let after = entry.after else {
                throw MainJobError.outcome("the audit log holds no receipt for wipe \(wipe.id)")
            }
            let receipt = try Self.receipt(in: after, command: wipe.id, device: deviceID)
            let stillThere = receipt.vms.flatMap(\.files).filter { FileManager.default.fileExists(atPath: $0) }
            guard receipt.vms.map(\.name) == ["work"], stillThere.isEmpty else {
                throw MainJobError.outcome("the receipt names \(receipt.vms.map(\.name)) and these files are still there: \(stillThere)")
            }
            guard await theEngine.lockReason != nil else { throw MainJobError.outcome("the device is not locked after the wipe") }
            let disks = receipt.vms.flatMap(\.files).filter { $0.hasSuffix(".qcow2") }.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
            let checks = try await ownerAgain.decode([AuditEntry].self, .GET, "/api/v1/audit?action=device.wipe.receipt&target=device:\(deviceID)")
            guard let check = checks.first(where: { $0.after?.contains(wipe.id) == true }), let checked = check.after,
                  let verdict = (try? JSONDecoder().decode([String: String].self, from: Data(checked.utf8)))?["verdict"] else {
                throw MainJobError.outcome("the Center recorded no verdict on the receipt of wipe \(wipe.id)")
            }
            if theEngine.security.encryptsDisks, !verdict.hasPrefix("verified") {
                throw MainJobError.outcome("the Center did not verify the wipe's TPM evidence: \(verdict)")
            }
            narrator.detail("keys: \(receipt.method)")
            return ((wipe.id, receipt, verdict), "the work desktop's disks (\(disks.sorted().joined(separator: ", ")); \(ByteFormat.string(receipt.bytes))) and logs are gone, "
                    + "the device is locked, the receipt is audit entry #\(entry.seq) and the Center's check of it #\(check.seq): \(verdict)")
        }

        return Outcome(center: restarted, base: base, caPEM: caPEM, caPath: first.caCertificatePath, passwordFile: passwordFile,
                       owner: ownerAgain, engine: theEngine, zone: zone, loop: loop!, layout: layout, deviceID: deviceID,
                       firstBoot: firstBoot, afterUpdate: afterUpdate, v1: v1, v2: v2, leaseRefusal: leaseRefusal,
                       wipeCommand: wipeCommand, receipt: receipt,
                       measurementVerdict: measurementVerdict,
                       receiptVerdict: receiptVerdict, softwareTPM: softwareTPM)
    }

    // MARK: Parts

    private func startCenter(port: Int) async throws -> (RunningCenter, FirstStart) {
        var configuration = CenterConfiguration(dataDirectory: URL(fileURLWithPath: "\(work)/center"))
        configuration.port = port
        configuration.now = { [clock] in clock.now }
        let (center, first) = try await Center.prepare(configuration, logger: FileLogHandler.logger("hearth.center", to: centerLog))
        return (try await center.start(), first)
    }

    private func makeEngine(kit: GuestKit, layout: EngineLayout) async throws -> Engine {
        let boot = GuestBoot(kernel: kit.kernel, initrd: kit.initramfs, commandLine: "console=ttyS0 loglevel=4 panic=-1 hearth.root=system",
                             bootMarker: GuestKit.bootMarker, bootTimeout: options.bootTimeout)
        // The demo machine has no TPM: a software one (swtpm, on loopback) stands in, so the
        // security zone is the real one. Without swtpm, the Engine's insecure development mode.
        let security: SecurityZone
        if SoftwareTPM.installed {
            let tpm = try SoftwareTPM(state: "\(work)/swtpm")
            softwareTPM = tpm
            security = SecurityZone(mode: .tpm(tcti: tpm.tcti), root: layout.root,
                                    logger: FileLogHandler.logger("hearth.engine.security", to: engineLog))
        } else {
            narrator.detail("swtpm is not installed (scripts/setup-host run installs it): the Engine runs without a TPM, in its insecure development mode")
            security = SecurityZone(mode: .insecureDevelopment, root: layout.root)
        }
        let engine = try Engine(layout: layout, boot: boot, accelerator: options.accelerator, security: security,
                                logger: FileLogHandler.logger("hearth.engine", to: engineLog))
        // The user's stand-in: a probe in each desktop that mounts its local and user disks
        // (formatting them on first use), writes the user's file once, and reports what it sees.
        let probes = "\(work)/probes"
        try FileManager.default.createDirectory(atPath: probes, withIntermediateDirectories: true)
        for vm in ["work", "personal"] {
            try (GuestKit.probeMountingEngineDisks + """
            [ -f /mnt/user/notes.txt ] || echo "\(Self.user)'s \(vm) notes, written on $(cat /etc/hearth-release)" > /mnt/user/notes.txt
            echo "user=$(cat /mnt/user/notes.txt)"
            echo "release=$(cat /etc/hearth-release)"
            umount /mnt/local /mnt/user
            sync
            """).write(toFile: "\(probes)/\(vm).sh", atomically: true, encoding: .utf8)
        }
        await engine.setFirmwareProvider { definition in
            [.init(name: GuestKit.probeFirmwareName, path: "\(probes)/\(definition.name).sh")]
        }
        return engine
    }

    /// A version of the gold image: the kit's root disk with its own `/etc/hearth-release`.
    private func makeVersion(of kit: GuestKit, release: String, at path: String) throws -> String {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: kit.rootDisk, toPath: path)
        try GuestKit.writeFile(Data("\(release)\n".utf8), to: "/etc/hearth-release", inDisk: path)
        return path
    }

    /// How long an Engine may take to act on a change it has not been nudged about.
    private var interval: Duration { .seconds(options.checkInInterval * 2 + 30) }

    /// In fast mode the Engine checks in now; otherwise it does at its interval.
    private func nudge(_ zone: ManagementZone, _ purpose: String) async throws {
        if options.fast {
            await zone.checkInSoon()
        } else {
            narrator.detail("waiting for the Engine's next check-in \(purpose) (every \(options.checkInInterval) s; --fast asks it at once)")
        }
    }

    /// Shows the pull's progress until the version is on the machine.
    private func showPull(of image: String, zone: ManagementZone) async throws {
        let bar = ProgressBar("      pulling \(image)")
        defer { bar.finish() }
        try await until("the Engine pulls \(image)", timeout: interval + .seconds(600)) {
            guard let update = zone.updates.first(where: { $0.image == image }) else { return false }
            switch update.state {
            case .pulling:
                bar.update(update.bytesFetched, of: max(update.bytesToFetch, update.bytesFetched))
                return false
            case .ready:
                bar.update(update.bytesFetched, of: update.bytesFetched)
                return true
            case .failed:
                throw MainJobError.outcome("the pull of \(image) failed: \(update.error ?? "no reason given")")
            }
        }
    }

    /// What the probe printed in the VM's current boot.
    /// A VM that failed to start ends the wait with the Engine's reason.
    private func probeReport(_ vm: String, engine: Engine) async throws -> [String: String] {
        var report: ProbeReport?
        try await until("the \(vm) desktop boots and its probe reports", timeout: options.bootTimeout + .seconds(60)) {
            report = ProbeReport.parse(console: ConsoleLog(path: engineLayout.vm(vm).consoleLog).contents())
            if report == nil, let status = try await engine.status().first(where: { $0.name == vm }), status.phase == .failed {
                throw MainJobError.outcome("the \(vm) desktop did not start: \(status.lastFailure ?? "the Engine gives no reason")")
            }
            return report != nil
        }
        guard let report, report.status == 0 else {
            throw MainJobError.outcome("the probe in the \(vm) desktop failed: \(report?.lines.suffix(3).joined(separator: " | ") ?? "")")
        }
        return Dictionary(report.lines.compactMap { line in
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            return parts.count == 2 ? (parts[0], parts[1]) : nil
        }, uniquingKeysWith: { $1 })
    }

    private func waitForCommand(_ id: String, device: String, owner: AdminAPI) async throws {
        try await until("the Engine carries out command \(id)", timeout: interval) {
            let commands = try await owner.decode([CommandRecord].self, .GET, "/api/v1/devices/\(device)/commands")
            guard let command = commands.first(where: { $0.id == id }) else { return false }
            switch command.state {
            case .completed: return true
            case .failed, .cancelled: throw MainJobError.outcome("command \(command.kind.rawValue) ended \(command.state.rawValue): \(command.result ?? "")")
            default: return false
            }
        }
    }

    /// Polls `condition` until it holds, or fails naming what did not happen.
    private func until(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await condition() { return }
            guard ContinuousClock.now < deadline else { throw MainJobError.timedOut(what, timeout) }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    static func receipt(in auditAfter: String, command: String, device: String) throws -> WipeReceipt {
        // The audit entry holds the command's report; its result is the receipt, as JSON text.
        struct Report: Decodable { let result: String? }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let text = (try? decoder.decode(Report.self, from: Data(auditAfter.utf8)))?.result ?? auditAfter
        guard let receipt = try? decoder.decode(WipeReceipt.self, from: Data(text.utf8)) else {
            throw MainJobError.outcome("the wipe's audit entry holds no readable receipt: \(auditAfter.prefix(200))")
        }
        guard receipt.command == command, receipt.deviceID == device else {
            throw MainJobError.outcome("the receipt is for command \(receipt.command) on device \(receipt.deviceID), not \(command) on \(device)")
        }
        return receipt
    }

    static func newPassword() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return String((0..<20).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
    }

    struct TokenAnswer: Decodable { let secret: String }

    struct DesktopBody: Encodable {
        let name, role, image, channel: String
        let cpus, memoryMiB: Int
        let localDiskBytes, userDiskBytes: UInt64
        let network: String
    }
}

/// The time the Center and the Engine both read in the main job, moved on by whole days.
final class DemoClock: @unchecked Sendable {
    // @unchecked: `offset` is behind `lock`.
    private let lock = NSLock()
    private var offset: TimeInterval = 0

    var now: Date { lock.withLock { Date().addingTimeInterval(offset) } }

    func advance(days: Int) {
        lock.withLock { offset += Double(days) * 86_400 }
    }
}

enum MainJobError: Error, CustomStringConvertible {
    case setUp(String)
    case outcome(String)
    case timedOut(String, Duration)

    var description: String {
        switch self {
        case .setUp(let message): "cannot set up the demo: \(message)"
        case .outcome(let message): message
        case .timedOut(let what, let timeout): "gave up waiting after \(Narrator.format(timeout)): \(what)"
        }
    }
}
