import Crypto
import Foundation

/// A SHA-256 digest: what names every block, index and pack.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    // Four words rather than an array: digests are map keys by the hundred thousand.
    public let a: UInt64, b: UInt64, c: UInt64, d: UInt64

    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == 32)
        a = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        b = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        c = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        d = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    public init<D: Crypto.Digest>(_ digest: D) {
        self = digest.withUnsafeBytes { Digest(bytes: $0) }
    }

    /// The SHA-256 of `data`.
    public static func of(_ data: UnsafeRawBufferPointer) -> Digest {
        Digest(SHA256.hash(data: data))
    }

    public static func of(_ data: some DataProtocol) -> Digest {
        Digest(SHA256.hash(data: data))
    }

    /// Parses 64 lowercase hex digits.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var words: [UInt64] = []
        for word in 0..<4 {
            var value: UInt64 = 0
            for index in 0..<16 {
                let char = utf8[word * 16 + index]
                let nibble: UInt8
                switch char {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = char - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = char - UInt8(ascii: "a") + 10
                default: return nil
                }
                value = value << 4 | UInt64(nibble)
            }
            words.append(value)
        }
        (a, b, c, d) = (words[0], words[1], words[2], words[3])
    }

    public var hex: String {
        [a, b, c, d].map { word in
            let text = String(word, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
    }

    public var description: String { hex }

    /// Big-endian bytes.
    public func write(to buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.storeBytes(of: a.bigEndian, toByteOffset: offset, as: UInt64.self)
        buffer.storeBytes(of: b.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
        buffer.storeBytes(of: c.bigEndian, toByteOffset: offset + 16, as: UInt64.self)
        buffer.storeBytes(of: d.bigEndian, toByteOffset: offset + 24, as: UInt64.self)
    }

    public static func < (lhs: Digest, rhs: Digest) -> Bool {
        (lhs.a, lhs.b, lhs.c, lhs.d) < (rhs.a, rhs.b, rhs.c, rhs.d)
    }
}

extension Digest: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let digest = Digest(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a SHA-256 hex digest"))
        }
        self = digest
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
