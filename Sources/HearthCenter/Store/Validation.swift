import Crypto
import Foundation

/// Random secrets and how they are kept: only their SHA-256.
enum Secrets {
    static func token() -> String {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func hash(_ secret: String) -> String {
        hex(SHA256.hash(data: Data(secret.utf8)))
    }

    /// A fresh random nonce: 32 bytes as hex.
    static func nonce() -> String {
        hex(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
    }

    /// Lower-case hex. Written out because `String(format:)` per byte was a measurable part of a
    /// check-in (docs/PERFORMANCE.md) and neither swift-crypto nor Foundation offers one.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

enum Validate {
    static func name(_ value: String, what: String) throws {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-@"))
        guard !value.isEmpty, value.count <= 64, value.unicodeScalars.allSatisfy(allowed.contains), value.first != "." && value.first != "-" else {
            throw APIError.badRequest("'\(value.prefix(80))' cannot be \(what): use 1 to 64 letters, digits, '.', '_', '-' or '@', not starting with '.' or '-'")
        }
    }

    static func deviceName(_ value: String) throws {
        guard !value.isEmpty, value.count <= 128, !value.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) else {
            throw APIError.badRequest("a device name is 1 to 128 printable characters")
        }
    }

    static func password(_ value: String) throws {
        guard value.count >= 12 else { throw APIError.badRequest("a password needs at least 12 characters") }
        guard value.utf8.count <= 72 else { throw APIError.badRequest("a password has at most 72 bytes (bcrypt's limit)") }
    }
}
