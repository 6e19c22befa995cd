import Crypto
import NIOConcurrencyHelpers

/// Client certificates already checked against the Center's CA, by the SHA-256 of their DER,
/// with their serial. A device presents the same certificate at every call, and parsing it and
/// checking its signature again was a tenth of a check-in's cost (docs/PERFORMANCE.md). Only
/// the CA's signature is remembered, which cannot change for given bytes; whether the device is
/// still enrolled is read from the database at every call.
final class VerifiedCertificates: Sendable {
    /// More than this many and the memory starts over (about 100 bytes each).
    static let capacity = 200_000
    private let serials = NIOLockedValueBox<[SHA256Digest: String]>([:])

    /// The serial of the certificate `der`, checking it with `verify` the first time it is seen.
    /// A certificate `verify` refuses is not remembered.
    func serial(of der: [UInt8], verify: ([UInt8]) throws -> String) throws -> String {
        let key = SHA256.hash(data: der)
        if let known = serials.withLockedValue({ $0[key] }) { return known }
        let serial = try verify(der)
        serials.withLockedValue { serials in
            if serials.count >= Self.capacity { serials.removeAll(keepingCapacity: true) }
            serials[key] = serial
        }
        return serial
    }
}
