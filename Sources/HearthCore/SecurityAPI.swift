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

    public init(pcr: Int, pcrValue: String, base: String?, components: [Component], policyRef: String, counterIndex: UInt32, counterValue: UInt64) {
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
