import Foundation
import GuestKit
import HearthCenter
@testable import HearthCLI
import HearthCore
@testable import HearthEngine
import QMP
import Testing

extension VMSuites {
    /// The main job (`hearth demo`) in its fast mode, each of its seven steps checked through the
    /// Center's API and the Engine's state, not through what it printed.
    @Suite struct MainJobTests {
        @Test func theMainJobRunsEndToEnd() async throws {
            let work = "/tmp/hmj-\(UUID().uuidString.prefix(6).lowercased())"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            var options = MainJob.Options(workDirectory: work)
            options.accelerator = AcceleratorProbe.probe().accelerator
            options.bootTimeout = BootTests.bootTimeout
            options.fast = true
            let job = try MainJob(options: options, narrator: Narrator(totalSteps: 7))
            let outcome: MainJob.Outcome
            do {
                outcome = try await job.run()
            } catch {
                await job.abandon()
                throw error
            }
            do {
                try await check(outcome, work: work)
            } catch {
                await outcome.finish()
                throw error
            }
            await outcome.finish()
        }

        private func check(_ outcome: MainJob.Outcome, work: String) async throws {
            let owner = outcome.owner, layout = outcome.layout, deviceID = outcome.deviceID

            // 1. A Center with its owner, whose password is the one in the file, and an approver.
            let admins = try await owner.decode([Admin].self, .GET, "/api/v1/admins")
            #expect(Set(admins.map(\.username)) == ["owner", "approver"])
            #expect(admins.first { $0.username == "approver" }?.role == .operator)
            #expect(admins.allSatisfy { !$0.mustChangePassword })
            let password = try String(contentsOfFile: outcome.passwordFile, encoding: .utf8).trimmingCharacters(in: .newlines)
            _ = try await AdminAPI.login(base: outcome.base, caPEM: outcome.caPEM, "owner", password)
            #expect(try FileManager.default.attributesOfItem(atPath: outcome.passwordFile)[.posixPermissions] as? Int == 0o600)

            // 2 and 5. Both versions are registered and stable serves v2; the Engine holds each
            // byte for byte as published.
            let image = try await owner.decode(ImageRecord.self, .GET, "/api/v1/images/\(MainJob.imageName)")
            #expect(image.versions.map(\.version) == ["1", "2"] && image.channels["stable"] == "2")
            for version in ["1", "2"] {
                let pulled = FileManager.default.contents(atPath: layout.imageDisk(.init(name: MainJob.imageName, version: version)))
                #expect(pulled != nil && pulled == FileManager.default.contents(atPath: "\(work)/\(MainJob.imageName)-\(version).img"), "version \(version)")
            }

            // 3. The user in the group, both desktops assigned to it, the policy on it.
            let users = try await owner.decode([User].self, .GET, "/api/v1/users")
            let alice = try #require(users.first { $0.username == MainJob.user })
            let groups = try await owner.decode([Group].self, .GET, "/api/v1/groups")
            #expect(groups.first { $0.name == MainJob.group }?.members == [MainJob.user] && alice.groups == [MainJob.group])
            let vms = try await owner.decode([VMDefinitionRecord].self, .GET, "/api/v1/vms")
            #expect(vms.map(\.name).sorted() == ["personal", "work"])
            #expect(vms.allSatisfy { $0.groups.count == 1 })
            let policies = try await owner.decode([String: Policy].self, .GET, "/api/v1/policies")
            #expect(policies["group:\(MainJob.group)"]?.leaseDays == MainJob.leaseDays)
            #expect(policies["vm:work"]?.network == VMDefinition.NetworkMode.none)

            // 4. The device is alice's; both desktops booted, and the user's file is on the
            // personal desktop's user disk (the work desktop's went with the wipe).
            let devices = try await owner.decode([Device].self, .GET, "/api/v1/devices")
            #expect(devices.count == 1 && devices.first?.id == deviceID && devices.first?.userID == alice.id)
            #expect(outcome.firstBoot["work"]?["release"] == "\(MainJob.imageName) 1" && outcome.firstBoot["personal"]?["release"] == "\(MainJob.imageName) 1")
            let personalNotes = try #require(outcome.firstBoot["personal"]?["user"])
            let raw = "\(work)/personal-user.raw"
            // With the (software) TPM the disk is encrypted: readable only with its key, which
            // qemu-img gets on standard input.
            let userDisk = layout.vm("personal").userDisk
            if let key = try outcome.engine.security.diskKey(vm: "personal", disk: "user", role: .personal) {
                #expect(Engine.isEncrypted(userDisk))
                _ = try ExtendBootTests.tool("/usr/bin/qemu-img", ["convert", "-U", "--object", "secret,id=key,file=/dev/stdin", "--image-opts",
                                                                   "driver=qcow2,file.filename=\(userDisk),encrypt.key-secret=key", "-O", "raw", raw],
                                             input: key.map { String(format: "%02x", $0) }.joined())
            } else {
                _ = try ExtendBootTests.tool("/usr/bin/qemu-img", ["convert", "-U", "-O", "raw", userDisk, raw])
            }
            let onDisk = try GuestKit.readFile("/notes.txt", fromDisk: raw).map { String(decoding: $0, as: UTF8.self) }
            #expect(onDisk?.trimmingCharacters(in: .newlines) == personalNotes)

            // The security zone, on swtpm: measured, approved by the Center and attested by the TPM.
            if outcome.softwareTPM != nil {
                #expect(outcome.engine.security.standing.report != "insecure-development")
                #expect(outcome.measurementVerdict.hasPrefix("approved") && outcome.measurementVerdict.hasSuffix("attested by the TPM"), "\(outcome.measurementVerdict)")
            }

            // 5. Only the delta crossed the network; the work desktop restarted into v2 with the
            // user's file as it was, at the admin's command.
            #expect(outcome.v2.bytesFetched * 20 < outcome.v1.bytesFetched, "v2 \(outcome.v2.bytesFetched) B, v1 \(outcome.v1.bytesFetched) B")
            #expect(outcome.afterUpdate["release"] == "\(MainJob.imageName) 2")
            #expect(outcome.afterUpdate["user"] == outcome.firstBoot["work"]?["user"])
            let commands = try await owner.decode([CommandRecord].self, .GET, "/api/v1/devices/\(deviceID)/commands")
            #expect(commands.first { $0.kind == .restartVM }?.state == .completed)

            // 6. The work desktop refused for its lease; the lease is valid again.
            #expect(outcome.leaseRefusal.contains("lease"))
            guard case .valid = outcome.zone.lease.standing else {
                Issue.record("the lease was not renewed: \(outcome.zone.lease.standing)")
                return
            }

            // 7. The wipe: approved by the approver, carried out, its receipt in the audit log;
            // the work desktop's disks are gone, the personal desktop's are not, the device is
            // locked, and the Center hears so at the next check-in.
            let wipe = try #require(commands.first { $0.id == outcome.wipeCommand })
            #expect(wipe.kind == .wipe && wipe.state == .completed && wipe.approvedBy != nil && wipe.approvedBy != wipe.createdBy)
            let audit = try await owner.decode([AuditEntry].self, .GET, "/api/v1/audit?action=command.completed&target=device:\(deviceID)")
            let entry = try #require(audit.first { $0.after?.contains(outcome.wipeCommand) == true })
            let receipt = try MainJob.receipt(in: try #require(entry.after), command: outcome.wipeCommand, device: deviceID)
            #expect(receipt.vms.map(\.name) == ["work"] && receipt.bytes > 0)
            if outcome.softwareTPM != nil {
                #expect(receipt.method.contains("crypto-erase") && receipt.evidence != nil)
                #expect(outcome.receiptVerdict.hasPrefix("verified: the TPM quoted the wipe event"), "\(outcome.receiptVerdict)")
            }
            for disk in [layout.vm("work").systemDisk, layout.vm("work").localDisk, layout.vm("work").userDisk] {
                #expect(!FileManager.default.fileExists(atPath: disk), "\(disk) survived the wipe")
            }
            #expect(FileManager.default.fileExists(atPath: layout.vm("personal").userDisk))
            #expect(await outcome.engine.lockReason != nil)
            #expect(try await outcome.engine.status().allSatisfy { $0.phase == .stopped })
            try await outcome.zone.checkIn()
            let device = try await owner.decode(Device.self, .GET, "/api/v1/devices/\(deviceID)")
            #expect(device.status?.locked != nil)
            #expect(device.status?.updates?.first { $0.image == "\(MainJob.imageName)@2" }?.state == .ready)
        }
    }
}
