import Crypto
import Foundation
import SwiftASN1
import X509

/// The Center's own CA: it signs the Center's server certificate and every device's client
/// certificate. Made on first start in `DATA/tls/` (keys 0600 in a 0700 folder) and reused after.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    let key: P256.Signing.PrivateKey

    /// Device certificates last a year; check-in renews them before then.
    static let deviceValidity: TimeInterval = 365 * 86400

    /// SHA-256 of the CA certificate's DER, as colon-separated hex: what the Center prints so an
    /// admin can check the certificate a client is about to pin.
    public var fingerprint: String { Self.fingerprint(of: certificate) }

    public var pem: String { (try? certificate.serializeAsPEM().pemString) ?? "" }

    public static func fingerprint(of certificate: Certificate) -> String {
        var serializer = DER.Serializer()
        try? serializer.serialize(certificate)
        return SHA256.hash(data: serializer.serializedBytes).map { String(format: "%02X", $0) }.joined(separator: ":")
    }

    /// Loads the CA from `folder`, or makes a new one there when the folder has none.
    public static func loadOrCreate(in folder: URL, name: String) throws(CenterError) -> (CertificateAuthority, created: Bool) {
        let certPath = folder.appendingPathComponent("ca.pem")
        let keyPath = folder.appendingPathComponent("ca.key")
        if FileManager.default.fileExists(atPath: certPath.path) {
            let certificate = try PEMFiles.certificate(at: certPath)
            let key = try PEMFiles.privateKey(at: keyPath)
            guard Certificate.PublicKey(key.publicKey) == certificate.publicKey else {
                throw .tls("\(keyPath.path) is not the key of \(certPath.path); restore the pair from a backup, or move the folder away to make a new CA (every enrolled device must then enroll again)")
            }
            return (CertificateAuthority(certificate: certificate, key: key), false)
        }
        let key = P256.Signing.PrivateKey()
        let now = Date()
        do {
            let subject = try DistinguishedName {
                OrganizationName("Hearth")
                CommonName("\(name) CA")
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(20 * 365 * 86400),
                issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                    SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
                },
                issuerPrivateKey: .init(key))
            try PEMFiles.writeKey(key, to: keyPath)
            try PEMFiles.write(try certificate.serializeAsPEM().pemString, to: certPath, mode: 0o644)
            return (CertificateAuthority(certificate: certificate, key: key), true)
        } catch let error as CenterError {
            throw error
        } catch {
            throw .tls("cannot make the Center's CA: \(error)")
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses) with a new key.
    public func issueServerCertificate(names: [String]) throws(CenterError) -> (Certificate, P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        do {
            var alternatives: [GeneralName] = []
            for name in Set(names).sorted() {
                if let address = IPAddressBytes(name) { alternatives.append(.ipAddress(ASN1OctetString(contentBytes: address[...]))) }
                else { alternatives.append(.dnsName(name)) }
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(2 * 365 * 86400),
                issuer: self.certificate.subject,
                subject: try DistinguishedName { OrganizationName("Hearth"); CommonName(names.first ?? "hearth-center") },
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.serverAuth])
                    SubjectAlternativeNames(alternatives)
                },
                issuerPrivateKey: .init(self.key))
            return (certificate, key)
        } catch {
            throw .tls("cannot issue the Center's server certificate: \(error)")
        }
    }

    /// Checks a device's certificate request and issues its client certificate, the subject
    /// naming the device. Throws `APIError.badRequest` for a request that is malformed, not
    /// self-signed by its key, or for a key type the Center does not take.
    func issueDeviceCertificate(csrPEM: String, deviceID: String) throws -> (certificate: Certificate, serial: String, publicKeySHA256: String) {
        guard csrPEM.utf8.count <= 16384 else { throw APIError.badRequest("the certificate request is larger than 16 KiB") }
        let csr: CertificateSigningRequest
        do { csr = try CertificateSigningRequest(pemEncoded: csrPEM) } catch {
            throw APIError.badRequest("csr is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----): \(error)")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw APIError.badRequest("the certificate request's signature does not match its key: the device must sign it with the key it holds")
        }
        guard P256.Signing.PublicKey(csr.publicKey) != nil || P384.Signing.PublicKey(csr.publicKey) != nil else {
            throw APIError.badRequest("the certificate request's key must be ECDSA P-256 or P-384")
        }
        let serial = Certificate.SerialNumber()
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: serial, publicKey: csr.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(Self.deviceValidity),
            issuer: self.certificate.subject,
            subject: try DistinguishedName { OrganizationName("Hearth devices"); CommonName(deviceID) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
            },
            issuerPrivateKey: .init(key))
        var serializer = DER.Serializer()
        try serializer.serialize(csr.publicKey)
        let keyHash = Secrets.hex(SHA256.hash(data: serializer.serializedBytes))
        return (certificate, Self.hex(serial), keyHash)
    }

    static func hex(_ serial: Certificate.SerialNumber) -> String {
        Secrets.hex(serial.bytes)
    }
}

/// The bytes of an IPv4 or IPv6 address written as text, or nil.
func IPAddressBytes(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
}

/// PEM files on disk: keys written 0600 atomically, read back with clear errors.
enum PEMFiles {
    static func certificate(at url: URL) throws(CenterError) -> Certificate {
        do { return try Certificate(pemEncoded: try String(contentsOf: url, encoding: .utf8)) } catch {
            throw .tls("\(url.path) is not a PEM certificate: \(error)")
        }
    }

    static func privateKey(at url: URL) throws(CenterError) -> P256.Signing.PrivateKey {
        var info = stat()
        if stat(url.path, &info) == 0, info.st_mode & 0o077 != 0 {
            throw .tls("\(url.path) can be read by others than its owner; run `chmod 600 \(url.path)`")
        }
        do { return try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOf: url, encoding: .utf8)) } catch {
            throw .tls("\(url.path) is not a PEM P-256 private key: \(error)")
        }
    }

    static func writeKey(_ key: P256.Signing.PrivateKey, to url: URL) throws(CenterError) {
        try write(key.pemRepresentation, to: url, mode: 0o600)
    }

    /// Writes `text` to a temporary file with `mode`, fsyncs it and renames it into place.
    static func write(_ text: String, to url: URL, mode: mode_t) throws(CenterError) {
        let temporary = url.path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, url.path) == 0 else {
            unlink(temporary)
            throw .io("cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
    }
}
