import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// What `hearth admin login` keeps: the Center, the CA it pinned, the session token. Written 0600
/// in `~/.config/hearth/admin-session.json` (or HEARTH_ADMIN_SESSION).
struct AdminSession: Codable {
    var center: String
    var caPEM: String
    var token: String
    var username: String
    var expires: Date

    static var path: URL {
        if let path = ProcessInfo.processInfo.environment["HEARTH_ADMIN_SESSION"] { return URL(fileURLWithPath: path) }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".config/hearth/admin-session.json")
    }

    static func load() throws -> AdminSession {
        guard let data = FileManager.default.contents(atPath: path.path) else {
            throw AdminError("not logged in to a Center; run `hearth admin login --center https://HOST:PORT --ca CA.pem --username NAME`")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let session = try? decoder.decode(AdminSession.self, from: data) else {
            throw AdminError("\(path.path) is damaged; log in again")
        }
        return session
    }

    func save() throws {
        let folder = Self.path.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(self)
        let temporary = Self.path.path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]),
              rename(temporary, Self.path.path) == 0 else {
            throw AdminError("cannot write \(Self.path.path)")
        }
    }
}

/// An HTTPS client for the Center's admin API that trusts only the pinned CA.
struct AdminClient {
    let center: String
    let token: String?
    let client: HTTPClient

    init(center: String, caPEM: String, token: String?) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        } catch {
            throw AdminError("the CA certificate is not PEM: \(error)")
        }
        self.center = center.hasSuffix("/") ? String(center.dropLast()) : center
        self.token = token
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
    }

    init(session: AdminSession) throws {
        try self.init(center: session.center, caPEM: session.caPEM, token: session.token)
    }

    /// Sends a request and returns the body of a 2xx answer; any other answer becomes the
    /// Center's own error message.
    func send(_ method: HTTPMethod, _ path: String, json: (any Encodable)? = nil) async throws -> Data {
        do {
            let data = try await exchange(method, path, json: json)
            try? await client.shutdown()
            return data
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func exchange(_ method: HTTPMethod, _ path: String, json: (any Encodable)?) async throws -> Data {
        var request = HTTPClientRequest(url: center + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            request.body = .bytes(ByteBuffer(bytes: try encoder.encode(json)))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(30))
        } catch {
            throw AdminError("cannot reach the Center at \(center): \(error)")
        }
        let body = Data(buffer: try await response.body.collect(upTo: 64 << 20))
        guard (200..<300).contains(response.status.code) else {
            struct Failure: Decodable { struct Inner: Decodable { let message: String }; let error: Inner }
            let message = (try? JSONDecoder().decode(Failure.self, from: body))?.error.message ?? String(decoding: body.prefix(300), as: UTF8.self)
            throw AdminError("the Center answered \(response.status.code): \(message)")
        }
        return body
    }
}

/// Reads a password from the terminal without echo, or a line from standard input when it is
/// not a terminal (for scripts). Never from the command line.
func readSecret(prompt: String) throws -> String {
    if isatty(STDIN_FILENO) == 1 {
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        tcgetattr(STDIN_FILENO, &saved)
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
        defer {
            tcsetattr(STDIN_FILENO, TCSANOW, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return readLine(strippingNewline: true) ?? ""
    }
    guard let line = readLine(strippingNewline: true) else { throw AdminError("expected the password on standard input") }
    return line
}

/// Prints an API answer: pretty JSON with --json, else `text` of the decoded value.
func printAnswer<T: Decodable>(_ data: Data, as type: T.Type, json: Bool, text: (T) -> Void) throws {
    if json {
        let object = try JSONSerialization.jsonObject(with: data)
        let pretty = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: pretty, as: UTF8.self))
        return
    }
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    text(try decoder.decode(T.self, from: data))
}

/// A failure talking to the Center, printed as it is (without the usage text argument errors get).
struct AdminError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
