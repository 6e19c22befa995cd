import Crypto
import Foundation
import HearthCore
import Logging
import TPM
import TPMPolicy

/// The Engine's security zone (docs/SECURITY.md): what the Engine runs is measured into a TPM
/// PCR before any VM starts; the work key (the key-encryption key of work VMs' disks) is sealed
/// to a policy the Center's policy key signs, so it unseals only while the measurements are the
/// approved ones; each disk has its own data key, wrapped by its role's key; a wipe destroys
/// the work key for good by moving the TPM counter every policy names.
///
/// Safe to call from any task: calls are serialised.
public final class SecurityZone: @unchecked Sendable {
    // @unchecked: the mutable state and the TPM's context are used under `lock` only.
    public enum Mode: Sendable, Equatable {
        /// A TPM through tpm2-tss's TCTI (`device:/dev/tpmrm0`, or swtpm in tests).
        case tpm(tcti: String)
        /// No TPM, on purpose: for development only. Disks are not encrypted, and the Engine
        /// says so at every start and reports it at check-in.
        case insecureDevelopment
    }

    /// What the zone can vouch for now.
    public enum Standing: Sendable, Equatable {
        /// Measured, approved, the work key unsealed.
        case secure
        /// Measured, but the Center has not approved these measurements (yet).
        case unapproved(String)
        /// A measured component changed, or the PCR holds what the log cannot explain.
        case tampered(String)
        /// The policy the Engine holds was revoked (the counter moved past it).
        case revoked(String)
        /// No TPM answered, and the Engine was not told to run without one.
        case noTPM(String)
        case insecureDevelopment

        /// The word reported at check-in.
        public var report: String {
            switch self {
            case .secure: "ok"
            case .unapproved: "unapproved"
            case .tampered: "tampered"
            case .revoked: "revoked"
            case .noTPM: "no-tpm"
            case .insecureDevelopment: "insecure-development"
            }
        }
    }

    /// The PCR the Engine measures into: one of the operating system's (8–15), never reset
    /// before a reboot.
    public static let pcr = 13
    /// The counter every work-key policy names (an NV index in the owner's range).
    public static let counter = MonotonicCounter(index: 0x0180_4845)

    public let mode: Mode
    public private(set) var standing: Standing {
        get { lock.withLock { _standing } }
        set { lock.withLock { _standing = newValue } }
    }
    /// The measured start of this boot.
    public private(set) var eventLog: EventLog? {
        get { lock.withLock { _eventLog } }
        set { lock.withLock { _eventLog = newValue } }
    }
    private var _standing: Standing
    private var _eventLog: EventLog?
    /// The Engine, its management zone and the lease call in from different tasks; the TPM's
    /// context and the keys take one at a time. Recursive: entry points call each other.
    private let lock = NSRecursiveLock()
    private let directory: String
    private let bootID: String
    let logger: Logger
    private var tpm: TPM?
    private var workKey: SymmetricKey?
    private var personalKey: SymmetricKey?

    /// Opens the zone's folder (ROOT/security) and, in TPM mode, the TPM. Nothing is measured
    /// until ``start(measuring:)``.
    ///
    /// - Parameter bootID: names this boot of the PC; measurements are made once per boot.
    public init(mode: Mode, root: String, bootID: String = SecurityZone.currentBootID(), logger: Logger = Logger(label: "hearth.security")) {
        self.mode = mode
        self.directory = "\(root)/security"
        self.bootID = bootID
        self.logger = logger
        switch mode {
        case .insecureDevelopment:
            _standing = .insecureDevelopment
        case .tpm(let tcti):
            do {
                tpm = try TPM(tcti: tcti)
                _standing = .unapproved("not measured yet")
            } catch {
                _standing = .noTPM("\(error); a PC without a TPM runs work desktops only with 'hearth engine run --insecure-no-tpm', for development")
            }
        }
    }

    // MARK: Measured start

    /// Measures `components` into the PCR (once per boot: a restarted Engine measures only
    /// what changed since), then unseals the keys. Call before any VM starts.
    public func start(measuring components: [(component: String, path: String)]) {
        lock.withLock {
            guard let tpm else {
                if case .insecureDevelopment = mode { logger.warning("INSECURE: no TPM; VM disks are not encrypted and nothing is measured (development only)") }
                return
            }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                try tpm.ensure(Self.counter)
                eventLog = try measure(components, tpm: tpm)
                personalKey = try openPersonalKey(tpm)
                unsealWorkKey()
            } catch let error as ZoneProblem {
                standing = error.standing
            } catch {
                standing = .tampered("the security zone could not start: \(error)")
            }
            logStanding()
        }
    }

    private struct Measurements: Codable {
        var bootID: String
        var log: EventLog
    }

    private struct ZoneProblem: Error {
        var standing: Standing
    }

    private func measure(_ components: [(component: String, path: String)], tpm: TPM) throws -> EventLog {
        let file = "\(directory)/measurements.json"
        let current = try tpm.pcr(Self.pcr)
        if let data = FileManager.default.contents(atPath: file),
           let stored = try? JSONDecoder().decode(Measurements.self, from: data), stored.bootID == bootID {
            guard stored.log.replay() == current else {
                throw ZoneProblem(standing: .tampered("PCR \(Self.pcr) holds a value this boot's event log does not explain: something else was measured into it"))
            }
            // Measured earlier in this boot: measure again only what changed since.
            var log = stored.log
            let changed = try components.filter { component in
                let digest = try EventLog.sha256(ofFile: component.path).map { String(format: "%02x", $0) }.joined()
                return stored.log.events.last(where: { $0.component == component.component })?.sha256 != digest
            }
            if !changed.isEmpty {
                try tpm.measure(changed, appendingTo: &log)
                try save(Measurements(bootID: bootID, log: log), to: file)
            }
            return log
        }
        let log = try tpm.measure(components, into: Self.pcr)
        try save(Measurements(bootID: bootID, log: log), to: file)
        return log
    }

    // MARK: Keys

    /// What the Center needs to approve this Engine: the work key's policy reference, the
    /// PCR's value with the log that explains it, and the counter's value.
    public struct ApprovalRequest: Codable, Sendable, Equatable {
        public var policyRef: [UInt8]
        public var pcr: Int
        public var pcrValue: [UInt8]
        public var counter: MonotonicCounter
        public var counterValue: UInt64
        public var eventLog: EventLog
    }

    /// Installs the Center's policy key: a work key is made and sealed to it if there is none.
    /// Returns what the Center must sign.
    public func trust(authority: PolicyAuthority) throws -> ApprovalRequest {
        return try lock.withLock {
            guard let tpm, let eventLog else { throw EngineError.security(standing.reason ?? "the security zone has no TPM") }
            try save(authority.publicKey.rawRepresentation, to: "\(directory)/authority.key")
            if loadSealedWorkKey(for: authority) == nil {
                let ref = try tpm.random(16)
                let sealed = try tpm.seal(try tpm.random(32), authorizedBy: authority, policyRef: ref)
                try save(StoredWorkKey(authority: Array(authority.publicKey.rawRepresentation), sealed: sealed), to: "\(directory)/work-key.json")
            }
            let sealed = try loadSealedWorkKey(for: authority).orThrow("the work key just made cannot be read back")
            return ApprovalRequest(policyRef: sealed.policyRef ?? [], pcr: Self.pcr, pcrValue: try tpm.pcr(Self.pcr), counter: Self.counter,
                                   counterValue: try tpm.value(of: Self.counter), eventLog: eventLog)
        }
    }

    /// The Center's policy key this zone trusts, once one was installed.
    public var authority: PolicyAuthority? {
        guard let raw = FileManager.default.contents(atPath: "\(directory)/authority.key"),
              let key = try? P256.Signing.PublicKey(rawRepresentation: raw) else { return nil }
        return PolicyAuthority(publicKey: key)
    }

    /// What to report at check-in: the measured start and the work key's terms, once the
    /// Center's key is trusted; nil without a TPM.
    ///
    /// - Parameter nonce: the Center's nonce from the last check-in; the report then carries the
    ///   TPM's quote of the PCR over it.
    public func measurementReport(nonce: [UInt8]? = nil) -> MeasurementReport? {
        return lock.withLock {
            guard let tpm, let eventLog, let authority, let sealed = loadSealedWorkKey(for: authority), let reference = sealed.policyRef,
                  let pcrValue = try? tpm.pcr(Self.pcr), let counterValue = try? tpm.value(of: Self.counter) else { return nil }
            return MeasurementReport(pcr: Self.pcr, pcrValue: Self.hex(pcrValue), base: eventLog.base,
                                     components: eventLog.events.map { .init(component: $0.component, path: $0.path, sha256: $0.sha256) },
                                     policyRef: Self.hex(reference), counterIndex: Self.counter.index, counterValue: counterValue,
                                     attestation: nonce.flatMap { try? attestation(nonce: $0) })
        }
    }

    /// The TPM's quote of the PCR over `nonce`, with the attestation key that made it.
    public func attestation(nonce: [UInt8]) throws -> Attestation? {
        return try lock.withLock {
            guard let tpm else { return nil }
            let quote = try tpm.quote(pcrs: [Self.pcr], nonce: nonce)
            return Attestation(key: try tpm.attestationKey().rawRepresentation.base64EncodedString(), nonce: Self.hex(nonce),
                               quote: Data(quote.attest).base64EncodedString(), signature: Data(quote.signature).base64EncodedString())
        }
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Installs a policy the Center signed, as it comes over the wire.
    public func install(_ policy: SignedMeasurementPolicy) throws {
        guard let signature = Data(base64Encoded: policy.signature) else { throw EngineError.security("the Center's policy signature is not base64") }
        try install(SignedPolicy(terms: PolicyTerms(pcrs: [policy.pcr], pcrValues: [EventLog.bytes(hex: policy.pcrValue)],
                                                    counter: MonotonicCounter(index: policy.counterIndex), counterValue: policy.counterValue,
                                                    policyRef: EventLog.bytes(hex: policy.policyRef)),
                                 signature: Array(signature)))
    }

    /// Installs a policy the Center signed and unseals the work key with it.
    /// Kept only when it unseals the key: a policy that does not never replaces one that did.
    public func install(_ policy: SignedPolicy) throws {
        try lock.withLock {
            let before = standing
            unsealWorkKey(with: policy)
            logStanding()
            guard standing == .secure else {
                let reason = standing.reason ?? "the policy did not unseal the work key"
                if before == .secure { unsealWorkKey() }
                throw EngineError.security(reason)
            }
            try save(policy, to: "\(directory)/policy.json")
        }
    }

    private struct StoredWorkKey: Codable {
        var authority: [UInt8]
        var sealed: SealedSecret
    }

    private func loadSealedWorkKey(for authority: PolicyAuthority) -> SealedSecret? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/work-key.json"),
              let stored = try? JSONDecoder().decode(StoredWorkKey.self, from: data),
              stored.authority == Array(authority.publicKey.rawRepresentation) else { return nil }
        return stored.sealed
    }

    /// Unseals the work key with `candidate`, or with the stored policy, and sets the standing.
    private func unsealWorkKey(with candidate: SignedPolicy? = nil) {
        guard let tpm else { return }
        workKey = nil
        guard let raw = FileManager.default.contents(atPath: "\(directory)/authority.key"),
              let publicKey = try? P256.Signing.PublicKey(rawRepresentation: raw) else {
            standing = .unapproved("this Engine has no policy key from a Center yet (it comes at enrollment)")
            return
        }
        let authority = PolicyAuthority(publicKey: publicKey)
        guard let sealed = loadSealedWorkKey(for: authority) else {
            standing = .unapproved("there is no work key yet; it is made when the Center's policy key is installed")
            return
        }
        guard let policy = candidate ?? FileManager.default.contents(atPath: "\(directory)/policy.json").flatMap({ try? JSONDecoder().decode(SignedPolicy.self, from: $0) }) else {
            standing = .unapproved("the Center has not yet approved this Engine's measurements")
            return
        }
        do {
            workKey = SymmetricKey(data: try tpm.unseal(sealed, approvedBy: policy, authority: authority))
            standing = .secure
            if let eventLog { try? save(eventLog, to: "\(directory)/approved-log.json") }
        } catch .policyMismatch {
            standing = .tampered(tamperReason())
        } catch .revoked(let policyValue, let counter) {
            standing = .revoked("the Engine's policy was revoked (made for counter \(policyValue), the TPM's stands at \(counter)); the Center must approve this Engine again")
        } catch .notApproved(let reason) {
            standing = .unapproved(reason)
        } catch {
            standing = .tampered("the work key does not unseal: \(error)")
        }
    }

    /// Names what changed since the last approved start.
    private func tamperReason() -> String {
        let approved = FileManager.default.contents(atPath: "\(directory)/approved-log.json").flatMap { try? JSONDecoder().decode(EventLog.self, from: $0) }
        if let approved, let eventLog, let changed = eventLog.firstDifference(from: approved) {
            return "\(changed.component) (\(changed.path)) is not what the Center approved: it measures \(changed.sha256.prefix(16))…"
        }
        return "PCR \(Self.pcr) does not hold the values the Center approved"
    }

    /// The personal key: sealed to this TPM only, so a personal desktop runs whatever was
    /// measured (it is the user's), but its disks are useless on another machine.
    private func openPersonalKey(_ tpm: TPM) throws -> SymmetricKey {
        let file = "\(directory)/personal-key.json"
        if let data = FileManager.default.contents(atPath: file) {
            let sealed = try JSONDecoder().decode(SealedSecret.self, from: data)
            return SymmetricKey(data: try tpm.unseal(sealed))
        }
        let secret = try tpm.random(32)
        try save(try tpm.sealToThisTPM(secret), to: file)
        return SymmetricKey(data: secret)
    }

    /// Why work VMs may not start, or nil.
    public var workRefusal: String? {
        switch standing {
        case .secure, .insecureDevelopment: nil
        case .tampered(let reason): "this PC's software was changed (\(reason)); work desktops stay off and IT was told"
        default: standing.reason.map { "work desktops need the security zone: \($0)" }
        }
    }

    /// The data key of one disk, made on first use and kept wrapped by its role's key; nil
    /// when disks are not encrypted (no TPM). Throws when the role's key is not available.
    public func diskKey(vm: String, disk: String, role: VMDefinition.Role) throws -> [UInt8]? {
        return try lock.withLock {
            guard tpm != nil else { return nil }
            guard let key = role == .work ? workKey : personalKey else {
                throw EngineError.security(workRefusal ?? "the \(role.rawValue) key is not available")
            }
            let file = "\(directory)/keys/\(vm)/\(disk).key"
            let context = Data("hearth-disk \(vm)/\(disk)".utf8)
            if let sealed = FileManager.default.contents(atPath: file) {
                do {
                    return Array(try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key, authenticating: context))
                } catch {
                    throw EngineError.security("the key of \(vm)'s \(disk) disk (\(file)) does not open with the \(role.rawValue) key: \(error)")
                }
            }
            let fresh = try ephemeralKey()
            try FileManager.default.createDirectory(atPath: "\(directory)/keys/\(vm)", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let box = try AES.GCM.seal(fresh, using: key, authenticating: context)
            try save(box.combined ?? Data(), to: file)
            return fresh
        }
    }

    /// A key used once and never stored (a work VM's system overlay, new at every boot).
    public func ephemeralKey() throws -> [UInt8] {
        return try lock.withLock {
            guard let tpm else { throw EngineError.security("there is no TPM") }
            return try tpm.random(32)
        }
    }

    /// Whether disks are encrypted (a TPM is in use).
    public var encryptsDisks: Bool { tpm != nil }

    /// Forgets a VM's disk keys (its disks were deleted).
    public func forget(vm: String) {
        lock.withLock {
            try? FileManager.default.removeItem(atPath: "\(directory)/keys/\(vm)")
        }
    }

    /// Crypto-erase of the work key: the TPM's counter moves, so no policy ever signed for the
    /// old value unseals it again, not even with every old file; then the sealed key, the
    /// policy and the work VMs' wrapped disk keys are deleted. A wipe event naming `command` and
    /// the counter's values is measured, and with `nonce` the TPM quotes it: the evidence the
    /// Center verifies. Returns what was done.
    public func eraseWork(vms: [String], command: String? = nil, nonce: [UInt8]? = nil) throws -> (method: String, evidence: WipeEvidence?) {
        return try lock.withLock {
            guard let tpm else { return ("no TPM: the disk files were deleted, nothing was encrypted", nil) }
            let before = try tpm.value(of: Self.counter)
            let after = try tpm.increment(Self.counter)
            workKey = nil
            for file in ["work-key.json", "policy.json", "approved-log.json"] { try? FileManager.default.removeItem(atPath: "\(directory)/\(file)") }
            for vm in vms { forget(vm: vm) }
            standing = .unapproved("the work key was erased by a wipe")
            let method = "crypto-erase: TPM counter 0x\(String(Self.counter.index, radix: 16)) moved from \(before) to \(after), revoking every policy for the old work key; the sealed key and the work disks' keys were deleted"
            guard let command, var log = eventLog else { return (method, nil) }
            let event = Array(SHA256.hash(data: Data(WipeEvidence.event(command: command, counterBefore: before, counterAfter: after).utf8)))
            try tpm.extend(Self.pcr, sha256: event)
            log.events.append(.init(component: "wipe", path: "command \(command)", sha256: Self.hex(event)))
            eventLog = log
            try save(Measurements(bootID: bootID, log: log), to: "\(directory)/measurements.json")
            guard let nonce, let attestation = try attestation(nonce: nonce) else { return (method, nil) }
            return (method, WipeEvidence(pcr: Self.pcr, base: log.base, components: log.events.map { .init(component: $0.component, path: $0.path, sha256: $0.sha256) },
                                         counterIndex: Self.counter.index, counterBefore: before, counterAfter: after, attestation: attestation))
        }
    }

    // MARK: Internals

    private func logStanding() {
        switch standing {
        case .secure: logger.notice("security zone: measured and approved; work desktops may start")
        case .insecureDevelopment: logger.warning("INSECURE: no TPM (development only)")
        default: logger.warning("security zone: work desktops may not start", metadata: ["standing": "\(standing.report)", "reason": "\(standing.reason ?? "")"])
        }
    }

    private func save<T: Encodable>(_ value: T, to path: String) throws {
        try save(try JSONEncoder().encode(value), to: path)
    }

    private func save(_ data: Data, to path: String) throws {
        try DurableFile.write(data, to: path)
    }

    /// This boot's identifier (the kernel makes a new one at every boot).
    public static func currentBootID() -> String {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    }
}

extension SecurityZone.Standing {
    /// The explanation, for all but the good standings.
    public var reason: String? {
        switch self {
        case .secure, .insecureDevelopment: nil
        case .unapproved(let reason), .tampered(let reason), .revoked(let reason), .noTPM(let reason): reason
        }
    }
}

extension Optional {
    fileprivate func orThrow(_ message: String) throws -> Wrapped {
        guard let value = self else { throw EngineError.security(message) }
        return value
    }
}
