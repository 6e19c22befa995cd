import Foundation
import NIOHTTP1

/// The Center's admin API as the main job calls it: a session, JSON in and out.
struct AdminAPI {
    let base: String
    let caPEM: String
    let token: String
    let username: String
    let password: String

    static func login(base: String, caPEM: String, _ username: String, _ password: String, newPassword: String? = nil) async throws -> AdminAPI {
        struct Session: Decodable { let token: String }
        let data = try await AdminClient(center: base, caPEM: caPEM, token: nil)
            .send(.POST, "/api/v1/session", json: ["username": username, "password": password])
        let session = try JSONDecoder().decode(Session.self, from: data)
        let api = AdminAPI(base: base, caPEM: caPEM, token: session.token, username: username, password: password)
        guard let newPassword else { return api }
        // A one-time password must be changed before anything else.
        try await api.send(.POST, "/api/v1/me/password", ["current": password, "new": newPassword])
        return try await login(base: base, caPEM: caPEM, username, newPassword)
    }

    /// A new session (the last one may have expired while the demo clock moved on).
    func again() async throws -> AdminAPI {
        try await Self.login(base: base, caPEM: caPEM, username, password)
    }

    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, _ body: (any Encodable)? = nil) async throws -> Data {
        try await AdminClient(center: base, caPEM: caPEM, token: token).send(method, path, json: body)
    }

    func decode<T: Decodable>(_ type: T.Type, _ method: HTTPMethod, _ path: String, _ body: (any Encodable)? = nil) async throws -> T {
        let data = try await send(method, path, body)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(T.self, from: data)
        } catch {
            throw MainJobError.outcome("the Center's answer to \(method) \(path) is not what the API document says: \(error)")
        }
    }
}
