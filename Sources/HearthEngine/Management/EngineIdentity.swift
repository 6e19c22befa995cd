import Crypto
import Foundation
import HearthCore
import X509

/// Who this Engine is to its Center, kept under `ROOT/identity/` once enrolled:
///
///     identity.json   the Center's URL, the device and user ids, the Center's lease key
///     device.key      the device's private key (0600; made here, never sent anywhere)
///     device.pem      the certificate the Center's CA issued for it
///     ca.pem          the Center's CA, the only root trusted for Center calls
///     repository-root.json   the image repository's root metadata, pinned at first pull
///
/// The folder appears whole or not at all: enrollment writes it beside and renames it.
public struct EngineIdentity: Codable, Sendable, Equatable {
    public var center: String
    public var deviceID: String
    public var userID: String?
    /// Base64 of the Center's Ed25519 lease public key.
    public var leaseKey: String

    /// The certificate and key PEMs and the CA, read from the folder.
    public struct Files: Sendable {
        public var certificatePEM: String
        public var keyPEM: String
        public var caPEM: String
    }

    static func folder(_ layout: EngineLayout) -> String { "\(layout.root)/identity" }
    public static func repositoryRoot(_ layout: EngineLayout) -> String { "\(folder(layout))/repository-root.json" }

    /// The identity of an enrolled Engine, or nil before enrollment.
    public static func load(_ layout: EngineLayout) throws -> (EngineIdentity, Files)? {
        let folder = folder(layout)
        guard FileManager.default.fileExists(atPath: "\(folder)/identity.json") else { return nil }
        func text(_ name: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: "\(folder)/\(name)") else {
                throw ManagementError.identity(path: folder, reason: "\(name) is missing; enroll the device again with a new token (move \(folder) away first)")
            }
            return String(decoding: data, as: UTF8.self)
        }
        let identity: EngineIdentity
        do {
            identity = try JSONDecoder().decode(EngineIdentity.self, from: Data(try text("identity.json").utf8))
        } catch let error as ManagementError {
            throw error
        } catch {
            throw ManagementError.identity(path: folder, reason: "identity.json is damaged (\(error)); enroll the device again")
        }
        var info = stat()
        if stat("\(folder)/device.key", &info) == 0, info.st_mode & 0o077 != 0 {
            throw ManagementError.identity(path: folder, reason: "device.key can be read by others than its owner; run chmod 600 \(folder)/device.key")
        }
        return (identity, Files(certificatePEM: try text("device.pem"), keyPEM: try text("device.key"), caPEM: try text("ca.pem")))
    }

    /// Enrolls this Engine with a one-time token: makes a key (kept at once, so that an
    /// interrupted enrollment resumes with it), sends a certificate request for it, and keeps
    /// what the Center answers.
    ///
    /// - Parameter caPEM: the Center's CA as the admin handed it over (the Center prints its
    ///   fingerprint at start): the enrollment call already trusts nothing else.
    public static func enroll(center: String, caPEM: String, token: String, deviceName: String,
                              layout: EngineLayout) async throws -> (EngineIdentity, Files) {
        let folder = folder(layout)
        guard !FileManager.default.fileExists(atPath: "\(folder)/identity.json") else {
            throw ManagementError.notEnrolled("this Engine is already enrolled (\(folder)); to enroll it again, move that folder away first")
        }
        let key = try pendingKey(layout)
        let client = try CenterClient(center: center, caPEM: caPEM, identity: nil)
        defer { withExtendedLifetime(client) {} }
        let answer = try await client.enroll(EnrollRequest(token: token, csr: try certificateRequest(key: key, deviceName: deviceName), name: deviceName))
        await client.shutdown()
        guard let raw = Data(base64Encoded: answer.leaseKey), (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else {
            throw ManagementError.badLease("the Center's lease key is not an Ed25519 public key")
        }
        let identity = EngineIdentity(center: center, deviceID: answer.deviceID, userID: answer.userID, leaseKey: answer.leaseKey)
        // Keep the CA pinned by the admin, not the one in the answer: they must be the same.
        let files = Files(certificatePEM: answer.certificate, keyPEM: key.pemRepresentation, caPEM: caPEM)
        let partial = "\(folder).partial"
        try? FileManager.default.removeItem(atPath: partial)
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(Data(files.keyPEM.utf8), to: "\(partial)/device.key", mode: 0o600)
        try DurableFile.write(Data(files.certificatePEM.utf8), to: "\(partial)/device.pem", mode: 0o644)
        try DurableFile.write(Data(files.caPEM.utf8), to: "\(partial)/ca.pem", mode: 0o644)
        try DurableFile.write(try encoder.encode(identity), to: "\(partial)/identity.json", mode: 0o600)
        guard rename(partial, folder) == 0 else {
            throw EngineError.io(path: folder, reason: String(cString: strerror(errno)))
        }
        try? FileManager.default.removeItem(atPath: pendingFolder(layout))
        return (identity, files)
    }

    /// A PKCS#10 request for `key`, in PEM.
    static func certificateRequest(key: P256.Signing.PrivateKey, deviceName: String) throws -> String {
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(deviceName) }, privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256)
        return try csr.serializeAsPEM().pemString
    }

    static func pendingFolder(_ layout: EngineLayout) -> String { "\(folder(layout)).pending" }

    /// The key this enrollment uses: the one an earlier, interrupted enrollment kept, or a new
    /// one, kept before its request leaves. An Engine killed after the Center spent the token
    /// but before it kept the answer asks again with the same key, and the Center answers
    /// again for that key alone.
    static func pendingKey(_ layout: EngineLayout) throws -> P256.Signing.PrivateKey {
        let folder = pendingFolder(layout)
        let path = "\(folder)/device.key"
        if let data = FileManager.default.contents(atPath: path),
           let key = try? P256.Signing.PrivateKey(pemRepresentation: String(decoding: data, as: UTF8.self)) {
            return key
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = P256.Signing.PrivateKey()
        try DurableFile.write(Data(key.pemRepresentation.utf8), to: path, mode: 0o600)
        return key
    }
}
