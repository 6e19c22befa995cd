import ArgumentParser
import Foundation
import HearthCenter

struct AdminGroupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "List groups, add one with --add, or put a user in one with --group G --member U."
    )

    @Option(help: "Add a group with this name.")
    var add: String?

    @Option(help: "The group to add --member to.")
    var group: String?

    @Option(help: "A username to add to --group.")
    var member: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func validate() throws {
        if (group == nil) != (member == nil) { throw ValidationError("--group and --member go together") }
    }

    func run() async throws {
        let client = try AdminClient(session: try AdminSession.load())
        if let add {
            struct New: Encodable { let name: String }
            let data = try await client.send(.POST, "/api/v1/groups", json: New(name: add))
            return try printAnswer(data, as: Group.self, json: json) { print("added group \($0.name)") }
        }
        if let group, let member {
            let data = try await client.send(.PUT, "/api/v1/groups/\(group)/members/\(member)")
            return try printAnswer(data, as: Group.self, json: json) { print("\($0.name): \($0.members.joined(separator: ", "))") }
        }
        let data = try await client.send(.GET, "/api/v1/groups")
        try printAnswer(data, as: [Group].self, json: json) { groups in
            if groups.isEmpty { print("no groups yet (add one with --add NAME)") }
            for group in groups { print("\(group.name.padding(toLength: 20, withPad: " ", startingAt: 0)) members: \(group.members.joined(separator: ", "))") }
        }
    }
}
