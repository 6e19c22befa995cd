import Foundation
import TPM
import TPMPolicy

/// The lease's anchor in the TPM: its clock, and a counter of its own (NV index 0x01804846,
/// apart from the work key's so that a lease never revokes a policy). It holds its own
/// connection to the TPM, because the lease is read from any thread; calls are serialised.
final class TPMLeaseAnchor: LeaseAnchor, @unchecked Sendable {
    // @unchecked: `tpm` is used under `lock` only.
    static let counter = MonotonicCounter(index: 0x0180_4846)
    private let lock = NSLock()
    private let tpm: TPM

    init(tcti: String) throws {
        tpm = try TPM(tcti: tcti)
        try tpm.ensure(Self.counter)
    }

    func clockMilliseconds() throws -> UInt64 { try lock.withLock { try tpm.clock() } }
    func generation() throws -> UInt64 { try lock.withLock { try tpm.value(of: Self.counter) } }
    func advanceGeneration() throws -> UInt64 { try lock.withLock { try tpm.increment(Self.counter) } }
}

extension SecurityZone {
    /// What the lease keeper anchors its clock and file to: the TPM, when the zone has one.
    public func leaseAnchor() -> LeaseAnchor? {
        guard case .tpm(let tcti) = mode, encryptsDisks else { return nil }
        do {
            return try TPMLeaseAnchor(tcti: tcti)
        } catch {
            logger.error("the lease cannot use the TPM's clock and counter; it keeps to the system clock", metadata: ["error": "\(error)"])
            return nil
        }
    }
}
