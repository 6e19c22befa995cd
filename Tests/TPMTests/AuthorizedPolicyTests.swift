import CTSS2
import Crypto
import Foundation
import Testing
import TestSupport
@testable import TPM
import TPMPolicy

/// Secrets sealed to a policy authority (the Center's policy key): a signed policy unseals
/// them while its PCR values and counter value hold; a change of what is measured needs a new
/// signature, not a new seal; bumping the counter revokes every policy signed before.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: SoftwareTPM.binary), "needs swtpm (scripts/setup-host test)"))
struct AuthorizedPolicyTests {
    static let counter = MonotonicCounter(index: 0x0180_4845)
    static let pcr = 16

    /// What the authority signs for the TPM's current PCR value and counter.
    static func approve(_ tpm: TPM, ref: [UInt8], key: P256.Signing.PrivateKey, counterValue: UInt64? = nil) throws -> SignedPolicy {
        let terms = PolicyTerms(pcrs: [pcr], pcrValues: [try tpm.pcr(pcr)], counter: counter,
                                counterValue: try counterValue ?? tpm.value(of: counter), policyRef: ref)
        return try PolicyAuthority.sign(terms, with: key)
    }

    @Test func policyDigestsComputedWithoutATPMMatchTheTPMs() throws {
        let swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let tpm = try TPM(tcti: swtpm.tcti)
        try tpm.extend(Self.pcr, sha256: TPMTests.digest("engine"))
        let value = try tpm.ensure(Self.counter)

        #expect(try tpm.name(of: Self.counter) == Self.counter.name, "the counter's name, computed, is the TPM's")
        let authority = PolicyAuthority(publicKey: P256.Signing.PrivateKey().publicKey)
        #expect(try tpm.loadedName(of: authority) == authority.name, "the authority key's name, computed, is the TPM's")

        let fromTPM = try tpm.trialDigest { session throws(TPMError) in
            var empty = TPM2B_DIGEST()
            var selection = TPM.selection([Self.pcr])
            try tpm.check("PolicyPCR", Esys_PolicyPCR(tpm.context, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                      &empty, &selection))
        }
        let terms = PolicyTerms(pcrs: [Self.pcr], pcrValues: [try tpm.pcr(Self.pcr)], counter: Self.counter, counterValue: value, policyRef: [1])
        #expect(fromTPM == PolicyDigest.pcr([Self.pcr], values: [try tpm.pcr(Self.pcr)]))
        #expect(terms.approvedPolicy == PolicyDigest.counterEquals(Self.counter, value: value, after: fromTPM))
    }

    @Test func aSignedPolicyUnsealsAndANewSignatureFollowsALegitimateUpdate() throws {
        let swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let tpm = try TPM(tcti: swtpm.tcti)
        let key = P256.Signing.PrivateKey()
        let authority = PolicyAuthority(publicKey: key.publicKey)
        try tpm.ensure(Self.counter)
        try tpm.extend(Self.pcr, sha256: TPMTests.digest("engine 1.0"))
        let secret = try tpm.random(32)
        let ref = Array("hearth-kek-1".utf8)
        let sealed = try tpm.seal(secret, authorizedBy: authority, policyRef: ref)
        #expect(!sealed.privateArea.contains(subsequence: secret))

        let v1 = try Self.approve(tpm, ref: ref, key: key)
        #expect(try tpm.unseal(sealed, approvedBy: v1, authority: authority) == secret)

        // Engine 1.1 is measured: the 1.0 policy no longer holds, and the TPM refuses.
        try tpm.extend(Self.pcr, sha256: TPMTests.digest("engine 1.1"))
        #expect(throws: TPMError.policyMismatch([Self.pcr])) { try tpm.unseal(sealed, approvedBy: v1, authority: authority) }
        // The authority signs the new measurements: the same sealed blob unseals, no reseal.
        let v2 = try Self.approve(tpm, ref: ref, key: key)
        #expect(try tpm.unseal(sealed, approvedBy: v2, authority: authority) == secret)

        // Approvals from another key, or for another secret, are refused.
        let stranger = try Self.approve(tpm, ref: ref, key: P256.Signing.PrivateKey())
        #expect { try tpm.unseal(sealed, approvedBy: stranger, authority: authority) } throws: { "\($0)".contains("not signed by the policy authority") }
        let otherSecret = try Self.approve(tpm, ref: Array("hearth-kek-2".utf8), key: key)
        #expect { try tpm.unseal(sealed, approvedBy: otherSecret, authority: authority) } throws: { "\($0)".contains("another secret") }
    }

    /// Bumping the counter revokes the old policy for good: the Swift checks say so, and the TPM
    /// itself refuses when they are bypassed. A policy for the new value works again.
    @Test func bumpingTheCounterRevokesEveryEarlierPolicy() throws {
        let swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let tpm = try TPM(tcti: swtpm.tcti)
        let key = P256.Signing.PrivateKey()
        let authority = PolicyAuthority(publicKey: key.publicKey)
        let first = try tpm.ensure(Self.counter)
        #expect(try tpm.ensure(Self.counter) == first, "ensuring an existing counter leaves it")
        try tpm.extend(Self.pcr, sha256: TPMTests.digest("engine"))
        let ref = Array("hearth-kek-1".utf8)
        let sealed = try tpm.seal(Array("kek".utf8), authorizedBy: authority, policyRef: ref)
        let old = try Self.approve(tpm, ref: ref, key: key)
        #expect(try tpm.unseal(sealed, approvedBy: old, authority: authority) == Array("kek".utf8))

        #expect(try tpm.increment(Self.counter) == first + 1)
        #expect(throws: TPMError.revoked(policy: first, counter: first + 1)) { try tpm.unseal(sealed, approvedBy: old, authority: authority) }

        // Past the checks in Swift: the TPM refuses PolicyNV for the old value by itself.
        #expect {
            try tpm.unseal(sealed, mismatch: .policyMismatch([])) { session throws(TPMError) in
                var empty = TPM2B_DIGEST()
                var selection = TPM.selection([Self.pcr])
                try tpm.check("PolicyPCR", Esys_PolicyPCR(tpm.context, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                          &empty, &selection))
                var handle = ESYS_TR(ESYS_TR_NONE)
                try tpm.check("FromTPMPublic", Esys_TR_FromTPMPublic(tpm.context, Self.counter.index, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                                     ESYS_TR(ESYS_TR_NONE), &handle))
                var operand = TPM2B_OPERAND()
                operand.size = 8
                withUnsafeMutableBytes(of: &operand.buffer) { $0.copyBytes(from: PolicyDigest.be64(first)) }
                try tpm.check("PolicyNV", Esys_PolicyNV(tpm.context, handle, handle, session, ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE),
                                                        ESYS_TR(ESYS_TR_NONE), &operand, 0, 0))
            }
        } throws: { "\($0)".contains("refused PolicyNV") }

        let renewed = try Self.approve(tpm, ref: ref, key: key)
        #expect(try tpm.unseal(sealed, approvedBy: renewed, authority: authority) == Array("kek".utf8))
    }

    @Test func theCounterSurvivesARebootAndNeverGoesBack() throws {
        var swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let start = try TPM(tcti: swtpm.tcti).ensure(Self.counter)
        try TPM(tcti: swtpm.tcti).increment(Self.counter)
        let state = swtpm.state
        swtpm.powerOff()
        swtpm = try SoftwareTPM(state: state)
        #expect(try TPM(tcti: swtpm.tcti).value(of: Self.counter) == start + 1)
        #expect { try TPM(tcti: swtpm.tcti).value(of: MonotonicCounter(index: 0x0180_0001)) } throws: { "\($0)".contains("no counter at NV index") }
    }
}
