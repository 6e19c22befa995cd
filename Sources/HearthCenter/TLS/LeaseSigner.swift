import Crypto
import Foundation
import HearthCore

/// Signs leases with the Center's Ed25519 lease key (`DATA/tls/lease.key`, 0600), made on first
/// start. Devices get the public key at enrollment and check every lease against it.
public struct LeaseSigner: Sendable {
    let key: Curve25519.Signing.PrivateKey

    /// Base64 of the raw public key.
    public var publicKey: String { key.publicKey.rawRepresentation.base64EncodedString() }

    public static func loadOrCreate(at url: URL) throws(CenterError) -> LeaseSigner {
        if FileManager.default.fileExists(atPath: url.path) {
            var info = stat()
            if stat(url.path, &info) == 0, info.st_mode & 0o077 != 0 {
                throw .tls("\(url.path) can be read by others than its owner; run `chmod 600 \(url.path)`")
            }
            guard let text = try? String(contentsOf: url, encoding: .utf8),
                  let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
                  let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
                throw .tls("\(url.path) is not a lease key (base64 of a raw Ed25519 private key); restore it from a backup — devices pinned its public key")
            }
            return LeaseSigner(key: key)
        }
        let key = Curve25519.Signing.PrivateKey()
        try PEMFiles.write(key.rawRepresentation.base64EncodedString() + "\n", to: url, mode: 0o600)
        return LeaseSigner(key: key)
    }

    public func sign(_ terms: Lease.Terms) throws -> Lease {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        let payload = try encoder.encode(terms)
        let signature = try key.signature(for: payload)
        return Lease(payload: payload.base64EncodedString(), signature: signature.base64EncodedString())
    }
}
