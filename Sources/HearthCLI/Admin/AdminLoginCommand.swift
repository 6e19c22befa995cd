import ArgumentParser
import Foundation
import HearthCenter

struct AdminLoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Log in to a Center and keep the session for the other admin commands.",
        discussion: "The password is read from the terminal without echo, or from standard input when it is not a terminal."
    )

    @Option(help: "The Center, https://HOST:PORT.")
    var center: String

    @Option(help: "The Center's CA certificate (DATA/tls/ca.pem); check its fingerprint against the one the Center printed.")
    var ca: String

    @Option(help: "Your admin username.")
    var username: String

    func run() async throws {
        guard center.hasPrefix("https://") else { throw ValidationError("--center must be an https:// URL: the Center serves TLS only") }
        guard let caPEM = try? String(contentsOfFile: ca, encoding: .utf8) else { throw AdminError("cannot read --ca \(ca)") }
        let password = try readSecret(prompt: "Password for \(username): ")
        struct Login: Encodable { let username: String; let password: String }
        struct Answer: Decodable { let token: String; let expires: Date; let admin: Admin }
        let data = try await AdminClient(center: center, caPEM: caPEM, token: nil).send(.POST, "/api/v1/session", json: Login(username: username, password: password))
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let answer = try decoder.decode(Answer.self, from: data)
        try AdminSession(center: center, caPEM: caPEM, token: answer.token, username: username, expires: answer.expires).save()
        print("Logged in to \(center) as \(username) (\(answer.admin.role.rawValue)) until \(answer.expires.ISO8601Format()).")
        if answer.admin.mustChangePassword { print("Change your one-time password now: hearth admin password") }
    }
}
