import ArgumentParser
import Foundation
import HearthCenter

struct AdminAuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Show the audit log, newest first."
    )

    @Option(help: "Only entries by this actor (admin:NAME, device:ID, center).")
    var actor: String?

    @Option(help: "Only this action (user.create, command.approve, …).")
    var action: String?

    @Option(help: "Only entries about this target (user:alice, device:ID, …).")
    var target: String?

    @Option(help: "How many entries (1 to 1000).")
    var limit: Int = 50

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        var query = URLComponents()
        query.queryItems = [URLQueryItem(name: "limit", value: "\(limit)")]
            + [("actor", actor), ("action", action), ("target", target)].compactMap { name, value in value.map { URLQueryItem(name: name, value: $0) } }
        let data = try await AdminClient(session: try AdminSession.load()).send(.GET, "/api/v1/audit?\(query.percentEncodedQuery ?? "")")
        try printAnswer(data, as: [AuditEntry].self, json: json) { entries in
            for entry in entries {
                print("\(entry.at.ISO8601Format())  \(entry.actor.padding(toLength: 22, withPad: " ", startingAt: 0)) \(entry.action.padding(toLength: 26, withPad: " ", startingAt: 0)) \(entry.target)  from \(entry.address)")
            }
        }
    }
}
