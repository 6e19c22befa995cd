import ArgumentParser
import Foundation
import HearthCenter

/// `hearth admin diagnostics ID`: the log bundle a device uploaded for a collectDiagnostics
/// command (issued with `hearth admin command DEVICE collectDiagnostics`).
struct AdminDiagnosticsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagnostics",
        abstract: "Show the log bundle a device uploaded for a collectDiagnostics command."
    )

    @Argument(help: "The collectDiagnostics command's id.")
    var command: String

    @Option(help: "Write the bundle (JSON) to this file instead of printing it.")
    var output: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        guard command.allSatisfy({ $0.isHexDigit || $0 == "-" }), !command.isEmpty else {
            throw ValidationError("a command id is a UUID, as `hearth admin command` prints it")
        }
        let data = try await AdminClient(session: try AdminSession.load()).send(.GET, "/api/v1/commands/\(command)/diagnostics")
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: data, attributes: [.posixPermissions: 0o600]) else {
                throw AdminError("cannot write \(output)")
            }
            print("wrote \(data.count) bytes to \(output)")
            return
        }
        try printAnswer(data, as: DiagnosticsRecord.self, json: json) { record in
            print("device \(record.deviceID), uploaded \(record.uploaded.ISO8601Format()) (\(record.size) bytes)")
            print(record.bundle.summary)
            for file in record.bundle.files {
                let part = file.text.utf8.count < file.size ? "last \(file.text.utf8.count) of \(file.size) bytes" : "\(file.size) bytes"
                print("\n--- \(file.path) (\(part))")
                print(file.text, terminator: file.text.hasSuffix("\n") ? "" : "\n")
            }
        }
    }
}
