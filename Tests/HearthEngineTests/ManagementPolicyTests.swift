import Crypto
import Foundation
import HearthCore
@testable import HearthEngine
import Testing

/// The policies the Engine enforces itself: the lease for work VMs, image expiry for every VM,
/// and minimum hardware reported as non-compliance.
@Suite struct ManagementPolicyTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID().uuidString.prefix(8))").path
    let key = Curve25519.Signing.PrivateKey()

    func keeper(now: Date, leaseDays: Double?) throws -> LeaseKeeper {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let keeper = try LeaseKeeper(path: "\(folder)/lease.json", leaseKey: key.publicKey.rawRepresentation.base64EncodedString(), deviceID: "d", now: { now })
        if let leaseDays {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            let payload = try encoder.encode(Lease.Terms(deviceID: "d", issued: now.addingTimeInterval(-3600), expires: now.addingTimeInterval(leaseDays * 86400)))
            try keeper.accept(Lease(payload: payload.base64EncodedString(), signature: try key.signature(for: payload).base64EncodedString()))
        }
        return keeper
    }

    let work = VMDefinition(name: "work", role: .work, image: .init(name: "kit", version: "1"))
    let personal = VMDefinition(name: "personal", role: .personal, image: .init(name: "kit", version: "1"))

    @Test func theLeaseHoldsBackOnlyTheWorkVMAndAnExpiredImageHoldsBackAny() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let valid = try keeper(now: now, leaseDays: 3)
        #expect(ManagementZone.refusal(for: work, lease: valid, policy: .defaults) == nil)
        try? FileManager.default.removeItem(atPath: folder)

        let never = try keeper(now: now, leaseDays: nil)
        #expect(ManagementZone.refusal(for: work, lease: never, policy: .defaults)?.contains("no lease yet") == true)
        #expect(ManagementZone.refusal(for: personal, lease: never, policy: .defaults) == nil, "the personal VM is the user's own")

        var policy = EffectivePolicy.defaults
        policy.imageExpiry = now.addingTimeInterval(-60)
        let expired = try #require(ManagementZone.refusal(for: personal, lease: never, policy: policy))
        #expect(expired.contains("kit@1") && expired.contains("expired"))
        policy.imageExpiry = now.addingTimeInterval(86400)
        #expect(ManagementZone.refusal(for: personal, lease: never, policy: policy) == nil)
    }

    @Test func aPCBelowTheMinimumHardwareIsReportedNotRefused() {
        let inventory = DeviceStatus.Inventory(cpuModel: "x", cpus: 2, memoryBytes: 4 << 30, diskBytes: 100 << 30, virtualization: "tcg")
        var policy = EffectivePolicy.defaults
        #expect(Inventory.shortfalls(inventory, policies: [("work", policy)]).isEmpty)
        policy.minimumCPUs = 4
        policy.minimumMemoryMiB = 8192
        policy.minimumDiskGiB = 50
        let problems = Inventory.shortfalls(inventory, policies: [("work", policy)])
        #expect(problems == ["work: needs at least 4 CPUs; this PC has 2", "work: needs at least 8192 MiB of memory; this PC has 4096 MiB"])
    }
}
