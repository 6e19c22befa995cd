import Foundation

// The security zone's wire models (docs/SECURITY.md): what a device reports of its measured
// start, and the policy the Center signs for its work key. Bytes travel as lowercase hex.

/// A device's measured start and the terms its work key's policy must name.
public struct MeasurementReport: Codable, Sendable, Equatable {
    public struct Component: Codable, Sendable, Equatable {
        /// "engine", "configuration", "qemu", "firmware", "kernel", "initramfs".
        public var component: String
        public var path: String
        /// SHA-256 of the file as measured.
        public var sha256: String

        public init(component: String, path: String, sha256: String) {
            self.component = component
            self.path = path
            self.sha256 = sha256
        }
    }

    /// The PCR measured into and its value now.
    public var pcr: Int
    public var pcrValue: String
    /// The PCR's value before the first component, when something earlier in the boot
    /// measured into it.
    public var base: String?
    /// In the order measured; replaying them from `base` gives `pcrValue`.
    public var components: [Component]
    /// The work key's policy reference (16 random bytes).
    public var policyRef: String
    /// The TPM's NV counter every policy names, and its value.
    public var counterIndex: UInt32
    public var counterValue: UInt64
    /// The TPM's quote of the PCR over the nonce the Center gave at the previous check-in.
    public var attestation: Attestation?

    public init(pcr: Int, pcrValue: String, base: String?, components: [Component], policyRef: String, counterIndex: UInt32, counterValue: UInt64,
                attestation: Attestation? = nil) {
        self.attestation = attestation
        self.pcr = pcr
        self.pcrValue = pcrValue
        self.base = base
        self.components = components
        self.policyRef = policyRef
        self.counterIndex = counterIndex
        self.counterValue = counterValue
    }

    /// What makes the report unusable (sizes, hex, counts), in words; empty when well formed.
    public var problems: [String] {
        func isHex(_ text: String, bytes: ClosedRange<Int>) -> Bool {
            text.count % 2 == 0 && bytes.contains(text.count / 2) && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
        }
        var problems: [String] = []
        if !(0...23).contains(pcr) { problems.append("pcr must be 0 to 23") }
        if !isHex(pcrValue, bytes: 32...32) { problems.append("pcrValue must be 32 bytes of lowercase hex") }
        if let base, !isHex(base, bytes: 32...32) { problems.append("base must be 32 bytes of lowercase hex") }
        if !isHex(policyRef, bytes: 1...32) { problems.append("policyRef must be 1 to 32 bytes of lowercase hex") }
        if components.isEmpty || components.count > 64 { problems.append("components must hold 1 to 64 entries") }
        for component in components where component.component.isEmpty || component.component.count > 64 || component.path.count > 4096
            || !isHex(component.sha256, bytes: 32...32) {
            problems.append("each component needs a name (at most 64 characters), a path and a 32-byte sha256 in lowercase hex")
            break
        }
        if !(0x0100_0000...0x01BF_FFFF).contains(counterIndex) { problems.append("counterIndex must be an NV index in the owner's range") }
        if let attestation, !attestation.problems.isEmpty { problems += attestation.problems }
        return problems
    }
}

/// A policy the Center signed for a device's work key: ECDSA P-256 over the TPM's approval
/// digest (TPM2_PolicyAuthorize's aHash) of these terms.
public struct SignedMeasurementPolicy: Codable, Sendable, Equatable {
    public var pcr: Int
    public var pcrValue: String
    public var policyRef: String
    public var counterIndex: UInt32
    public var counterValue: UInt64
    /// Base64 of r ‖ s.
    public var signature: String

    public init(pcr: Int, pcrValue: String, policyRef: String, counterIndex: UInt32, counterValue: UInt64, signature: String) {
        self.pcr = pcr
        self.pcrValue = pcrValue
        self.policyRef = policyRef
        self.counterIndex = counterIndex
        self.counterValue = counterValue
        self.signature = signature
    }
}

/// A TPM quote as it travels: made by the device's attestation key (a restricted key that signs
/// only what the TPM produced) over a nonce the Center chose.
public struct Attestation: Codable, Sendable, Equatable {
    /// Base64 of the attestation key's public half (P-256, x ‖ y); the Center pins the first.
    public var key: String
    /// The nonce quoted, lowercase hex.
    public var nonce: String
    /// Base64 of TPMS_ATTEST as the TPM signed it.
    public var quote: String
    /// Base64 of the ECDSA signature, r ‖ s.
    public var signature: String

    public init(key: String, nonce: String, quote: String, signature: String) {
        self.key = key
        self.nonce = nonce
        self.quote = quote
        self.signature = signature
    }

    public var problems: [String] {
        var problems: [String] = []
        if key.count > 200 || Data(base64Encoded: key)?.count != 64 { problems.append("attestation.key must be base64 of 64 bytes") }
        if nonce.count != 64 || !nonce.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) { problems.append("attestation.nonce must be 32 bytes of lowercase hex") }
        if quote.count > 2048 || Data(base64Encoded: quote) == nil { problems.append("attestation.quote must be base64 of at most 1 KiB") }
        if signature.count > 200 || Data(base64Encoded: signature)?.count != 64 { problems.append("attestation.signature must be base64 of 64 bytes") }
        return problems
    }
}

/// What a device proves of a wipe (inside its wipe receipt): the counter every policy of the
/// erased work key named was moved, and a wipe event naming the command and the counter's values
/// was measured; the quote, over the nonce of the check-in that delivered the wipe, vouches for it.
public struct WipeEvidence: Codable, Sendable, Equatable {
    public var pcr: Int
    public var base: String?
    /// The boot's measurements, the wipe event last.
    public var components: [MeasurementReport.Component]
    public var counterIndex: UInt32
    public var counterBefore: UInt64
    public var counterAfter: UInt64
    public var attestation: Attestation

    public init(pcr: Int, base: String?, components: [MeasurementReport.Component], counterIndex: UInt32, counterBefore: UInt64,
                counterAfter: UInt64, attestation: Attestation) {
        self.pcr = pcr
        self.base = base
        self.components = components
        self.counterIndex = counterIndex
        self.counterBefore = counterBefore
        self.counterAfter = counterAfter
        self.attestation = attestation
    }

    /// The text whose SHA-256 is the wipe event's measurement.
    public static func event(command: String, counterBefore: UInt64, counterAfter: UInt64) -> String {
        "hearth wipe \(command): counter \(counterBefore) -> \(counterAfter)"
    }
}
