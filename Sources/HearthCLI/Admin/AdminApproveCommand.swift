import ArgumentParser
import Foundation
import HearthCenter

struct AdminApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve a wipe another admin issued."
    )

    @Argument(help: "The command's id.")
    var command: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let data = try await AdminClient(session: try AdminSession.load()).send(.POST, "/api/v1/commands/\(command)/approve")
        try printAnswer(data, as: CommandRecord.self, json: json) { print("\($0.kind.rawValue) \($0.id): \($0.state.rawValue), approved by \($0.approvedBy ?? "?")") }
    }
}
