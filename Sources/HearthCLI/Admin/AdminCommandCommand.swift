import ArgumentParser
import Foundation
import HearthCenter
import HearthCore

extension DeviceCommand.Kind: ExpressibleByArgument {}

struct AdminCommandCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "command",
        abstract: "Send a device a command: lock, unlock, wipe, restartVM, resetPersonalVM or collectDiagnostics.",
        discussion: "A wipe waits for a second admin's approval (hearth admin approve ID) unless the Center's settings turn that off."
    )

    @Argument(help: "The device's id.")
    var device: String

    @Argument(help: "The command.")
    var kind: DeviceCommand.Kind

    @Option(help: "The VM, for restartVM.")
    var vm: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        struct New: Encodable { let kind: DeviceCommand.Kind; let vm: String? }
        let data = try await AdminClient(session: try AdminSession.load())
            .send(.POST, "/api/v1/devices/\(device)/commands", json: New(kind: kind, vm: vm))
        try printAnswer(data, as: CommandRecord.self, json: json) { command in
            print("\(command.kind.rawValue) \(command.id): \(command.state.rawValue)")
            if command.state == .awaitingApproval { print("a second admin approves it with: hearth admin approve \(command.id)") }
            if command.kind == .collectDiagnostics { print("once the device has carried it out, read its logs with: hearth admin diagnostics \(command.id)") }
        }
    }
}
