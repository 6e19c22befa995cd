import ArgumentParser
import Foundation
import HearthCenter

struct AdminDevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List enrolled devices, or retire one with --retire ID (its certificate stops working)."
    )

    @Option(help: "Retire the device with this id.")
    var retire: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let client = try AdminClient(session: try AdminSession.load())
        if let retire {
            let data = try await client.send(.POST, "/api/v1/devices/\(retire)/retire")
            return try printAnswer(data, as: Device.self, json: json) { print("retired \($0.name) (\($0.id))") }
        }
        let data = try await client.send(.GET, "/api/v1/devices")
        try printAnswer(data, as: [Device].self, json: json) { devices in
            if devices.isEmpty { print("no devices enrolled yet (make a token with `hearth admin enroll-token`)") }
            for device in devices {
                let seen = device.lastCheckIn.map { "last check-in \($0.ISO8601Format())" } ?? "never checked in"
                let state = device.retired == nil ? seen : "retired"
                print("\(device.id)  \(device.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(state)")
            }
        }
    }
}
