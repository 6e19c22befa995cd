import ArgumentParser
import Foundation

struct AdminPasswordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "password",
        abstract: "Change your password (at least 12 characters); your other sessions end.",
        discussion: "Reads the current and the new password from the terminal, or two lines from standard input."
    )

    func run() async throws {
        var session = try AdminSession.load()
        let current = try readSecret(prompt: "Current password: ")
        let new = try readSecret(prompt: "New password: ")
        struct Change: Encodable { let current: String; let new: String }
        _ = try await AdminClient(session: session).send(.POST, "/api/v1/me/password", json: Change(current: current, new: new))
        // The change ended every session of this admin: log in again with the new password.
        struct Login: Encodable { let username: String; let password: String }
        struct Answer: Decodable { let token: String; let expires: Date }
        let data = try await AdminClient(center: session.center, caPEM: session.caPEM, token: nil)
            .send(.POST, "/api/v1/session", json: Login(username: session.username, password: new))
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let answer = try decoder.decode(Answer.self, from: data)
        session.token = answer.token
        session.expires = answer.expires
        try session.save()
        print("Password changed; logged in again until \(answer.expires.ISO8601Format()).")
    }
}
