import CTSS2
import Crypto
import TPMPolicy

extension TPM {
    /// The attestation key's public half: a restricted ECDSA P-256 signing key made afresh
    /// from the owner hierarchy's seed with a fixed template, so the same key every time on the
    /// same TPM and nothing to store. Restricted: it signs only what the TPM itself produced.
    public func attestationKey() throws(TPMError) -> P256.Signing.PublicKey {
        let (handle, key) = try createAttestationKey()
        Esys_FlushContext(context, handle)
        return key
    }

    /// A quote of `pcrs` (SHA-256 bank) over `nonce` (at most 32 bytes), signed by the
    /// attestation key.
    public func quote(pcrs: [Int], nonce: [UInt8]) throws(TPMError) -> Quote {
        guard nonce.count <= 32, !pcrs.isEmpty else { throw .invalid("a quote takes 1 or more PCRs and a nonce of at most 32 bytes") }
        let (handle, _) = try createAttestationKey()
        defer { Esys_FlushContext(context, handle) }
        var qualifying = TPM2B_DATA()
        qualifying.size = UInt16(nonce.count)
        withUnsafeMutableBytes(of: &qualifying.buffer) { $0.copyBytes(from: nonce) }
        var scheme = TPMT_SIG_SCHEME()
        scheme.scheme = TPMI_ALG_SIG_SCHEME(Self.algNull)
        var selection = Self.selection(pcrs)
        var quoted: UnsafeMutablePointer<TPM2B_ATTEST>?
        var signature: UnsafeMutablePointer<TPMT_SIGNATURE>?
        try check("TPM2_Quote", Esys_Quote(context, handle, ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                           &qualifying, &scheme, &selection, &quoted, &signature))
        defer { Esys_Free(quoted); Esys_Free(signature) }
        guard let quoted, let signature else { throw .failed("TPM2_Quote", 0, "no quote returned") }
        let r = Self.bytes(of: signature.pointee.signature.ecdsa.signatureR), s = Self.bytes(of: signature.pointee.signature.ecdsa.signatureS)
        func padded(_ value: [UInt8]) -> [UInt8] { [UInt8](repeating: 0, count: max(0, 32 - value.count)) + value.suffix(32) }
        return Quote(attest: Self.bytes(of: quoted.pointee), signature: padded(r) + padded(s))
    }

    private func createAttestationKey() throws(TPMError) -> (ESYS_TR, P256.Signing.PublicKey) {
        var template = TPM2B_PUBLIC()
        template.publicArea.type = TPMI_ALG_PUBLIC(Self.algECC)
        template.publicArea.nameAlg = TPMI_ALG_HASH(Self.algSHA256)
        template.publicArea.objectAttributes = TPMA_OBJECT(Self.fixedTPM | Self.fixedParent | Self.sensitiveDataOrigin | Self.userWithAuth
                                                           | Self.restricted | Self.signEncrypt | Self.noDA)
        template.publicArea.parameters.eccDetail.symmetric.algorithm = TPMI_ALG_SYM_OBJECT(Self.algNull)
        template.publicArea.parameters.eccDetail.scheme.scheme = TPMI_ALG_ECC_SCHEME(Self.algECDSA)
        template.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPMI_ALG_HASH(Self.algSHA256)
        template.publicArea.parameters.eccDetail.curveID = TPMI_ECC_CURVE(Self.eccNISTP256)
        template.publicArea.parameters.eccDetail.kdf.scheme = TPMI_ALG_KDF(Self.algNull)
        let (handle, publicArea) = try createPrimary(template)
        let x = Self.bytes(of: publicArea.unique.ecc.x), y = Self.bytes(of: publicArea.unique.ecc.y)
        guard let key = try? P256.Signing.PublicKey(rawRepresentation: x + y) else {
            Esys_FlushContext(context, handle)
            throw .failed("TPM2_CreatePrimary", 0, "the attestation key is not a P-256 point")
        }
        return (handle, key)
    }

    static let signEncrypt: UInt32 = 0x40000
}

// MARK: Clock

extension TPM {
    /// The TPM's clock: milliseconds it has been powered since it was last cleared. The
    /// operating system cannot set it back; it survives reboots (kept in the TPM's NV memory).
    public func clock() throws(TPMError) -> UInt64 {
        var info: UnsafeMutablePointer<TPMS_TIME_INFO>?
        try check("TPM2_ReadClock", Esys_ReadClock(context, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), &info))
        defer { Esys_Free(info) }
        guard let info else { throw .failed("TPM2_ReadClock", 0, "no time returned") }
        return info.pointee.clockInfo.clock
    }

    /// Moves the clock forward to `milliseconds` (owner authorization; a TPM clock only ever
    /// advances). For tests that need days to pass on a powered TPM.
    public func advanceClock(to milliseconds: UInt64) throws(TPMError) {
        try check("TPM2_ClockSet", Esys_ClockSet(context, ESYS_TR(ESYS_TR_RH_OWNER), ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE),
                                                 ESYS_TR(ESYS_TR_NONE), milliseconds))
    }
}
