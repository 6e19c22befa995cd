import Crypto
import Foundation

/// The four roles of a repository's metadata, each with its own key, in the manner of TUF.
public enum Role: String, CaseIterable, Codable, Sendable {
    case root, targets, snapshot, timestamp
}

/// An Ed25519 signing key and the id other metadata knows it by (SHA-256 of the public key).
public struct SigningKey: Sendable {
    let key: Curve25519.Signing.PrivateKey

    public init() { key = Curve25519.Signing.PrivateKey() }

    init(raw: Data) throws(ImageSyncError) {
        do { key = try Curve25519.Signing.PrivateKey(rawRepresentation: raw) } catch {
            throw .keys("not an Ed25519 private key")
        }
    }

    public var publicKey: PublicKeyEntry { PublicKeyEntry(key.publicKey.rawRepresentation) }
    public var keyID: String { publicKey.keyID }

    func sign(_ message: Data) -> Data {
        // swift-crypto's signing cannot fail for a valid key.
        (try? key.signature(for: message)) ?? Data()
    }
}

/// A public key as root metadata lists it.
public struct PublicKeyEntry: Codable, Hashable, Sendable {
    public var keytype: String
    public var publicKey: String

    enum CodingKeys: String, CodingKey {
        case keytype
        case publicKey = "public"
    }

    init(_ raw: Data) {
        keytype = "ed25519"
        publicKey = raw.base64EncodedString()
    }

    /// The SHA-256 of the raw public key, in hex.
    public var keyID: String {
        Digest.of(Data(base64Encoded: publicKey) ?? Data()).hex
    }

    func verify(_ signature: Data, over message: Data) -> Bool {
        guard keytype == "ed25519", let raw = Data(base64Encoded: publicKey),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

/// The folder of private keys a publisher holds: one file per role, readable by its owner only.
public struct KeyStore: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    func url(for role: Role) -> URL { directory.appendingPathComponent("\(role.rawValue).key") }

    /// Creates the folder (mode 0700) and one new key per role (mode 0600); refuses to
    /// overwrite keys that exist.
    public func create() throws(ImageSyncError) -> [Role: SigningKey] {
        for role in Role.allCases where FileManager.default.fileExists(atPath: url(for: role).path) {
            throw .keys("\(url(for: role).path) exists; a repository's keys are made once (use `hearth image rotate-key` to replace one)")
        }
        try makeDirectory()
        var keys: [Role: SigningKey] = [:]
        for role in Role.allCases {
            let key = SigningKey()
            try save(key, for: role)
            keys[role] = key
        }
        return keys
    }

    private func makeDirectory() throws(ImageSyncError) {
        if mkdir(directory.path, 0o700) != 0 && errno != EEXIST {
            throw .fromErrno(path: directory.path, operation: "create the key folder")
        }
        var info = stat()
        guard stat(directory.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw .keys("\(directory.path) is not a folder")
        }
        if info.st_mode & 0o077 != 0 { chmod(directory.path, 0o700) }
    }

    /// Writes a key file (mode 0600) atomically.
    func save(_ key: SigningKey, for role: Role) throws(ImageSyncError) {
        try makeDirectory()
        let text = "{\"keytype\":\"ed25519\",\"private\":\"\(key.key.rawRepresentation.base64EncodedString())\"}\n"
        try AtomicFile.write(Data(text.utf8), to: url(for: role), mode: 0o600)
    }

    /// Loads a role's key, refusing a file others can read.
    public func load(_ role: Role) throws(ImageSyncError) -> SigningKey {
        let path = url(for: role).path
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw .keys("no \(role.rawValue) key at \(path); create keys with `hearth image init --repo REPO --keys \(directory.path)`")
        }
        if info.st_mode & 0o077 != 0 {
            throw .keys("\(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); run `chmod 600 \(path)` — a signing key must be readable by its owner only")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .keys("cannot read \(path)")
        }
        struct File: Decodable { var keytype: String; var `private`: String }
        guard let file = try? JSONDecoder().decode(File.self, from: data), file.keytype == "ed25519",
              let raw = Data(base64Encoded: file.private) else {
            throw .keys("\(path) is not a Hearth key file")
        }
        return try SigningKey(raw: raw)
    }

    /// Moves a role's current key aside (into `retired/`) before a new one replaces it.
    func retire(_ role: Role, key: SigningKey) throws(ImageSyncError) {
        let retired = directory.appendingPathComponent("retired")
        if mkdir(retired.path, 0o700) != 0 && errno != EEXIST {
            throw .fromErrno(path: retired.path, operation: "create")
        }
        let target = retired.appendingPathComponent("\(role.rawValue)-\(key.keyID.prefix(16)).key")
        guard rename(url(for: role).path, target.path) == 0 else {
            throw .fromErrno(path: target.path, operation: "move the old key to")
        }
    }
}
