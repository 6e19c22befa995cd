import ArgumentParser
import Foundation
import HearthCenter

struct AdminUsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "List users, or add one with --add."
    )

    @Option(help: "Add a user with this username.")
    var add: String?

    @Option(help: "The new user's display name.")
    var displayName: String?

    @Option(help: "The new user's email address.")
    var email: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let client = try AdminClient(session: try AdminSession.load())
        if let add {
            struct New: Encodable { let username: String; let displayName: String?; let email: String? }
            let data = try await client.send(.POST, "/api/v1/users", json: New(username: add, displayName: displayName, email: email))
            return try printAnswer(data, as: User.self, json: json) { print("added user \($0.username) (\($0.id))") }
        }
        let data = try await client.send(.GET, "/api/v1/users")
        try printAnswer(data, as: [User].self, json: json) { users in
            if users.isEmpty { print("no users yet (add one with --add NAME)") }
            for user in users {
                print("\(user.username.padding(toLength: 20, withPad: " ", startingAt: 0)) \(user.displayName.padding(toLength: 24, withPad: " ", startingAt: 0)) groups: \(user.groups.joined(separator: ", "))")
            }
        }
    }
}
