import Crypto
import Foundation
import HearthCore
import TPMPolicy

/// Signs devices' work-key policies with the Center's ECDSA P-256 policy key
/// (`DATA/tls/policy.key`, 0600), made on first start (docs/SECURITY.md). Devices pin its public
/// key at their first check-in and seal their work key to what it signs.
public struct PolicySigner: Sendable {
    let key: P256.Signing.PrivateKey
    /// Base64 of the raw public key (x ‖ y), as devices pin it. Kept: every check-in answer
    /// carries it, and deriving it from the private key is a point multiplication.
    public let publicKey: String

    init(key: P256.Signing.PrivateKey) {
        self.key = key
        publicKey = key.publicKey.rawRepresentation.base64EncodedString()
    }

    public static func loadOrCreate(at url: URL) throws(CenterError) -> PolicySigner {
        if FileManager.default.fileExists(atPath: url.path) {
            return PolicySigner(key: try PEMFiles.privateKey(at: url))
        }
        let key = P256.Signing.PrivateKey()
        try PEMFiles.write(key.pemRepresentation, to: url, mode: 0o600)
        return PolicySigner(key: key)
    }

    /// A policy for exactly what the device reported: its PCR value, its counter, its key.
    public func sign(_ report: MeasurementReport) throws -> SignedMeasurementPolicy {
        let terms = PolicyTerms(pcrs: [report.pcr], pcrValues: [EventLog.bytes(hex: report.pcrValue)],
                                counter: MonotonicCounter(index: report.counterIndex), counterValue: report.counterValue,
                                policyRef: EventLog.bytes(hex: report.policyRef))
        let signed = try PolicyAuthority.sign(terms, with: key)
        return SignedMeasurementPolicy(pcr: report.pcr, pcrValue: report.pcrValue, policyRef: report.policyRef, counterIndex: report.counterIndex,
                                       counterValue: report.counterValue, signature: Data(signed.signature).base64EncodedString())
    }

    /// Whether the components replay (SHA-256 extends from `base`) to the PCR value reported.
    public static func replays(_ report: MeasurementReport) -> Bool {
        let log = EventLog(pcr: report.pcr, events: report.components.map { .init(component: $0.component, path: $0.path, sha256: $0.sha256) },
                           base: report.base.map(EventLog.bytes(hex:)))
        return log.replay() == EventLog.bytes(hex: report.pcrValue)
    }
}
