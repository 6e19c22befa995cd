import Foundation

/// Which keys may sign for a role, and how many of them must.
public struct RoleKeys: Codable, Equatable, Sendable {
    public var keyids: [String]
    public var threshold: Int
}

/// The trust anchor: every key and which role each signs for. Replaced only by a newer root
/// signed by both the old root's keys and its own.
public struct RootMetadata: Codable, Equatable, Sendable {
    public var type = "root"
    public var version: Int
    public var expires: Date
    public var keys: [String: PublicKeyEntry]
    public var roles: [String: RoleKeys]

    func keys(for role: Role) -> (keys: [String: PublicKeyEntry], threshold: Int)? {
        guard let entry = roles[role.rawValue], entry.threshold >= 1 else { return nil }
        var result: [String: PublicKeyEntry] = [:]
        for id in entry.keyids {
            // A key listed under an id that is not its own would let one key count twice.
            if let key = keys[id], key.keyID == id { result[id] = key }
        }
        return (result, entry.threshold)
    }
}

/// A metadata file as its parent pins it: the version and, where known, length and hash.
public struct MetaFile: Codable, Equatable, Sendable {
    public var version: Int
    public var length: Int
    public var sha256: Digest
}

/// What a published image version is, beyond its index file's length and hash.
public struct ImageVersionInfo: Codable, Equatable, Sendable {
    public var name: String
    public var version: String
    /// The size the guest sees.
    public var virtualSize: UInt64
    public var blockSize: Int
    /// Blocks that hold data (all-zero blocks are not stored).
    public var blocks: Int
    /// Bytes of data in those blocks, before compression.
    public var dataBytes: UInt64
    /// Bytes the version's blocks take in packs, compressed, counting each distinct block once.
    public var storedBytes: UInt64
    /// Publication order across the repository (for "latest").
    public var sequence: Int
    public var published: Date
}

/// One signed file: the block index of an image version.
public struct TargetFile: Codable, Equatable, Sendable {
    public var length: Int
    public var sha256: Digest
    public var custom: ImageVersionInfo
}

/// Every published image version, keyed "NAME/VERSION".
public struct TargetsMetadata: Codable, Equatable, Sendable {
    public var type = "targets"
    public var version: Int
    public var expires: Date
    public var targets: [String: TargetFile]
}

/// Pins the targets file in force.
public struct SnapshotMetadata: Codable, Equatable, Sendable {
    public var type = "snapshot"
    public var version: Int
    public var expires: Date
    public var meta: [String: MetaFile]
}

/// Short-lived: says which snapshot is current, so a frozen mirror shows by its age.
public struct TimestampMetadata: Codable, Equatable, Sendable {
    public var type = "timestamp"
    public var version: Int
    public var expires: Date
    public var meta: [String: MetaFile]
}

protocol SignedRole: Codable {
    static var role: Role { get }
    var type: String { get }
    var version: Int { get }
    var expires: Date { get }
}

extension RootMetadata: SignedRole { static let role = Role.root }
extension TargetsMetadata: SignedRole { static let role = Role.targets }
extension SnapshotMetadata: SignedRole { static let role = Role.snapshot }
extension TimestampMetadata: SignedRole { static let role = Role.timestamp }

/// A signed metadata file: the payload bytes as signed, and signatures over them in the DSSE
/// envelope format (so no canonical JSON is needed: what was signed is what is parsed).
struct Envelope: Codable {
    static let payloadType = "application/vnd.hearth.metadata+json"

    var payloadType: String
    var payload: String
    var signatures: [Signature]

    struct Signature: Codable {
        var keyid: String
        var sig: String
    }

    /// DSSE's pre-authentication encoding.
    static func pae(type: String, body: Data) -> Data {
        var data = Data("DSSEv1 \(type.utf8.count) \(type) \(body.count) ".utf8)
        data.append(body)
        return data
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    /// Signs `value` with each key.
    static func sign<T: SignedRole>(_ value: T, with keys: [SigningKey]) throws(ImageSyncError) -> Data {
        let body: Data
        do { body = try encoder().encode(value) } catch {
            throw .invalidRequest("cannot encode \(T.role.rawValue) metadata: \(error)")
        }
        let message = pae(type: payloadType, body: body)
        let envelope = Envelope(
            payloadType: payloadType,
            payload: body.base64EncodedString(),
            signatures: keys.map { Signature(keyid: $0.keyID, sig: $0.sign(message).base64EncodedString()) })
        do { return try encoder().encode(envelope) } catch {
            throw .invalidRequest("cannot encode an envelope: \(error)")
        }
    }

    /// Parses `data` as a `T` signed by at least `threshold` distinct keys of `keys`.
    static func verify<T: SignedRole>(_ data: Data, as _: T.Type, keys: [String: PublicKeyEntry], threshold: Int) throws(ImageSyncError) -> T {
        let role = T.role.rawValue
        guard let envelope = try? decoder().decode(Envelope.self, from: data) else {
            throw .untrusted(role: role, reason: "not a signed metadata envelope")
        }
        guard envelope.payloadType == payloadType, let body = Data(base64Encoded: envelope.payload) else {
            throw .untrusted(role: role, reason: "unexpected payload type \(envelope.payloadType)")
        }
        let message = pae(type: payloadType, body: body)
        var valid = Set<String>()
        for signature in envelope.signatures {
            guard let key = keys[signature.keyid], let sig = Data(base64Encoded: signature.sig) else { continue }
            if key.verify(sig, over: message) { valid.insert(signature.keyid) }
        }
        guard valid.count >= threshold else {
            let ids = envelope.signatures.map { String($0.keyid.prefix(12)) }.joined(separator: ", ")
            throw .untrusted(role: role, reason: "\(valid.count) valid signature(s) from trusted \(role) keys, \(threshold) needed (signed by: \(ids.isEmpty ? "nobody" : ids)); the file was altered or signed by an unknown or revoked key")
        }
        let value: T
        do { value = try decoder().decode(T.self, from: body) } catch {
            throw .untrusted(role: role, reason: "signed but malformed: \(error)")
        }
        guard value.type == role else {
            throw .untrusted(role: role, reason: "the file is \(value.type) metadata, not \(role)")
        }
        return value
    }

    /// The payload without checking signatures (for the publisher's own files).
    static func unverifiedPayload<T: SignedRole>(_ data: Data, as _: T.Type) throws(ImageSyncError) -> T {
        guard let envelope = try? decoder().decode(Envelope.self, from: data),
              let body = Data(base64Encoded: envelope.payload),
              let value = try? decoder().decode(T.self, from: body) else {
            throw .repository("\(T.role.rawValue) metadata in the repository is not readable")
        }
        return value
    }
}
