import Crypto
import Foundation
import Testing
import TestSupport
@testable import TPM
import TPMPolicy

/// Quotes: the TPM's signed word on its PCRs over a verifier's nonce, checked without a TPM.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: SoftwareTPM.binary), "needs swtpm (scripts/setup-host test)"))
struct QuoteTests {
    @Test func aQuoteVerifiesWithTheAttestationKeyAndSaysWhatThePCRHolds() throws {
        var swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let tpm = try TPM(tcti: swtpm.tcti)
        try tpm.extend(13, sha256: TPMTests.digest("engine"))
        let key = try tpm.attestationKey()
        let nonce = try tpm.random(32)
        let quote = try tpm.quote(pcrs: [13], nonce: nonce)
        let contents = try quote.verify(with: key)
        #expect(contents.nonce == nonce)
        #expect(contents.pcrs == [13])
        #expect(contents.pcrDigest == Quote.pcrDigest([try tpm.pcr(13)]))

        // One flipped byte, another key, a cut quote: each refused by name.
        var flipped = quote
        flipped.attest[flipped.attest.count - 1] ^= 1
        #expect(throws: QuoteError.badSignature) { try flipped.verify(with: key) }
        #expect(throws: QuoteError.badSignature) { try quote.verify(with: P256.Signing.PrivateKey().publicKey) }
        let forger = P256.Signing.PrivateKey()
        let cut = Array(quote.attest.prefix(20))
        let signedCut = Quote(attest: cut, signature: Array(try forger.signature(for: SHA256.hash(data: cut)).rawRepresentation))
        #expect { try signedCut.verify(with: forger.publicKey) } throws: { "\($0)".contains("malformed") }

        // The same key after a reboot: nothing to store.
        let state = swtpm.state
        swtpm.powerOff()
        swtpm = try SoftwareTPM(state: state)
        #expect(try TPM(tcti: swtpm.tcti).attestationKey().rawRepresentation == key.rawRepresentation)
    }
}
