import Crypto
import Foundation

/// Random secrets and how they are kept: only their SHA-256.
enum Secrets {
    static func token() -> String {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
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
