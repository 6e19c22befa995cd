import Crypto
import Foundation
import GuestKit
@testable import HearthCLI
import HearthCore
import HearthEngine
import Logging
import NIOConcurrencyHelpers
import NIOHTTP1
import QMP
import Testing
import TestSupport
import TPM
import TPMPolicy

extension VMSuites {
    /// The security zone with real guests and a real (software) TPM: disks encrypted with keys
    /// sealed to the measured start, tamper, and wipe by crypto-erase.
    @Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: SoftwareTPM.binary), "needs swtpm (scripts/setup-host test)"))
    struct SecurityZoneTests {
        /// Every log line at every level, to look for secrets in.
        final class CapturedLog: @unchecked Sendable {
            let lines = NIOLockedValueBox<[String]>([])
            var logger: Logger {
                Logger(label: "hearth.engine") { label in Handler(label: label, log: self) }
            }

            struct Handler: LogHandler {
                let label: String
                let log: CapturedLog
                var logLevel: Logger.Level = .trace
                var metadata: Logger.Metadata = [:]
                subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                    get { metadata[key] }
                    set { metadata[key] = newValue }
                }
                func log(event: LogEvent) {
                    let line = "\(event.level) \(label): \(event.message) \(metadata.merging(event.metadata ?? [:]) { $1 })"
                    log.lines.withLockedValue { $0.append(line) }
                }
            }
        }

        static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

        /// Whether `needle` occurs in any file under `folder` (following no links).
        static func files(under folder: String, containing needles: [[UInt8]]) -> [String] {
            var found: [String] = []
            let enumerator = FileManager.default.enumerator(atPath: folder)
            while let relative = enumerator?.nextObject() as? String {
                let path = "\(folder)/\(relative)"
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                      (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) == nil,
                      let data = FileManager.default.contents(atPath: path) else { continue }
                let bytes = [UInt8](data)
                if needles.contains(where: { bytes.contains(subsequence: $0) }) { found.append(relative) }
            }
            return found
        }

        @Test func workDisksAreEncryptedWithSealedKeysTamperKeepsWorkOffAndAWipeErasesForGood() async throws {
            let fixture = try EngineTests.Fixture()
            var swtpm = try SoftwareTPM()
            defer { swtpm.stop() }
            let log = CapturedLog()
            let centerKey = P256.Signing.PrivateKey() // stands in for the Center's policy key
            let authority = PolicyAuthority(publicKey: centerKey.publicKey)
            var bootID = UUID().uuidString
            var commandLine = "console=ttyS0 loglevel=4 panic=-1 hearth.root=system"
            func engine() throws -> Engine {
                let boot = GuestBoot(kernel: fixture.kit.kernel, initrd: fixture.kit.initramfs, commandLine: commandLine,
                                     bootMarker: GuestKit.bootMarker, bootTimeout: BootTests.bootTimeout)
                let zone = SecurityZone(mode: .tpm(tcti: swtpm.tcti), root: fixture.root, bootID: bootID, logger: log.logger)
                let engine = try Engine(layout: fixture.layout, boot: boot, accelerator: AcceleratorProbe.probe().accelerator,
                                        security: zone, logger: log.logger)
                return engine
            }
            let probe = "\(fixture.probes)/probe.sh"
            try (GuestKit.probeMountingEngineDisks + """
            [ -f /mnt/user/notes.txt ] || echo "written at first boot" > /mnt/user/notes.txt
            echo "user=$(cat /mnt/user/notes.txt)"
            umount /mnt/local /mnt/user
            sync
            """).write(toFile: probe, atomically: true, encoding: .utf8)
            let firmware = [QEMUConfiguration.FirmwareFile(name: GuestKit.probeFirmwareName, path: probe)]
            let definitions = VMDefinitionList(vms: [
                VMDefinition(name: "work", role: .work, image: .init(name: "kit", version: "1"), cpus: 1, memoryMiB: 256,
                             localDiskBytes: 32 << 20, userDiskBytes: 64 << 20),
                VMDefinition(name: "personal", role: .personal, image: .init(name: "kit", version: "1"), cpus: 1, memoryMiB: 256,
                             localDiskBytes: 32 << 20, userDiskBytes: 64 << 20),
            ])
            let paths = fixture.layout.vm("work")

            // First start: measured, but the Center has not approved it: work stays off.
            var first: Engine? = try engine()
            let zone = first!.security
            try await first!.define(definitions)
            #expect(zone.standing.report == "unapproved")
            let measured = try #require(zone.eventLog)
            #expect(measured.events.map(\.component).starts(with: ["engine", "configuration", "qemu"]))
            #expect(measured.events.map(\.component).suffix(2) == ["kernel", "initramfs"])
            #expect(measured.replay() == (try TPM(tcti: swtpm.tcti).pcr(SecurityZone.pcr)), "the event log explains the PCR")
            await #expect { try await first!.start("work", firmwareFiles: firmware) } throws: { "\($0)".contains("no policy key from a Center") }

            // The Center's key is installed; the Center checks the log and signs the measurements.
            let request = try zone.trust(authority: authority)
            #expect(request.eventLog.replay() == request.pcrValue)
            let approved = try PolicyAuthority.sign(PolicyTerms(pcrs: [request.pcr], pcrValues: [request.pcrValue], counter: request.counter,
                                                                counterValue: request.counterValue, policyRef: request.policyRef), with: centerKey)
            try zone.install(approved)
            #expect(zone.standing == .secure)

            // The work VM boots from encrypted disks and writes the user's file.
            try await first!.start("work", firmwareFiles: firmware)
            #expect(try await ManagementTests.report(fixture.layout, "work")["user"] == "written at first boot")
            let pid = try #require(try await first!.status().first { $0.name == "work" }?.pid)
            let commandLineOfQEMU = String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self)
            try await first!.stop("work")
            for disk in [paths.systemDisk, paths.localDisk, paths.userDisk] {
                let info = try ExtendBootTests.tool("/usr/bin/qemu-img", ["info", "--output=json", disk])
                #expect(info.contains("\"encrypted\": true"), "\(disk) is encrypted")
            }
            // What the guest wrote is not in the file in clear.
            let userDisk = try #require(FileManager.default.contents(atPath: paths.userDisk))
            #expect(!userDisk.contains(subsequence: Array("written at first boot".utf8)), "the user's file is not readable in the disk file")

            // No key on QEMU's command line, in any log, or in plain text in any file.
            let keys = try ["local", "user"].map { try #require(try zone.diskKey(vm: "work", disk: $0, role: .work)) }
            let needles = keys + keys.map { Array(Self.hex($0).utf8) }
            #expect(!needles.contains { commandLineOfQEMU.utf8.contains(subsequence: $0) }, "no key on QEMU's command line")
            #expect(!log.lines.withLockedValue { $0 }.contains { line in needles.contains { line.utf8.contains(subsequence: $0) } }, "no key in the Engine's log")
            #expect(Self.files(under: fixture.root, containing: needles).isEmpty, "no key in any file under the Engine's root")

            // Restarted, it opens the same disks with the same sealed keys: the file is still there.
            try await first!.start("work", firmwareFiles: firmware)
            #expect(try await ManagementTests.report(fixture.layout, "work")["user"] == "written at first boot")
            await EngineTests.stopAll(first!)
            first = nil

            // Tamper: the Engine's configuration changes within the same boot. The change is
            // measured, the key stays sealed, work stays off and the reason names it; the
            // personal desktop (sealed to this TPM only) still starts.
            commandLine += " init=/bin/sh"
            let tampered = try engine()
            try await tampered.define(definitions)
            #expect(tampered.security.standing.report == "tampered")
            #expect(tampered.security.standing.reason?.contains("configuration") == true, "\(String(describing: tampered.security.standing.reason))")
            await #expect { try await tampered.start("work", firmwareFiles: firmware) } throws: { "\($0)".contains("software was changed") }
            #expect(try await tampered.status().first { $0.name == "work" }?.blocked?.contains("configuration") == true)
            try await tampered.start("personal", firmwareFiles: firmware)
            #expect(try await ManagementTests.report(fixture.layout, "personal")["user"] == "written at first boot")
            await EngineTests.stopAll(tampered)

            // Reboot with the approved software: approved again, no new signature needed.
            commandLine = "console=ttyS0 loglevel=4 panic=-1 hearth.root=system"
            bootID = UUID().uuidString
            let state = swtpm.state
            swtpm.powerOff()
            swtpm = try SoftwareTPM(state: state)
            let rebooted = try engine()
            try await rebooted.define(definitions)
            #expect(rebooted.security.standing == .secure, "\(String(describing: rebooted.security.standing.reason))")

            // Wipe: with every file of the work key kept aside, nothing opens the work disks again.
            let kept = "\(fixture.root)/kept"
            try FileManager.default.copyItem(atPath: "\(fixture.root)/security", toPath: kept)
            let wipe = try await rebooted.wipe(role: .work)
            #expect(wipe.method.contains("crypto-erase"))
            #expect(!FileManager.default.fileExists(atPath: paths.userDisk))
            try FileManager.default.removeItem(atPath: "\(fixture.root)/security")
            try FileManager.default.copyItem(atPath: kept, toPath: "\(fixture.root)/security")
            let restored = try engine()
            try await restored.define(definitions)
            #expect(restored.security.standing.report == "revoked", "\(String(describing: restored.security.standing.reason))")
            #expect(throws: (any Error).self) { try restored.security.diskKey(vm: "work", disk: "user", role: .work) }
        }

        /// With its Center: the first measurements are trusted on first use and signed; a changed
        /// component waits for an admin, whose approval needs a new signature, not a reseal; a wipe
        /// erases the work key, and the Center never approves the erased key again.
        @Test func aManagedEngineIsApprovedByItsCenterAndAChangeWaitsForAnAdmin() async throws {
            let scenario = try await ManagementTests.Scenario()
            let swtpm = try SoftwareTPM()
            defer { swtpm.stop() }
            do {
                let root = scenario.root, base = scenario.base, caPEM = scenario.caPEM, owner = scenario.owner
                let layout = EngineLayout(root: "\(root)/e")
                let (identity, files) = try await EngineIdentity.enroll(center: base, caPEM: caPEM, token: try await scenario.enrollmentToken(),
                                                                        deviceName: "laptop", layout: layout)
                let deviceID = identity.deviceID
                var options = ManagementZone.Options()
                options.autostart = false
                func managed(_ commandLine: String) async throws -> ManagementZone {
                    let boot = GuestBoot(kernel: scenario.kit.kernel, initrd: scenario.kit.initramfs, commandLine: commandLine, bootMarker: GuestKit.bootMarker)
                    let engine = try Engine(layout: layout, boot: boot, accelerator: .tcg,
                                            security: SecurityZone(mode: .tpm(tcti: swtpm.tcti), root: layout.root, bootID: "boot-1"))
                    return try await ManagementZone(engine: engine, identity: identity, files: files, options: options)
                }
                func device() async throws -> [String: Any] { try await owner.call(.GET, "/api/v1/devices/\(deviceID)") }

                // First check-in: the Center's policy key is trusted and a work key sealed to it;
                // the next one reports the measurements, which the Center trusts and signs.
                let first = try await managed("console=ttyS0 hearth.root=system")
                try await first.checkIn()
                #expect(first.engine.security.authority != nil)
                #expect(first.engine.security.standing.report == "unapproved")
                try await first.checkIn()
                #expect(first.engine.security.standing == .secure, "\(String(describing: first.engine.security.standing.reason))")
                let trusted = try #require(try await device()["measurementVerdict"] as? String)
                #expect(trusted.hasPrefix("approved (first measurements") && trusted.hasSuffix("attested by the TPM"), "\(trusted)")
                try await first.checkIn()
                #expect((try await device()["status"] as? [String: Any])?["security"] as? String == "ok")

                // The configuration changes: tampered on the device, "changed" at the Center.
                let changed = try await managed("console=ttyS0 hearth.root=system init=/bin/sh")
                #expect(changed.engine.security.standing.report == "tampered")
                try await changed.checkIn()
                let verdict = try #require(try await device()["measurementVerdict"] as? String)
                #expect(verdict.hasPrefix("changed: configuration"), "\(verdict)")
                #expect((try await device()["status"] as? [String: Any])?["security"] as? String == "tampered")
                #expect(changed.engine.security.standing.report == "tampered", "no signature for what was not approved")
                let audit = try #require(try await owner.call(.GET, "/api/v1/audit?action=device.measurements&target=device:\(deviceID)")["list"] as? [[String: Any]])
                #expect(audit.count == 2, "the first trust and the change are audited, not every check-in")

                // An admin approves it (an expected update): the same sealed key unseals with the
                // new signature.
                let sealedBefore = try Data(contentsOf: URL(fileURLWithPath: "\(layout.root)/security/work-key.json"))
                try await owner.call(.POST, "/api/v1/devices/\(deviceID)/measurements")
                try await changed.checkIn()
                #expect(changed.engine.security.standing == .secure, "\(String(describing: changed.engine.security.standing.reason))")
                #expect(try Data(contentsOf: URL(fileURLWithPath: "\(layout.root)/security/work-key.json")) == sealedBefore, "no reseal")
                let approvals = try #require(try await owner.call(.GET, "/api/v1/audit?action=device.measurements.approve")["list"] as? [[String: Any]])
                #expect(approvals.count == 1)

                // A wipe (no second admin needed here): the work key is crypto-erased, the TPM
                // quotes the wipe and the Center verifies it; with the old key's files restored,
                // the counter refuses them and the Center refuses the old key.
                _ = try await AdminClient(center: base, caPEM: caPEM, token: owner.token).send(.PUT, "/api/v1/settings", json: ["wipeNeedsApproval": false])
                let kept = "\(root)/kept"
                try FileManager.default.copyItem(atPath: "\(layout.root)/security", toPath: kept)
                try await owner.call(.POST, "/api/v1/devices/\(deviceID)/commands", ["kind": "wipe"])
                try await changed.checkIn()
                let receipts = try #require(try await owner.call(.GET, "/api/v1/audit?action=command.completed&target=device:\(deviceID)")["list"] as? [[String: Any]])
                #expect(receipts.contains { ($0["after"] as? String)?.contains("crypto-erase") == true }, "\(receipts)")
                let verified = try #require(try await owner.call(.GET, "/api/v1/audit?action=device.wipe.receipt&target=device:\(deviceID)")["list"] as? [[String: Any]])
                #expect((verified.first?["after"] as? String)?.contains("verified: the TPM quoted the wipe event") == true, "\(verified)")
                // The old sealed key and its signed policy put back (the measurements stay: the
                // wipe event is in the PCR, and a log without it would not explain it).
                for file in ["work-key.json", "policy.json"] {
                    try? FileManager.default.removeItem(atPath: "\(layout.root)/security/\(file)")
                    try FileManager.default.copyItem(atPath: "\(kept)/\(file)", toPath: "\(layout.root)/security/\(file)")
                }
                let restored = try await managed("console=ttyS0 hearth.root=system init=/bin/sh")
                #expect(restored.engine.security.standing.report == "revoked", "\(String(describing: restored.engine.security.standing.reason))")
                try await restored.checkIn()
                #expect(try await device()["measurementVerdict"] as? String == "refused: this work key was erased by a wipe")
                #expect(restored.engine.security.standing.report == "revoked")
            } catch {
                await scenario.finish()
                throw error
            }
            await scenario.finish()
        }
    }
}
