import Crypto
import Foundation
import HearthCenter
import HearthCore
import Testing

/// Images and channels, VM definitions, policies and their precedence, commands, leases.
@Suite(.serialized) struct DesktopTests {
    @Test func policyPrecedenceStricterGroupThenVMOverride() {
        let finance = Policy(leaseDays: 10, checkInIntervalSeconds: 600, usbClasses: ["hid", "storage"], network: .full,
                             backupSchedule: "weekly", minimumMemoryMiB: 4096)
        let staff = Policy(leaseDays: 5, usbClasses: ["hid", "audio"], network: .internet, backupSchedule: "daily", minimumCPUs: 4)
        // Two groups: the stricter value of each field.
        let groups = EffectivePolicy.resolve(groups: [finance, staff], vm: nil)
        #expect(groups.leaseDays == 5 && groups.checkInIntervalSeconds == 600)
        #expect(groups.usbClasses == ["hid"] && groups.network == .internet && groups.backupSchedule == "daily")
        #expect(groups.minimumCPUs == 4 && groups.minimumMemoryMiB == 4096)
        // The order of the groups does not matter.
        #expect(EffectivePolicy.resolve(groups: [staff, finance], vm: nil) == groups)
        // The VM's own policy overrides what it sets, and only that.
        let vm = EffectivePolicy.resolve(groups: [finance, staff], vm: Policy(leaseDays: 30, network: VMDefinition.NetworkMode.none))
        #expect(vm.leaseDays == 30 && vm.network == VMDefinition.NetworkMode.none && vm.usbClasses == ["hid"] && vm.minimumCPUs == 4)
        // Nothing set: the defaults.
        #expect(EffectivePolicy.resolve(groups: [], vm: nil) == .defaults)
    }

    @Test(arguments: Backend.allCases)
    func channelsArePromotedAndRolledBack(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            #expect(try await harness.call(.POST, "/api/v1/images", json: ["name": "debian"], token: owner).status == 201)
            for version in ["1", "2"] {
                #expect(try await harness.call(.POST, "/api/v1/images/debian/versions", json: ["version": version, "notes": "v\(version)"], token: owner).status == 201)
            }
            #expect(try await harness.call(.POST, "/api/v1/images/debian/versions", json: ["version": "2"], token: owner).status == 409)
            #expect(try await harness.call(.PUT, "/api/v1/images/debian/channels/stable", json: ["version": "1"], token: owner).status == 200)
            #expect(try await harness.call(.PUT, "/api/v1/images/debian/channels/pilot", json: ["version": "2"], token: owner).status == 200)
            let promoted = try await harness.call(.PUT, "/api/v1/images/debian/channels/stable", json: ["version": "2"], token: owner)
            #expect((promoted.object["channels"] as? [String: String]) == ["stable": "2", "pilot": "2"])
            let rolledBack = try await harness.call(.PUT, "/api/v1/images/debian/channels/stable", json: ["version": "1"], token: owner)
            #expect((rolledBack.object["channels"] as? [String: String])?["stable"] == "1")
            let missing = try await harness.call(.PUT, "/api/v1/images/debian/channels/stable", json: ["version": "9"], token: owner)
            #expect(missing.status == 404 && missing.errorMessage.contains("versions: 1, 2"))
            let history = try await harness.call(.GET, "/api/v1/audit?action=image.channel&target=image:debian/stable", token: owner)
            #expect(history.array.count == 3)
            #expect((history.array.first?["before"] as? String)?.contains("\"2\"") == true)
            #expect((history.array.first?["after"] as? String)?.contains("\"1\"") == true)
        }
    }

    @Test(arguments: Backend.allCases)
    func aCheckInCarriesTheAssignedDesktopsTheirPoliciesAndASignedLease(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            for (method, path, body) in [
                ("POST", "/api/v1/users", ["username": "alice"] as [String: Any]),
                ("POST", "/api/v1/groups", ["name": "finance"]), ("POST", "/api/v1/groups", ["name": "staff"]),
                ("PUT", "/api/v1/groups/finance/members/alice", [:]), ("PUT", "/api/v1/groups/staff/members/alice", [:]),
                ("POST", "/api/v1/images", ["name": "debian"]), ("POST", "/api/v1/images/debian/versions", ["version": "1"]),
                ("POST", "/api/v1/images/debian/versions", ["version": "2"]),
                ("PUT", "/api/v1/images/debian/channels/stable", ["version": "1"]), ("PUT", "/api/v1/images/debian/channels/pilot", ["version": "2"]),
                ("POST", "/api/v1/vms", ["name": "work", "role": "work", "image": "debian", "network": "full"]),
                ("POST", "/api/v1/vms", ["name": "personal", "role": "personal", "image": "debian", "channel": "pilot", "network": "full"]),
                ("POST", "/api/v1/vms", ["name": "later", "role": "work", "image": "debian", "channel": "beta"]),
                ("PUT", "/api/v1/vms/work/assignments/group/staff", [:]), ("PUT", "/api/v1/vms/personal/assignments/user/alice", [:]),
                ("PUT", "/api/v1/vms/later/assignments/user/alice", [:]),
                ("PUT", "/api/v1/policies/group:finance", ["leaseDays": 10, "usbClasses": ["hid", "storage"], "network": "full"]),
                ("PUT", "/api/v1/policies/group:staff", ["leaseDays": 5, "usbClasses": ["hid"], "network": "internet"]),
                ("PUT", "/api/v1/policies/vm:personal", ["leaseDays": 30, "usbClasses": ["hid", "storage", "audio"]]),
            ] {
                let answer = try await harness.call(method == "POST" ? .POST : .PUT, path, json: body, token: owner)
                #expect(answer.status < 300, "\(method) \(path): \(answer.status) \(answer.errorMessage)")
            }
            let token = try await harness.call(.POST, "/api/v1/enrollment-tokens", json: ["user": "alice"], token: owner)
            var identity = DeviceIdentity()
            let enrolled = try await harness.call(.POST, "/api/v1/enroll", json: ["token": try #require(token.object["secret"] as? String),
                                                                                 "csr": try identity.csr(), "name": "alice-laptop"])
            identity.certificatePEM = enrolled.object["certificate"] as? String
            let leaseKeyText = try #require(enrolled.object["leaseKey"] as? String)
            let leaseKey = try Curve25519.Signing.PublicKey(rawRepresentation: try #require(Data(base64Encoded: leaseKeyText)))

            let answer = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: try harness.deviceClient(identity))
            #expect(answer.status == 200)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let desired = try decoder.decode(CheckInResponse.self, from: answer.body)
            // "later" follows a channel with no version yet: not sent.
            #expect(desired.vms.map(\.definition.name).sorted() == ["personal", "work"])
            let work = try #require(desired.vms.first { $0.definition.name == "work" })
            #expect(work.definition.image == ImageReference(name: "debian", version: "1"))
            #expect(work.policy.leaseDays == 5 && work.policy.usbClasses == ["hid"])
            // The definition asked for full network; the groups allow internet only.
            #expect(work.definition.network == .internet)
            let personal = try #require(desired.vms.first { $0.definition.name == "personal" })
            #expect(personal.definition.image.version == "2" && personal.channel == "pilot")
            #expect(personal.policy.leaseDays == 30 && personal.policy.usbClasses == ["audio", "hid", "storage"])

            // The lease: signed by the key pinned at enrollment, as long as the work VM's policy.
            let payload = try #require(Data(base64Encoded: desired.lease.payload))
            #expect(leaseKey.isValidSignature(try #require(Data(base64Encoded: desired.lease.signature)), for: payload))
            let terms = try #require(desired.lease.unverifiedTerms)
            #expect(terms.deviceID == desired.deviceID)
            #expect(terms.expires.timeIntervalSince(terms.issued) == 5 * 86400)
            var forged = payload
            forged[forged.count - 3] ^= 1
            #expect(!leaseKey.isValidSignature(try #require(Data(base64Encoded: desired.lease.signature)), for: forged))

            // A policy that makes no sense is refused with what is wrong.
            let bad = try await harness.call(.PUT, "/api/v1/policies/group:staff", json: ["leaseDays": 0, "usbClasses": ["floppy"]], token: owner)
            #expect(bad.status == 400 && bad.errorMessage.contains("leaseDays") && bad.errorMessage.contains("floppy"))
            #expect(try await harness.call(.PUT, "/api/v1/policies/group:nobody", json: ["leaseDays": 3], token: owner).status == 404)
            let badVM = try await harness.call(.POST, "/api/v1/vms", json: ["name": "9lives", "role": "work", "image": "debian", "cpus": 0], token: owner)
            #expect(badVM.status == 400 && badVM.errorMessage.contains("cpus"))
        }
    }

    @Test(arguments: Backend.allCases)
    func commandsMoveThroughTheirStatesAndAWipeNeedsASecondAdmin(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            let operatorToken = try await harness.admin("operator", by: owner)
            let helpdesk = try await harness.admin("helpdesk", by: owner)
            let (identity, deviceID) = try await harness.enrollDevice(owner: owner)
            let device = try harness.deviceClient(identity)
            func checkIn() async throws -> [[String: Any]] {
                let answer = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: device)
                #expect(answer.status == 200)
                return answer.object["commands"] as? [[String: Any]] ?? []
            }

            // Helpdesk may lock but not wipe.
            #expect(try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "wipe"], token: helpdesk).status == 403)
            let wipe = try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "wipe"], token: owner)
            let wipeID = try #require(wipe.object["id"] as? String)
            #expect(wipe.object["state"] as? String == "awaitingApproval")
            #expect(try await checkIn().isEmpty)
            let selfApproval = try await harness.call(.POST, "/api/v1/commands/\(wipeID)/approve", token: owner)
            #expect(selfApproval.status == 403 && selfApproval.errorMessage.contains("second admin"))
            let approved = try await harness.call(.POST, "/api/v1/commands/\(wipeID)/approve", token: operatorToken)
            #expect(approved.object["state"] as? String == "pending")

            // Delivered, and delivered again until acknowledged.
            #expect(try await checkIn().map { $0["id"] as? String } == [wipeID])
            #expect(try await harness.call(.GET, "/api/v1/devices/\(deviceID)/commands", token: owner).array.first?["state"] as? String == "delivered")
            #expect(try await checkIn().map { $0["id"] as? String } == [wipeID])
            let ack = try await harness.call(.POST, "/api/v1/device/commands/\(wipeID)", json: ["state": "acknowledged"], client: device)
            #expect(ack.object["state"] as? String == "acknowledged")
            #expect(try await checkIn().isEmpty)
            let done = try await harness.call(.POST, "/api/v1/device/commands/\(wipeID)", json: ["state": "completed", "result": "receipt-123"], client: device)
            #expect(done.object["state"] as? String == "completed" && done.object["result"] as? String == "receipt-123")
            // The same report again does no harm; going back is refused.
            #expect(try await harness.call(.POST, "/api/v1/device/commands/\(wipeID)", json: ["state": "completed", "result": "receipt-123"], client: device).status == 200)
            #expect(try await harness.call(.POST, "/api/v1/device/commands/\(wipeID)", json: ["state": "acknowledged"], client: device).status == 409)

            let audit = try await harness.call(.GET, "/api/v1/audit?target=device:\(deviceID)", token: owner)
            let actions = audit.array.compactMap { $0["action"] as? String }
            for action in ["command.issue", "command.approve", "command.acknowledged", "command.completed"] {
                #expect(actions.contains(action), "\(action) missing from \(actions)")
            }

            // Without the approval setting, a wipe goes straight out; a lock can be cancelled.
            #expect(try await harness.call(.PUT, "/api/v1/settings", json: ["wipeNeedsApproval": false], token: operatorToken).status == 403)
            #expect(try await harness.call(.PUT, "/api/v1/settings", json: ["wipeNeedsApproval": false], token: owner).status == 200)
            let direct = try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "wipe"], token: owner)
            #expect(direct.object["state"] as? String == "pending")
            let lock = try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "lock"], token: helpdesk)
            let cancelled = try await harness.call(.POST, "/api/v1/commands/\(try #require(lock.object["id"] as? String))/cancel", token: helpdesk)
            #expect(cancelled.object["state"] as? String == "cancelled")
            #expect(try await checkIn().compactMap { $0["kind"] as? String } == ["wipe"])
            // Another device cannot report on this device's command.
            let (other, _) = try await harness.enrollDevice(owner: owner)
            let foreign = try await harness.call(.POST, "/api/v1/device/commands/\(try #require(direct.object["id"] as? String))",
                                                 json: ["state": "acknowledged"], client: try harness.deviceClient(other))
            #expect(foreign.status == 404)
        }
    }
}
