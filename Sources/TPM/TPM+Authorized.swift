import CTSS2
import TPMPolicy

// MARK: Counters

extension TPM {
    /// The counter's value, defining and first incrementing it when it does not exist yet (a
    /// counter reads only once written). Needs owner authorization (empty, as on most PCs).
    @discardableResult
    public func ensure(_ counter: MonotonicCounter) throws(TPMError) -> UInt64 {
        if let handle = try nvHandle(counter) {
            defer { close(handle) }
            if try isWritten(handle) { return try read(handle, counter) }
            return try increment(handle, counter)
        }
        var publicInfo = TPM2B_NV_PUBLIC()
        publicInfo.nvPublic.nvIndex = counter.index
        publicInfo.nvPublic.nameAlg = TPMI_ALG_HASH(Self.algSHA256)
        publicInfo.nvPublic.attributes = MonotonicCounter.attributes
        publicInfo.nvPublic.dataSize = 8
        var auth = TPM2B_AUTH()
        var handle = ESYS_TR(ESYS_TR_NONE)
        try check("TPM2_NV_DefineSpace", Esys_NV_DefineSpace(context, ESYS_TR(ESYS_TR_RH_OWNER), ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE),
                                                             ESYS_TR(ESYS_TR_NONE), &auth, &publicInfo, &handle))
        defer { close(handle) }
        return try increment(handle, counter)
    }

    /// The counter's value; ``TPMError/invalid(_:)`` when it is not defined.
    public func value(of counter: MonotonicCounter) throws(TPMError) -> UInt64 {
        guard let handle = try nvHandle(counter) else { throw .invalid(Self.absent(counter)) }
        defer { close(handle) }
        return try read(handle, counter)
    }

    /// Adds one to the counter and returns the new value. It never goes back.
    @discardableResult
    public func increment(_ counter: MonotonicCounter) throws(TPMError) -> UInt64 {
        guard let handle = try nvHandle(counter) else { throw .invalid(Self.absent(counter)) }
        defer { close(handle) }
        return try increment(handle, counter)
    }

    /// The counter's TPM name as the TPM reports it (a policy binds to it).
    public func name(of counter: MonotonicCounter) throws(TPMError) -> [UInt8] {
        guard let handle = try nvHandle(counter) else { throw .invalid(Self.absent(counter)) }
        defer { close(handle) }
        var name: UnsafeMutablePointer<TPM2B_NAME>?
        try check("Esys_TR_GetName", Esys_TR_GetName(context, handle, &name))
        defer { Esys_Free(name) }
        guard let name else { return [] }
        return Self.bytes(of: name.pointee)
    }

    private func increment(_ handle: ESYS_TR, _ counter: MonotonicCounter) throws(TPMError) -> UInt64 {
        try check("TPM2_NV_Increment", Esys_NV_Increment(context, ESYS_TR(ESYS_TR_RH_OWNER), handle, ESYS_TR(ESYS_TR_PASSWORD),
                                                         ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE)))
        return try read(handle, counter)
    }

    private func read(_ handle: ESYS_TR, _ counter: MonotonicCounter) throws(TPMError) -> UInt64 {
        var data: UnsafeMutablePointer<TPM2B_MAX_NV_BUFFER>?
        try check("TPM2_NV_Read", Esys_NV_Read(context, handle, handle, ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                               8, 0, &data))
        defer { Esys_Free(data) }
        guard let data else { throw .failed("TPM2_NV_Read", 0, "no data returned") }
        let bytes = Self.bytes(of: data.pointee)
        guard bytes.count == 8 else { throw .corrupt("NV index 0x\(String(counter.index, radix: 16)) is not an 8-byte counter") }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    private func isWritten(_ handle: ESYS_TR) throws(TPMError) -> Bool {
        var publicArea: UnsafeMutablePointer<TPM2B_NV_PUBLIC>?
        var name: UnsafeMutablePointer<TPM2B_NAME>?
        try check("TPM2_NV_ReadPublic", Esys_NV_ReadPublic(context, handle, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                           &publicArea, &name))
        defer { Esys_Free(publicArea); Esys_Free(name) }
        return (publicArea?.pointee.nvPublic.attributes ?? 0) & MonotonicCounter.written != 0
    }

    /// The ESYS handle of a defined NV index, nil when it is not defined.
    private func nvHandle(_ counter: MonotonicCounter) throws(TPMError) -> ESYS_TR? {
        guard (0x0100_0000...0x01BF_FFFF).contains(counter.index) else { throw .invalid("NV index 0x\(String(counter.index, radix: 16)) is outside the owner's range") }
        var handle = ESYS_TR(ESYS_TR_NONE)
        let rc = Esys_TR_FromTPMPublic(context, counter.index, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), &handle)
        // TPM2_RC_HANDLE: nothing is defined there.
        if rc & 0xFFFF_00BF == Self.rcHandle { return nil }
        try check("TPM2_NV_ReadPublic", rc)
        return handle
    }

    private func close(_ handle: ESYS_TR) {
        var handle = handle
        Esys_TR_Close(context, &handle)
    }

    private static func absent(_ counter: MonotonicCounter) -> String {
        "the TPM has no counter at NV index 0x\(String(counter.index, radix: 16))"
    }
}

// MARK: Authorized policies

extension TPM {
    /// Seals `secret` so that it unseals under any policy `authority` signs for `policyRef`,
    /// and no other: a new signature, not a new seal, follows a legitimate change of what is
    /// measured.
    public func seal(_ secret: [UInt8], authorizedBy authority: PolicyAuthority, policyRef: [UInt8]) throws(TPMError) -> SealedSecret {
        guard !policyRef.isEmpty, policyRef.count <= 32 else { throw .invalid("the policy reference is 1 to 32 bytes") }
        let (publicArea, privateArea) = try create(secret, policy: authority.policy(for: policyRef))
        return SealedSecret(pcrs: [], publicArea: publicArea, privateArea: privateArea, policyRef: policyRef)
    }

    /// The secret, when `policy` is signed by `authority` for this secret and its terms hold:
    /// the PCRs have the values it names and the counter the value it names. Each failure is
    /// its own error: not approved, a PCR changed (tamper), or the counter moved (revoked).
    public func unseal(_ sealed: SealedSecret, approvedBy policy: SignedPolicy, authority: PolicyAuthority) throws(TPMError) -> [UInt8] {
        let terms = policy.terms
        guard let policyRef = sealed.policyRef else { throw .invalid("this secret is sealed to PCRs, not to an authority; unseal it without a policy") }
        guard terms.problems.isEmpty else { throw .invalid("the signed policy is malformed: \(terms.problems.joined(separator: "; "))") }
        guard authority.signed(policy) else { throw .notApproved("the policy is not signed by the policy authority") }
        guard terms.policyRef == policyRef else { throw .notApproved("the policy was signed for another secret") }
        // A revoked policy is revoked whatever the PCRs hold: the counter first.
        if let counter = terms.counter, let expected = terms.counterValue {
            let current = try value(of: counter)
            guard current == expected else { throw .revoked(policy: expected, counter: current) }
        }
        var changed: [Int] = []
        for (pcr, expected) in zip(terms.pcrs, terms.pcrValues) where try self.pcr(pcr) != expected { changed.append(pcr) }
        guard changed.isEmpty else { throw .policyMismatch(changed) }

        return try unseal(sealed, mismatch: .policyMismatch(terms.pcrs)) { session throws(TPMError) in
            var emptyDigest = TPM2B_DIGEST()
            var selection = Self.selection(terms.pcrs)
            try check("TPM2_PolicyPCR", Esys_PolicyPCR(context, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                       &emptyDigest, &selection))
            if let counter = terms.counter, let value = terms.counterValue {
                guard let handle = try nvHandle(counter) else { throw .invalid(Self.absent(counter)) }
                defer { close(handle) }
                var operand = TPM2B_OPERAND()
                operand.size = 8
                withUnsafeMutableBytes(of: &operand.buffer) { $0.copyBytes(from: PolicyDigest.be64(value)) }
                try check("TPM2_PolicyNV", Esys_PolicyNV(context, handle, handle, session, ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE),
                                                         ESYS_TR(ESYS_TR_NONE), &operand, 0, TPM2_EO(PolicyDigest.operationEqual)))
            }
            try authorize(session, terms: terms, signature: policy.signature, authority: authority)
        }
    }

    /// The session's policy digest so far (for tests that hold the formulas to the TPM).
    func trialDigest(_ steps: (ESYS_TR) throws(TPMError) -> Void) throws(TPMError) -> [UInt8] {
        let session = try policySession(trial: true)
        defer { Esys_FlushContext(context, session) }
        try steps(session)
        var digest: UnsafeMutablePointer<TPM2B_DIGEST>?
        try check("TPM2_PolicyGetDigest", Esys_PolicyGetDigest(context, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                               ESYS_TR(ESYS_TR_NONE), &digest))
        defer { Esys_Free(digest) }
        return digest.map { Self.bytes(of: $0.pointee) } ?? []
    }

    /// The authority's name as the TPM computes it, for tests.
    func loadedName(of authority: PolicyAuthority) throws(TPMError) -> [UInt8] {
        let key = try load(authority)
        defer { Esys_FlushContext(context, key) }
        var name: UnsafeMutablePointer<TPM2B_NAME>?
        try check("Esys_TR_GetName", Esys_TR_GetName(context, key, &name))
        defer { Esys_Free(name) }
        return name.map { Self.bytes(of: $0.pointee) } ?? []
    }

    /// TPM2_VerifySignature of the approval, then TPM2_PolicyAuthorize with its ticket.
    private func authorize(_ session: ESYS_TR, terms: PolicyTerms, signature: [UInt8], authority: PolicyAuthority) throws(TPMError) {
        let key = try load(authority)
        defer { Esys_FlushContext(context, key) }
        var digest = Self.digest(terms.approvalDigest)
        var tpmSignature = TPMT_SIGNATURE()
        tpmSignature.sigAlg = TPMI_ALG_SIG_SCHEME(Self.algECDSA)
        tpmSignature.signature.ecdsa.hash = TPMI_ALG_HASH(Self.algSHA256)
        tpmSignature.signature.ecdsa.signatureR.size = 32
        tpmSignature.signature.ecdsa.signatureS.size = 32
        withUnsafeMutableBytes(of: &tpmSignature.signature.ecdsa.signatureR.buffer) { $0.copyBytes(from: signature.prefix(32)) }
        withUnsafeMutableBytes(of: &tpmSignature.signature.ecdsa.signatureS.buffer) { $0.copyBytes(from: signature.dropFirst(32).prefix(32)) }
        var ticket: UnsafeMutablePointer<TPMT_TK_VERIFIED>?
        try check("TPM2_VerifySignature", Esys_VerifySignature(context, key, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                               &digest, &tpmSignature, &ticket))
        defer { Esys_Free(ticket) }
        guard let ticket else { throw .failed("TPM2_VerifySignature", 0, "no ticket returned") }
        var approved = Self.digest(terms.approvedPolicy)
        var reference = TPM2B_NONCE()
        reference.size = UInt16(terms.policyRef.count)
        withUnsafeMutableBytes(of: &reference.buffer) { $0.copyBytes(from: terms.policyRef) }
        var keyName = TPM2B_NAME()
        let name = authority.name
        keyName.size = UInt16(name.count)
        withUnsafeMutableBytes(of: &keyName.name) { $0.copyBytes(from: name) }
        try check("TPM2_PolicyAuthorize", Esys_PolicyAuthorize(context, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                               &approved, &reference, &keyName, ticket))
    }

    /// Loads the authority's public key into the owner hierarchy (a ticket from the null
    /// hierarchy would not authorize anything).
    private func load(_ authority: PolicyAuthority) throws(TPMError) -> ESYS_TR {
        let area = authority.publicArea
        var inPublic = try Self.unmarshalPublic(PolicyDigest.be16(UInt16(area.count)) + area)
        var key = ESYS_TR(ESYS_TR_NONE)
        try check("TPM2_LoadExternal", Esys_LoadExternal(context, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                         nil, &inPublic, ESYS_TR(ESYS_TR_RH_OWNER), &key))
        return key
    }

    static func digest(_ bytes: [UInt8]) -> TPM2B_DIGEST {
        var digest = TPM2B_DIGEST()
        digest.size = UInt16(bytes.count)
        withUnsafeMutableBytes(of: &digest.buffer) { $0.copyBytes(from: bytes) }
        return digest
    }

    static let algECDSA: UInt16 = 0x0018, rcHandle: TSS2_RC = 0x08B
}
