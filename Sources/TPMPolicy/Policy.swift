import Crypto
import Foundation

/// TPM 2.0 policy digests computed without a TPM (this module needs none: the Center signs with
/// it) (TPM 2.0 Part 3, the "policyDigest update" of
/// each command), so that a management server can sign a policy for a device it cannot reach.
/// The tests hold each formula to what a TPM computes in a trial session.
public enum PolicyDigest {
    public static let empty = [UInt8](repeating: 0, count: 32)

    /// TPM2_PolicyPCR: the PCRs in `pcrs` (SHA-256 bank) hold `values`, listed in PCR order.
    public static func pcr(_ pcrs: [Int], values: [[UInt8]], after old: [UInt8] = empty) -> [UInt8] {
        let sorted = pcrs.sorted()
        var selection = be32(1) + be16(algSHA256) + [3]
        var mask: [UInt8] = [0, 0, 0]
        for pcr in sorted where (0...23).contains(pcr) { mask[pcr / 8] |= UInt8(1 << (pcr % 8)) }
        selection += mask
        let pcrDigest = sha256(values.flatMap { $0 })
        return sha256(old + be32(0x17F) + selection + pcrDigest)
    }

    /// TPM2_PolicyNV with an equality test on the whole 8-byte value of a counter.
    public static func counterEquals(_ counter: MonotonicCounter, value: UInt64, after old: [UInt8] = empty) -> [UInt8] {
        let arguments = sha256(be64(value) + be16(0) + be16(operationEqual))
        return sha256(old + be32(0x149) + arguments + counter.name)
    }

    /// TPM2_PolicyAuthorize: any policy the key named `keyName` signed for `policyRef`.
    public static func authorize(keyName: [UInt8], policyRef: [UInt8]) -> [UInt8] {
        sha256(sha256(empty + be32(0x16A) + keyName) + policyRef)
    }

    public static let algSHA256: UInt16 = 0x000B
    public static let operationEqual: UInt16 = 0x0000

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
    public static func be16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    public static func be32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    public static func be64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
}

/// A TPM NV counter as Hearth defines it: 8 bytes that only ever go up, written with owner
/// authorization, readable by anyone (its value is no secret). A policy can require it to hold
/// one value, so bumping it revokes every policy signed for the old value, for good: a counter
/// deleted and defined again starts no lower than the highest count the TPM ever held.
public struct MonotonicCounter: Sendable, Equatable, Codable {
    /// The NV index handle, in the owner's range (0x01000000 to 0x01BFFFFF).
    public var index: UInt32

    public init(index: UInt32) {
        self.index = index
    }

    /// TPM_NT_COUNTER | OWNERWRITE | OWNERREAD | AUTHREAD | NO_DA, with WRITTEN once it was
    /// first incremented (the state every policy refers to).
    public static let attributes: UInt32 = (0x1 << 4) | 0x2 | 0x20000 | 0x40000 | 0x2000000
    public static let written: UInt32 = 0x2000_0000

    /// The index's public area, as TPM2_NV_DefineSpace takes it and its name hashes it.
    public func publicArea(written: Bool) -> [UInt8] {
        PolicyDigest.be32(index) + PolicyDigest.be16(PolicyDigest.algSHA256)
            + PolicyDigest.be32(Self.attributes | (written ? Self.written : 0)) + PolicyDigest.be16(0) + PolicyDigest.be16(8)
    }

    /// Its TPM name once written: the name policies bind to.
    public var name: [UInt8] { PolicyDigest.be16(PolicyDigest.algSHA256) + PolicyDigest.sha256(publicArea(written: true)) }
}

/// What a policy authority approves for one sealed secret: these PCRs hold these values and,
/// optionally, the counter holds this value. The authority signs it for one `policyRef` (the
/// secret's own identifier), so its signature unlocks that secret and no other.
public struct PolicyTerms: Codable, Sendable, Equatable {
    public var pcrs: [Int]
    /// The expected SHA-256 values of `pcrs`, in the same order.
    public var pcrValues: [[UInt8]]
    public var counter: MonotonicCounter?
    public var counterValue: UInt64?
    public var policyRef: [UInt8]

    public init(pcrs: [Int], pcrValues: [[UInt8]], counter: MonotonicCounter? = nil, counterValue: UInt64? = nil, policyRef: [UInt8]) {
        let order = pcrs.indices.sorted { pcrs[$0] < pcrs[$1] }
        self.pcrs = order.map { pcrs[$0] }
        self.pcrValues = order.map { pcrValues.indices.contains($0) ? pcrValues[$0] : [] }
        self.counter = counter
        self.counterValue = counterValue
        self.policyRef = policyRef
    }

    /// The policy digest a session reaches by PolicyPCR, then PolicyNV when there is a counter.
    public var approvedPolicy: [UInt8] {
        var digest = PolicyDigest.pcr(pcrs, values: pcrValues)
        if let counter, let counterValue {
            digest = PolicyDigest.counterEquals(counter, value: counterValue, after: digest)
        }
        return digest
    }

    /// What the authority signs (TPM2_PolicyAuthorize's aHash).
    public var approvalDigest: [UInt8] { PolicyDigest.sha256(approvedPolicy + policyRef) }

    /// What makes these terms unusable; empty when they are well formed.
    public var problems: [String] {
        var problems: [String] = []
        if pcrs.isEmpty || !pcrs.allSatisfy({ (0...23).contains($0) }) || Set(pcrs).count != pcrs.count { problems.append("PCRs must be distinct, from 0 to 23") }
        if pcrValues.count != pcrs.count || pcrValues.contains(where: { $0.count != 32 }) { problems.append("each PCR needs one 32-byte SHA-256 value") }
        if (counter == nil) != (counterValue == nil) { problems.append("a counter needs a value and a value a counter") }
        if policyRef.isEmpty || policyRef.count > 32 { problems.append("the policy reference is 1 to 32 bytes") }
        return problems
    }
}

/// The key that approves policies (a management server's policy key): an ECDSA P-256 key whose
/// public part the TPM loads to check approvals.
public struct PolicyAuthority: Sendable, Equatable {
    public let publicKey: P256.Signing.PublicKey

    public init(publicKey: P256.Signing.PublicKey) {
        self.publicKey = publicKey
    }

    public static func == (lhs: PolicyAuthority, rhs: PolicyAuthority) -> Bool {
        lhs.publicKey.rawRepresentation == rhs.publicKey.rawRepresentation
    }

    /// TPM2B_PUBLIC of the key: an unrestricted ECDSA/SHA-256 signing key on NIST P-256.
    public var publicArea: [UInt8] {
        let point = Array(publicKey.rawRepresentation)
        let x = Array(point[0..<32]), y = Array(point[32..<64])
        let area = PolicyDigest.be16(0x0023) + PolicyDigest.be16(PolicyDigest.algSHA256)
            + PolicyDigest.be32(0x40000 | 0x40) + PolicyDigest.be16(0)
            + PolicyDigest.be16(0x0010) + PolicyDigest.be16(0x0018) + PolicyDigest.be16(PolicyDigest.algSHA256)
            + PolicyDigest.be16(0x0003) + PolicyDigest.be16(0x0010)
            + PolicyDigest.be16(32) + x + PolicyDigest.be16(32) + y
        return area
    }

    /// The key's TPM name, which the sealed secret's policy names.
    public var name: [UInt8] { PolicyDigest.be16(PolicyDigest.algSHA256) + PolicyDigest.sha256(publicArea) }

    /// The policy digest of a secret this authority unlocks under `policyRef`.
    public func policy(for policyRef: [UInt8]) -> [UInt8] { PolicyDigest.authorize(keyName: name, policyRef: policyRef) }

    /// Signs `terms` (done by the authority, which holds the private key).
    public static func sign(_ terms: PolicyTerms, with key: P256.Signing.PrivateKey) throws -> SignedPolicy {
        let signature = try key.signature(for: PrecomputedDigest(bytes: terms.approvalDigest))
        return SignedPolicy(terms: terms, signature: Array(signature.rawRepresentation))
    }

    /// Whether this authority signed `policy`.
    public func signed(_ policy: SignedPolicy) -> Bool {
        guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: policy.signature) else { return false }
        return publicKey.isValidSignature(signature, for: PrecomputedDigest(bytes: policy.terms.approvalDigest))
    }
}

/// Policy terms with the authority's signature (ECDSA P-256, r ‖ s).
public struct SignedPolicy: Codable, Sendable, Equatable {
    public var terms: PolicyTerms
    public var signature: [UInt8]

    public init(terms: PolicyTerms, signature: [UInt8]) {
        self.terms = terms
        self.signature = signature
    }
}

/// A SHA-256 digest computed elsewhere (the TPM's aHash), to sign or verify as it is:
/// swift-crypto makes its own digest types only by hashing.
struct PrecomputedDigest: Digest {
    static let byteCount = 32
    let bytes: [UInt8]

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try bytes.withUnsafeBytes(body) }
    func makeIterator() -> IndexingIterator<[UInt8]> { bytes.makeIterator() }
    var description: String { bytes.map { String(format: "%02x", $0) }.joined() }
}
