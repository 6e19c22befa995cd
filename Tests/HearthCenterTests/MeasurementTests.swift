import Crypto
import Foundation
import HearthCenter
import Testing
import TestSupport
import TPM
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

/// Quotes from a real (software) TPM against the Center: attested over its nonce, and refused
/// when replayed, made by another TPM, or missing once a device has attested.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: SoftwareTPM.binary), "needs swtpm (scripts/setup-host test)"))
struct AttestationTests {
    @Test func aQuoteOverTheCentersNonceIsAttestedAndAReplayedOrForeignOneIsRefused() async throws {
        let swtpm = try SoftwareTPM(), stranger = try SoftwareTPM()
        defer { swtpm.stop(); stranger.stop() }
        try await CenterHarness.with(.sqlite) { harness in
            let owner = try await harness.ownerToken()
            let (identity, _) = try await harness.enrollDevice(owner: owner)
            let device = try harness.deviceClient(identity)
            let tpm = try TPM(tcti: swtpm.tcti)
            try tpm.extend(13, sha256: Array(SHA256.hash(data: Data("engine 1.0".utf8))))
            var report = MeasurementTests.report([("engine", "engine 1.0")])

            func quoted(by tpm: TPM, nonce: String) throws -> [String: Any] {
                let quote = try tpm.quote(pcrs: [13], nonce: EventLog.bytes(hex: nonce))
                return ["key": try tpm.attestationKey().rawRepresentation.base64EncodedString(), "nonce": nonce,
                        "quote": Data(quote.attest).base64EncodedString(), "signature": Data(quote.signature).base64EncodedString()]
            }
            // The first check-in gives a nonce; the next quotes it.
            let first = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: device)
            let nonce = try #require(first.object["nonce"] as? String)
            report["attestation"] = try quoted(by: tpm, nonce: nonce)
            let attested = try await harness.call(.POST, "/api/v1/device/checkin", json: MeasurementTests.status(report), client: device)
            #expect((attested.object["measurementVerdict"] as? String)?.hasSuffix("attested by the TPM") == true, "\(attested.object)")
            #expect(attested.object["securityPolicy"] != nil)
            let next = try #require(attested.object["nonce"] as? String)
            #expect(next != nonce, "a nonce is used once")

            // The same quote again: stale.
            let replayed = try await harness.call(.POST, "/api/v1/device/checkin", json: MeasurementTests.status(report), client: device)
            #expect((replayed.object["measurementVerdict"] as? String)?.contains("nonce") == true, "\(replayed.object)")
            #expect(replayed.object["securityPolicy"] == nil)
            // Another TPM's quote over the right nonce: not this device's key.
            let current = try #require(replayed.object["nonce"] as? String)
            report["attestation"] = try quoted(by: TPM(tcti: stranger.tcti), nonce: current)
            let foreign = try await harness.call(.POST, "/api/v1/device/checkin", json: MeasurementTests.status(report), client: device)
            #expect((foreign.object["measurementVerdict"] as? String)?.contains("another attestation key") == true, "\(foreign.object)")
            // No quote at all, once the device has attested: refused.
            report["attestation"] = nil
            let bare = try await harness.call(.POST, "/api/v1/device/checkin", json: MeasurementTests.status(report), client: device)
            #expect((bare.object["measurementVerdict"] as? String)?.contains("no TPM quote") == true, "\(bare.object)")
            // A quote of another PCR value than reported.
            let later = try #require(bare.object["nonce"] as? String)
            try tpm.extend(13, sha256: Array(SHA256.hash(data: Data("something else".utf8))))
            report["attestation"] = try quoted(by: tpm, nonce: later)
            let lying = try await harness.call(.POST, "/api/v1/device/checkin", json: MeasurementTests.status(report), client: device)
            #expect((lying.object["measurementVerdict"] as? String)?.contains("another PCR value") == true, "\(lying.object)")
        }
    }
}
