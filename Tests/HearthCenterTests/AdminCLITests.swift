import Foundation
import HearthCenter
import Testing

/// `hearth admin …` against a real Center: what an admin at a terminal does.
@Suite struct AdminCLITests {
    /// The `hearth` executable built beside this test bundle.
    static var hearth: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("hearth")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/hearth")
    }

    /// Runs hearth with `input` on standard input; returns exit status, standard output and error.
    static func run(_ arguments: [String], input: String = "", environment: [String: String]) async throws -> (Int32, String, String) {
        try await runProcess(hearth, arguments, input: input, environment: environment)
    }

    @Test func anAdminLogsInChangesThePasswordAndManagesUsersFromTheTerminal() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.hearth.path), "build hearth first (swift build --build-tests)")
        try await CenterHarness.with(.sqlite) { harness in
            let caFile = harness.folder.appendingPathComponent("tls/ca.pem").path
            let session = harness.folder.appendingPathComponent("session.json").path
            let environment = ["HEARTH_ADMIN_SESSION": session]
            let login = try await Self.run(["admin", "login", "--center", harness.base, "--ca", caFile, "--username", "owner"],
                                     input: harness.ownerPassword + "\n", environment: environment)
            #expect(login.0 == 0, "\(login.2)")
            #expect(login.1.contains("hearth admin password"))
            // The session file holds a token, readable by its owner only, and never the password.
            let attributes = try FileManager.default.attributesOfItem(atPath: session)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            #expect(!(try String(contentsOfFile: session, encoding: .utf8)).contains(harness.ownerPassword))

            let blocked = try await Self.run(["admin", "users"], environment: environment)
            #expect(blocked.0 != 0 && blocked.2.contains("one-time password") && !blocked.2.contains("Usage"))
            let changed = try await Self.run(["admin", "password"], input: "\(harness.ownerPassword)\nthe new owner password\n", environment: environment)
            #expect(changed.0 == 0, "\(changed.2)")
            let added = try await Self.run(["admin", "users", "--add", "bob", "--display-name", "Bob B", "--json"], environment: environment)
            #expect(added.0 == 0 && added.1.contains("\"username\" : \"bob\""))
            let listed = try await Self.run(["admin", "users"], environment: environment)
            #expect(listed.1.contains("bob") && listed.1.contains("Bob B"))
            let token = try await Self.run(["admin", "enroll-token", "--user", "bob"], environment: environment)
            #expect(token.0 == 0 && token.1.hasPrefix("hte_"))
            let audit = try await Self.run(["admin", "audit", "--action", "user.create", "--json"], environment: environment)
            #expect(audit.1.contains("user:bob"))
            let wrong = try await Self.run(["admin", "command", "no-such-device", "lock"], environment: environment)
            #expect(wrong.0 != 0 && wrong.2.contains("404"))
        }
    }
}
