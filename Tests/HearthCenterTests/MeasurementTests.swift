import Crypto
import Foundation
import HearthCenter
import Testing
import TPMPolicy

/// The Center's side of the security zone (docs/SECURITY.md): it trusts a device's first
/// measurements, signs its work-key policy, holds a change for an admin, refuses a log that does
/// not add up, and never signs for a key a wipe erased.
@Suite struct MeasurementTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// A report whose components replay to its PCR value (from zero).
    static func report(_ components: [(String, String)], policyRef: String = "0123456789abcdef0123456789abcdef", counter: UInt64 = 7) -> [String: Any] {
        var value = [UInt8](repeating: 0, count: 32)
        var list: [[String: Any]] = []
        for (name, content) in components {
            let digest = Array(SHA256.hash(data: Data(content.utf8)))
            value = Array(SHA256.hash(data: value + digest))
            list.append(["component": name, "path": "/usr/bin/\(name)", "sha256": hex(digest)])
        }
        return ["pcr": 13, "pcrValue": hex(value), "components": list, "policyRef": policyRef, "counterIndex": 0x0180_4845, "counterValue": counter]
    }

    static func status(_ measurements: [String: Any]) -> [String: Any] {
        var status = CenterHarness.status
        status["security"] = "unapproved"
        status["measurements"] = measurements
        return status
    }

    @Test(arguments: Backend.allCases)
    func theFirstMeasurementsAreSignedAChangeWaitsForAnAdminAndAnErasedKeyIsRefused(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            let (identity, deviceID) = try await harness.enrollDevice(owner: owner)
            let device = try harness.deviceClient(identity)
            let good = Self.report([("engine", "engine 1.0"), ("kernel", "kernel 6.1")])

            // First use: trusted, and signed so that a TPM accepts it for this key and counter.
            let first = try await harness.call(.POST, "/api/v1/device/checkin", json: Self.status(good), client: device)
            #expect(first.status == 200, "\(first.errorMessage)")
            let encodedKey = try #require(first.object["policyKey"] as? String)
            let key = try P256.Signing.PublicKey(rawRepresentation: try #require(Data(base64Encoded: encodedKey)))
            let signed = try #require(first.object["securityPolicy"] as? [String: Any])
            let terms = PolicyTerms(pcrs: [13], pcrValues: [EventLog.bytes(hex: good["pcrValue"] as! String)],
                                    counter: MonotonicCounter(index: 0x0180_4845), counterValue: 7, policyRef: EventLog.bytes(hex: good["policyRef"] as! String))
            let encodedSignature = try #require(signed["signature"] as? String)
            let signature = try #require(Data(base64Encoded: encodedSignature))
            #expect(PolicyAuthority(publicKey: key).signed(SignedPolicy(terms: terms, signature: Array(signature))))
            #expect((first.object["measurementVerdict"] as? String)?.hasPrefix("approved (first measurements") == true)

            // The kernel changed: no signature; the device and the audit log say which part.
            let updated = Self.report([("engine", "engine 1.0"), ("kernel", "kernel 6.2")])
            let second = try await harness.call(.POST, "/api/v1/device/checkin", json: Self.status(updated), client: device)
            #expect(second.object["securityPolicy"] == nil)
            #expect((second.object["measurementVerdict"] as? String)?.hasPrefix("changed: kernel") == true)
            let listed = try await harness.call(.GET, "/api/v1/devices/\(deviceID)", token: owner)
            #expect((listed.object["measurementVerdict"] as? String)?.hasPrefix("changed: kernel") == true)

            // An admin approves the update: the next check-in is signed for it.
            let approved = try await harness.call(.POST, "/api/v1/devices/\(deviceID)/measurements", token: owner)
            #expect(approved.status == 200, "\(approved.errorMessage)")
            let third = try await harness.call(.POST, "/api/v1/device/checkin", json: Self.status(updated), client: device)
            #expect((third.object["securityPolicy"] as? [String: Any])?["pcrValue"] as? String == updated["pcrValue"] as? String)
            let audit = try await harness.call(.GET, "/api/v1/audit?action=device.measurements.approve", token: owner)
            #expect((audit.json as? [[String: Any]])?.count == 1)

            // A log that does not replay to the PCR value it claims: refused, not signed.
            var forged = updated
            forged["pcrValue"] = String(repeating: "ab", count: 32)
            let refused = try await harness.call(.POST, "/api/v1/device/checkin", json: Self.status(forged), client: device)
            #expect(refused.object["securityPolicy"] == nil)
            #expect((refused.object["measurementVerdict"] as? String)?.contains("do not replay") == true)

            // A completed wipe erases the key the device reported: never signed again.
            _ = try await harness.call(.PUT, "/api/v1/settings", json: ["wipeNeedsApproval": false], token: owner)
            let wipe = try #require(try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "wipe"], token: owner).object["id"] as? String)
            _ = try await harness.call(.POST, "/api/v1/device/checkin", json: Self.status(updated), client: device)
            _ = try await harness.call(.POST, "/api/v1/device/commands/\(wipe)", json: ["state": "completed", "result": "wiped"], client: device)
            let restored = try await harness.call(.POST, "/api/v1/device/checkin", json: Self.status(Self.report([("engine", "engine 1.0"), ("kernel", "kernel 6.2")], counter: 8)), client: device)
            #expect(restored.object["securityPolicy"] == nil)
            #expect(restored.object["measurementVerdict"] as? String == "refused: this work key was erased by a wipe")
            // A new work key with the same measurements is signed.
            let fresh = Self.report([("engine", "engine 1.0"), ("kernel", "kernel 6.2")], policyRef: "fedcba9876543210fedcba9876543210", counter: 8)
            #expect(try await harness.call(.POST, "/api/v1/device/checkin", json: Self.status(fresh), client: device).object["securityPolicy"] != nil)
        }
    }

    @Test func malformedMeasurementsAreRefusedAndChangeNothing() async throws {
        try await CenterHarness.with(.sqlite) { harness in
            let owner = try await harness.ownerToken()
            let (identity, deviceID) = try await harness.enrollDevice(owner: owner)
            let device = try harness.deviceClient(identity)
            var bad = Self.report([("engine", "x")])
            for (field, value) in [("pcrValue", "zz" as Any), ("policyRef", ""), ("pcr", 99), ("counterIndex", 5), ("components", [Any]())] {
                bad = Self.report([("engine", "x")])
                bad[field] = value
                let answer = try await harness.call(.POST, "/api/v1/device/checkin", json: Self.status(bad), client: device)
                #expect(answer.status == 400, "\(field): \(answer.status)")
                #expect(answer.errorMessage.contains("measurements"), "\(answer.errorMessage)")
            }
            let listed = try await harness.call(.GET, "/api/v1/devices/\(deviceID)", token: owner)
            #expect(listed.object["lastCheckIn"] == nil && listed.object["measurementVerdict"] == nil)
            // Nothing reported, nothing to approve.
            #expect(try await harness.call(.POST, "/api/v1/devices/\(deviceID)/measurements", token: owner).status == 409)
        }
    }
}
