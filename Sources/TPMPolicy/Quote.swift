import Crypto
import Foundation

/// A TPM quote: the TPM's signed statement (TPMS_ATTEST) of what its PCRs hold, over a nonce the
/// verifier chose, with its clock; made by a restricted attestation key, which signs nothing the
/// TPM did not produce itself.
public struct Quote: Codable, Sendable, Equatable {
    /// TPMS_ATTEST as the TPM marshalled and signed it.
    public var attest: [UInt8]
    /// ECDSA P-256 over SHA-256 of `attest`, r ‖ s.
    public var signature: [UInt8]

    public init(attest: [UInt8], signature: [UInt8]) {
        self.attest = attest
        self.signature = signature
    }

    /// What a verified quote says.
    public struct Contents: Sendable, Equatable {
        public var nonce: [UInt8]
        public var pcrs: [Int]
        /// SHA-256 of the quoted PCRs' values, concatenated in PCR order.
        public var pcrDigest: [UInt8]
        /// Milliseconds the TPM has been powered since it was last cleared; never goes back.
        public var clock: UInt64
        public var resetCount: UInt32
        public var restartCount: UInt32
    }

    /// Checks the signature with the attestation key, then reads what was signed; every
    /// malformed or unsigned part is an error naming it.
    public func verify(with key: P256.Signing.PublicKey) throws(QuoteError) -> Contents {
        guard attest.count <= 1024 else { throw .malformed("the quote is longer than any TPM makes") }
        guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signature),
              key.isValidSignature(signature, for: SHA256.hash(data: attest)) else {
            throw .badSignature
        }
        var reader = Reader(bytes: attest)
        guard try reader.u32() == 0xFF54_4347 else { throw .malformed("not a TPM-generated structure (magic)") }
        guard try reader.u16() == 0x8018 else { throw .malformed("not a quote (type)") }
        _ = try reader.sized() // qualifiedSigner
        let nonce = try reader.sized()
        let clock = try reader.u64(), resetCount = try reader.u32(), restartCount = try reader.u32()
        _ = try reader.u8() // safe
        _ = try reader.u64() // firmwareVersion
        let selections = try reader.u32()
        guard selections <= 4 else { throw .malformed("too many PCR selections") }
        var pcrs: [Int] = []
        for _ in 0..<selections {
            let hash = try reader.u16()
            let size = Int(try reader.u8())
            guard size <= 4 else { throw .malformed("a PCR selection is longer than 4 bytes") }
            let mask = try reader.take(size)
            guard hash == PolicyDigest.algSHA256 else { continue }
            for (byte, bits) in mask.enumerated() { for bit in 0..<8 where bits & (1 << bit) != 0 { pcrs.append(byte * 8 + bit) } }
        }
        let digest = try reader.sized()
        return Contents(nonce: nonce, pcrs: pcrs, pcrDigest: digest, clock: clock, resetCount: resetCount, restartCount: restartCount)
    }

    /// The digest a quote of these PCR values carries.
    public static func pcrDigest(_ values: [[UInt8]]) -> [UInt8] { PolicyDigest.sha256(values.flatMap { $0 }) }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func take(_ count: Int) throws(QuoteError) -> [UInt8] {
            guard count >= 0, offset + count <= bytes.count else { throw .malformed("it ends at byte \(bytes.count), inside a field at \(offset)") }
            defer { offset += count }
            return Array(bytes[offset..<offset + count])
        }
        mutating func u8() throws(QuoteError) -> UInt8 { try take(1)[0] }
        mutating func u16() throws(QuoteError) -> UInt16 { try take(2).reduce(0) { $0 << 8 | UInt16($1) } }
        mutating func u32() throws(QuoteError) -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
        mutating func u64() throws(QuoteError) -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }
        mutating func sized() throws(QuoteError) -> [UInt8] { try take(Int(try u16())) }
    }
}

public enum QuoteError: Error, Sendable, Equatable, CustomStringConvertible {
    case badSignature
    case malformed(String)

    public var description: String {
        switch self {
        case .badSignature: "the quote is not signed by the device's attestation key"
        case .malformed(let reason): "the quote is malformed: \(reason)"
        }
    }
}
