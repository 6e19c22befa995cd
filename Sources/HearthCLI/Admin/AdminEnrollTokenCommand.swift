import ArgumentParser
import Foundation
import HearthCenter

struct AdminEnrollTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll-token",
        abstract: "Make a one-time token that enrolls one device (printed once).",
        discussion: "Give the token to the device's Engine: hearth engine run --center URL --enroll-token TOKEN."
    )

    @Option(help: "The user the device will belong to.")
    var user: String?

    @Option(help: "Hours the token stays valid (up to 720).")
    var hours: Double = 24

    @Option(help: "A note for the audit log, such as the laptop's asset tag.")
    var note: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        struct New: Encodable { let user: String?; let note: String?; let validHours: Double }
        struct Answer: Decodable { let token: EnrollmentToken; let secret: String }
        let data = try await AdminClient(session: try AdminSession.load())
            .send(.POST, "/api/v1/enrollment-tokens", json: New(user: user, note: note, validHours: hours))
        try printAnswer(data, as: Answer.self, json: json) { answer in
            print(answer.secret)
            FileHandle.standardError.write(Data("one device may enroll with it until \(answer.token.expires.ISO8601Format())\n".utf8))
        }
    }
}
