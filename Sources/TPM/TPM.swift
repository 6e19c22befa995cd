import CTSS2
import TPMPolicy
import Foundation

/// A TPM 2.0, through tpm2-tss's ESAPI: a real device (`device:/dev/tpmrm0`) or, in tests,
/// swtpm on loopback (`swtpm:host=127.0.0.1,port=N`). PCRs are read and extended in the SHA-256
/// bank. Secrets are sealed to the current values of chosen PCRs under the owner hierarchy's
/// storage key, and unseal only while those PCRs hold the same values.
///
/// Not thread-safe: one caller at a time (the Engine's security zone owns it).
public final class TPM: @unchecked Sendable {
    var context: OpaquePointer?
    private var tcti: OpaquePointer?

    /// Opens the TPM that `tcti` names (tpm2-tss's TCTI configuration string) and starts it up
    /// when nobody has yet.
    public init(tcti configuration: String) throws(TPMError) {
        Self.quietLibraryLog
        var tcti: OpaquePointer?
        let loaded = Tss2_TctiLdr_Initialize(configuration, &tcti)
        guard loaded == TSS2_RC_SUCCESS, let tcti else {
            throw .unreachable(configuration, TPMError.decode(loaded))
        }
        var context: OpaquePointer?
        let initialized = Esys_Initialize(&context, tcti, nil)
        guard initialized == TSS2_RC_SUCCESS, let context else {
            var loose: OpaquePointer? = tcti
            Tss2_TctiLdr_Finalize(&loose)
            throw .unreachable(configuration, TPMError.decode(initialized))
        }
        self.tcti = tcti
        self.context = context
        let startup = Esys_Startup(context, TPM2_SU(Self.suClear))
        // TPM2_RC_INITIALIZE: already started (by the firmware, or swtpm's startup-clear flag).
        guard startup == TSS2_RC_SUCCESS || startup == Self.rcInitialize else {
            throw .failed("TPM2_Startup", startup, TPMError.decode(startup))
        }
    }

    /// tpm2-tss logs its own errors to standard error; Hearth reports them itself, with the
    /// remedy. `TSS2_LOG` set by the user wins.
    private static let quietLibraryLog: Void = {
        if getenv("TSS2_LOG") == nil { setenv("TSS2_LOG", "all+NONE", 0) }
    }()

    deinit {
        Esys_Finalize(&context)
        Tss2_TctiLdr_Finalize(&tcti)
    }

    // MARK: PCRs

    /// The SHA-256 bank's value of PCR `index` (0...23).
    public func pcr(_ index: Int) throws(TPMError) -> [UInt8] {
        var selection = Self.selection([index])
        var counter: UInt32 = 0
        var selectionOut: UnsafeMutablePointer<TPML_PCR_SELECTION>?
        var values: UnsafeMutablePointer<TPML_DIGEST>?
        try check("TPM2_PCR_Read", Esys_PCR_Read(context, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                 &selection, &counter, &selectionOut, &values))
        defer { Esys_Free(selectionOut); Esys_Free(values) }
        guard let values, values.pointee.count == 1 else { throw .failed("TPM2_PCR_Read", 0, "PCR \(index) is not in the SHA-256 bank") }
        return Self.bytes(of: values.pointee.digests.0)
    }

    /// Extends PCR `index` with a SHA-256 digest: new = SHA-256(old ‖ digest).
    public func extend(_ index: Int, sha256 digest: [UInt8]) throws(TPMError) {
        guard digest.count == 32, (0...23).contains(index) else { throw .invalid("a PCR extend takes PCR 0 to 23 and a 32-byte SHA-256 digest") }
        var values = TPML_DIGEST_VALUES()
        values.count = 1
        values.digests.0.hashAlg = TPMI_ALG_HASH(Self.algSHA256)
        withUnsafeMutableBytes(of: &values.digests.0.digest) { raw in
            raw.copyBytes(from: digest)
        }
        try check("TPM2_PCR_Extend", Esys_PCR_Extend(context, ESYS_TR(ESYS_TR_PCR0) + ESYS_TR(index), ESYS_TR(ESYS_TR_PASSWORD),
                                                     ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), &values))
    }

    // MARK: Sealing

    /// Seals `secret` (at most 128 bytes) to the current values of `pcrs`.
    public func seal(_ secret: [UInt8], toPCRs pcrs: [Int]) throws(TPMError) -> SealedSecret {
        let policy = try pcrPolicyDigest(pcrs)
        let (publicArea, privateArea) = try create(secret, policy: policy)
        return SealedSecret(pcrs: pcrs.sorted(), publicArea: publicArea, privateArea: privateArea, policyRef: nil)
    }

    /// Seals `secret` to this TPM alone, whatever its PCRs hold: useless on another machine,
    /// but no guard against a changed boot.
    public func sealToThisTPM(_ secret: [UInt8]) throws(TPMError) -> SealedSecret {
        let (publicArea, privateArea) = try create(secret, policy: [])
        return SealedSecret(pcrs: [], publicArea: publicArea, privateArea: privateArea, policyRef: nil)
    }

    /// Creates a sealed data object under the storage key, usable only through `policy` (or,
    /// with no policy, with the empty password).
    func create(_ secret: [UInt8], policy: [UInt8]) throws(TPMError) -> (publicArea: [UInt8], privateArea: [UInt8]) {
        guard !secret.isEmpty, secret.count <= 128 else { throw .invalid("a sealed secret is 1 to 128 bytes") }
        let parent = try storageKey()
        defer { Esys_FlushContext(context, parent) }

        var sensitive = TPM2B_SENSITIVE_CREATE()
        sensitive.sensitive.data.size = UInt16(secret.count)
        withUnsafeMutableBytes(of: &sensitive.sensitive.data.buffer) { $0.copyBytes(from: secret) }
        var template = TPM2B_PUBLIC()
        template.publicArea.type = TPMI_ALG_PUBLIC(Self.algKeyedHash)
        template.publicArea.nameAlg = TPMI_ALG_HASH(Self.algSHA256)
        // Only the policy authorizes its use (no USERWITHAUTH); it never leaves this TPM.
        template.publicArea.objectAttributes = TPMA_OBJECT(Self.fixedTPM | Self.fixedParent | Self.noDA | (policy.isEmpty ? Self.userWithAuth : 0))
        template.publicArea.authPolicy.size = UInt16(policy.count)
        withUnsafeMutableBytes(of: &template.publicArea.authPolicy.buffer) { $0.copyBytes(from: policy) }
        template.publicArea.parameters.keyedHashDetail.scheme.scheme = TPMI_ALG_KEYEDHASH_SCHEME(Self.algNull)
        var outside = TPM2B_DATA()
        var creationPCR = TPML_PCR_SELECTION()
        var outPrivate: UnsafeMutablePointer<TPM2B_PRIVATE>?
        var outPublic: UnsafeMutablePointer<TPM2B_PUBLIC>?
        var creationData: UnsafeMutablePointer<TPM2B_CREATION_DATA>?
        var creationHash: UnsafeMutablePointer<TPM2B_DIGEST>?
        var ticket: UnsafeMutablePointer<TPMT_TK_CREATION>?
        try check("TPM2_Create", Esys_Create(context, parent, ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                             &sensitive, &template, &outside, &creationPCR,
                                             &outPrivate, &outPublic, &creationData, &creationHash, &ticket))
        defer { Esys_Free(outPrivate); Esys_Free(outPublic); Esys_Free(creationData); Esys_Free(creationHash); Esys_Free(ticket) }
        guard let outPrivate, let outPublic else { throw .failed("TPM2_Create", 0, "no object returned") }
        return (try Self.marshal(outPublic.pointee), try Self.marshal(outPrivate.pointee))
    }

    /// The secret, while the PCRs it was sealed to hold the values they held then; otherwise
    /// ``TPMError/policyMismatch``.
    public func unseal(_ sealed: SealedSecret) throws(TPMError) -> [UInt8] {
        guard sealed.policyRef == nil else { throw .invalid("this secret is sealed to an authorized policy; unseal it with a signed policy") }
        if sealed.pcrs.isEmpty { return try unsealWithPassword(sealed) }
        return try unseal(sealed, mismatch: .policyMismatch(sealed.pcrs)) { session throws(TPMError) in
            var emptyDigest = TPM2B_DIGEST()
            var selection = Self.selection(sealed.pcrs)
            try check("TPM2_PolicyPCR", Esys_PolicyPCR(context, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                       &emptyDigest, &selection))
        }
    }

    private func unsealWithPassword(_ sealed: SealedSecret) throws(TPMError) -> [UInt8] {
        let (parent, object) = try load(sealed)
        defer { Esys_FlushContext(context, object); Esys_FlushContext(context, parent) }
        var data: UnsafeMutablePointer<TPM2B_SENSITIVE_DATA>?
        try check("TPM2_Unseal", Esys_Unseal(context, object, ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), &data))
        defer { Esys_Free(data) }
        guard let data else { throw .failed("TPM2_Unseal", 0, "no data returned") }
        return Self.bytes(of: data.pointee)
    }

    /// Loads a sealed object under the storage key; the caller flushes both handles.
    private func load(_ sealed: SealedSecret) throws(TPMError) -> (parent: ESYS_TR, object: ESYS_TR) {
        let parent = try storageKey()
        var inPrivate: TPM2B_PRIVATE, inPublic: TPM2B_PUBLIC
        do {
            inPrivate = try Self.unmarshalPrivate(sealed.privateArea)
            inPublic = try Self.unmarshalPublic(sealed.publicArea)
        } catch {
            Esys_FlushContext(context, parent)
            throw error
        }
        var object = ESYS_TR(ESYS_TR_NONE)
        let rc = Esys_Load(context, parent, ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), &inPrivate, &inPublic, &object)
        guard rc == TSS2_RC_SUCCESS else {
            Esys_FlushContext(context, parent)
            throw .failed("TPM2_Load", rc, TPMError.decode(rc))
        }
        return (parent, object)
    }

    /// Loads `sealed`, satisfies its policy in a session with `satisfy`, and unseals it.
    func unseal(_ sealed: SealedSecret, mismatch: TPMError, satisfy: (ESYS_TR) throws(TPMError) -> Void) throws(TPMError) -> [UInt8] {
        let (parent, object) = try load(sealed)
        defer { Esys_FlushContext(context, object); Esys_FlushContext(context, parent) }
        let session = try policySession(trial: false)
        defer { Esys_FlushContext(context, session) }
        try satisfy(session)
        var data: UnsafeMutablePointer<TPM2B_SENSITIVE_DATA>?
        let rc = Esys_Unseal(context, object, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), &data)
        defer { Esys_Free(data) }
        // TPM2_RC_POLICY_FAIL, whichever session and parameter the TPM names.
        if rc & 0xFFFF_00BF == Self.rcPolicyFail {
            throw mismatch
        }
        try check("TPM2_Unseal", rc)
        guard let data else { throw .failed("TPM2_Unseal", 0, "no data returned") }
        return Self.bytes(of: data.pointee)
    }

    /// Random bytes from the TPM's generator.
    public func random(_ count: Int) throws(TPMError) -> [UInt8] {
        var result: [UInt8] = []
        while result.count < count {
            var out: UnsafeMutablePointer<TPM2B_DIGEST>?
            try check("TPM2_GetRandom", Esys_GetRandom(context, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                       UInt16(min(32, count - result.count)), &out))
            defer { Esys_Free(out) }
            if let out { result += Self.bytes(of: out.pointee) }
        }
        return result
    }

    // MARK: Internals

    /// The owner hierarchy's storage key, made afresh from the standard template: the same key
    /// every time on the same TPM, so nothing but the sealed blobs needs keeping.
    func storageKey() throws(TPMError) -> ESYS_TR {
        var template = TPM2B_PUBLIC()
        template.publicArea.type = TPMI_ALG_PUBLIC(Self.algECC)
        template.publicArea.nameAlg = TPMI_ALG_HASH(Self.algSHA256)
        template.publicArea.objectAttributes = TPMA_OBJECT(Self.fixedTPM | Self.fixedParent | Self.sensitiveDataOrigin | Self.userWithAuth
                                                           | Self.restricted | Self.decrypt | Self.noDA)
        template.publicArea.parameters.eccDetail.symmetric.algorithm = TPMI_ALG_SYM_OBJECT(Self.algAES)
        template.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128
        template.publicArea.parameters.eccDetail.symmetric.mode.aes = TPMI_ALG_SYM_MODE(Self.algCFB)
        template.publicArea.parameters.eccDetail.scheme.scheme = TPMI_ALG_ECC_SCHEME(Self.algNull)
        template.publicArea.parameters.eccDetail.curveID = TPMI_ECC_CURVE(Self.eccNISTP256)
        template.publicArea.parameters.eccDetail.kdf.scheme = TPMI_ALG_KDF(Self.algNull)
        return try createPrimary(template).handle
    }

    /// A primary key of the owner hierarchy from `template`: the same key for the same template
    /// on the same TPM. Returns its handle (the caller flushes it) and its public area.
    func createPrimary(_ template: TPM2B_PUBLIC) throws(TPMError) -> (handle: ESYS_TR, publicArea: TPMT_PUBLIC) {
        var template = template
        var sensitive = TPM2B_SENSITIVE_CREATE()
        var outside = TPM2B_DATA()
        var creationPCR = TPML_PCR_SELECTION()
        var handle = ESYS_TR(ESYS_TR_NONE)
        var outPublic: UnsafeMutablePointer<TPM2B_PUBLIC>?
        var creationData: UnsafeMutablePointer<TPM2B_CREATION_DATA>?
        var creationHash: UnsafeMutablePointer<TPM2B_DIGEST>?
        var ticket: UnsafeMutablePointer<TPMT_TK_CREATION>?
        try check("TPM2_CreatePrimary", Esys_CreatePrimary(context, ESYS_TR(ESYS_TR_RH_OWNER), ESYS_TR(ESYS_TR_PASSWORD), ESYS_TR(ESYS_TR_NONE),
                                                           ESYS_TR(ESYS_TR_NONE), &sensitive, &template, &outside, &creationPCR,
                                                           &handle, &outPublic, &creationData, &creationHash, &ticket))
        defer { Esys_Free(outPublic); Esys_Free(creationData); Esys_Free(creationHash); Esys_Free(ticket) }
        guard let outPublic else {
            Esys_FlushContext(context, handle)
            throw .failed("TPM2_CreatePrimary", 0, "no public area returned")
        }
        return (handle, outPublic.pointee.publicArea)
    }

    func policySession(trial: Bool) throws(TPMError) -> ESYS_TR {
        var symmetric = TPMT_SYM_DEF()
        symmetric.algorithm = TPMI_ALG_SYM(Self.algNull)
        var session = ESYS_TR(ESYS_TR_NONE)
        try check("TPM2_StartAuthSession", Esys_StartAuthSession(context, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                                 ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), nil,
                                                                 TPM2_SE(trial ? Self.seTrial : Self.sePolicy), &symmetric,
                                                                 TPMI_ALG_HASH(Self.algSHA256), &session))
        return session
    }

    /// The policy digest of "these PCRs hold their current values".
    private func pcrPolicyDigest(_ pcrs: [Int]) throws(TPMError) -> [UInt8] {
        guard !pcrs.isEmpty, pcrs.allSatisfy({ (0...23).contains($0) }) else { throw .invalid("seal to PCRs from 0 to 23") }
        let session = try policySession(trial: true)
        defer { Esys_FlushContext(context, session) }
        var emptyDigest = TPM2B_DIGEST()
        var selection = Self.selection(pcrs)
        try check("TPM2_PolicyPCR", Esys_PolicyPCR(context, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                   &emptyDigest, &selection))
        var digest: UnsafeMutablePointer<TPM2B_DIGEST>?
        try check("TPM2_PolicyGetDigest", Esys_PolicyGetDigest(context, session, ESYS_TR(ESYS_TR_NONE), ESYS_TR(ESYS_TR_NONE),
                                                               ESYS_TR(ESYS_TR_NONE), &digest))
        defer { Esys_Free(digest) }
        guard let digest else { throw .failed("TPM2_PolicyGetDigest", 0, "no digest returned") }
        return Self.bytes(of: digest.pointee)
    }

    func check(_ operation: String, _ rc: TSS2_RC) throws(TPMError) {
        guard rc == TSS2_RC_SUCCESS else { throw .failed(operation, rc, TPMError.decode(rc)) }
    }

    static func selection(_ pcrs: [Int]) -> TPML_PCR_SELECTION {
        var selection = TPML_PCR_SELECTION()
        selection.count = 1
        selection.pcrSelections.0.hash = TPMI_ALG_HASH(algSHA256)
        selection.pcrSelections.0.sizeofSelect = 3
        withUnsafeMutableBytes(of: &selection.pcrSelections.0.pcrSelect) { raw in
            for pcr in pcrs where (0...23).contains(pcr) { raw[pcr / 8] |= UInt8(1 << (pcr % 8)) }
        }
        return selection
    }

    /// The used bytes of a TPM2B (a size, then a buffer).
    static func bytes<T>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { raw in
            let size = Int(raw.load(as: UInt16.self))
            return Array(raw[2..<min(raw.count, 2 + size)])
        }
    }

    static func marshal(_ value: TPM2B_PUBLIC) throws(TPMError) -> [UInt8] {
        var copy = value
        var buffer = [UInt8](repeating: 0, count: MemoryLayout<TPM2B_PUBLIC>.size)
        var offset = 0
        let rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&copy, &buffer, buffer.count, &offset)
        guard rc == TSS2_RC_SUCCESS else { throw .failed("marshal public area", rc, TPMError.decode(rc)) }
        return Array(buffer.prefix(offset))
    }

    static func marshal(_ value: TPM2B_PRIVATE) throws(TPMError) -> [UInt8] {
        var copy = value
        var buffer = [UInt8](repeating: 0, count: MemoryLayout<TPM2B_PRIVATE>.size)
        var offset = 0
        let rc = Tss2_MU_TPM2B_PRIVATE_Marshal(&copy, &buffer, buffer.count, &offset)
        guard rc == TSS2_RC_SUCCESS else { throw .failed("marshal private area", rc, TPMError.decode(rc)) }
        return Array(buffer.prefix(offset))
    }

    static func unmarshalPublic(_ bytes: [UInt8]) throws(TPMError) -> TPM2B_PUBLIC {
        var value = TPM2B_PUBLIC()
        var offset = 0
        let rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(bytes, bytes.count, &offset, &value)
        guard rc == TSS2_RC_SUCCESS, offset == bytes.count else { throw .corrupt("the sealed secret's public area does not parse (\(TPMError.decode(rc)))") }
        return value
    }

    static func unmarshalPrivate(_ bytes: [UInt8]) throws(TPMError) -> TPM2B_PRIVATE {
        var value = TPM2B_PRIVATE()
        var offset = 0
        let rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(bytes, bytes.count, &offset, &value)
        guard rc == TSS2_RC_SUCCESS, offset == bytes.count else { throw .corrupt("the sealed secret's private area does not parse (\(TPMError.decode(rc)))") }
        return value
    }

    // Constants from the TPM 2.0 specification, Part 2 (tpm2-tss's macros carry casts Swift
    // does not import).
    static let algSHA256: UInt16 = 0x000B, algKeyedHash: UInt16 = 0x0008, algECC: UInt16 = 0x0023, algAES: UInt16 = 0x0006
    static let algCFB: UInt16 = 0x0043, algNull: UInt16 = 0x0010, eccNISTP256: UInt16 = 0x0003
    static let fixedTPM: UInt32 = 0x2, fixedParent: UInt32 = 0x10, sensitiveDataOrigin: UInt32 = 0x20, userWithAuth: UInt32 = 0x40
    static let noDA: UInt32 = 0x400, restricted: UInt32 = 0x10000, decrypt: UInt32 = 0x20000
    static let seTrial: UInt8 = 0x03, sePolicy: UInt8 = 0x01, suClear: UInt16 = 0x0000
    static let rcInitialize: TSS2_RC = 0x100, rcPolicyFail: TSS2_RC = 0x09D
}

/// A secret sealed by a TPM to PCR values: useless on another TPM or with other PCR values.
public struct SealedSecret: Codable, Sendable, Equatable {
    /// The PCRs it is sealed to; empty when a signed policy says which (``policyRef``).
    public var pcrs: [Int]
    public var publicArea: [UInt8]
    public var privateArea: [UInt8]
    /// For a secret sealed to an authority: the reference its approvals must name.
    public var policyRef: [UInt8]?
}

public enum TPMError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreachable(String, String)
    case failed(String, UInt32, String)
    case policyMismatch([Int])
    /// The signed policy needs the counter at `policy`; it stands at `counter`.
    case revoked(policy: UInt64, counter: UInt64)
    case notApproved(String)
    case invalid(String)
    case corrupt(String)

    public var description: String {
        switch self {
        case let .unreachable(tcti, reason):
            "no TPM answers at \(tcti): \(reason)"
        case let .failed(operation, _, reason):
            "the TPM refused \(operation): \(reason)"
        case let .policyMismatch(pcrs):
            "the TPM will not unseal: PCR \(pcrs.map(String.init).joined(separator: ", ")) no longer hold the values the secret was sealed to (what was measured changed)"
        case let .revoked(policy, counter):
            "the TPM will not unseal: the signed policy was made for counter value \(policy) and the TPM's counter stands at \(counter) (that policy was revoked; the management server must sign a new one)"
        case let .notApproved(reason):
            "the TPM will not unseal: \(reason)"
        case let .invalid(message), let .corrupt(message):
            message
        }
    }

    static func decode(_ rc: TSS2_RC) -> String {
        guard let text = Tss2_RC_Decode(rc) else { return String(format: "0x%x", rc) }
        return String(cString: text)
    }
}
