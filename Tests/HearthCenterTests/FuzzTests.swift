import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import HearthCenter
import Testing

/// schemathesis (installed by scripts/test) generates requests from the OpenAPI document — valid,
/// invalid and hostile — against a real Center, as an owner and as an enrolled device, and checks
/// that none is answered with a 5xx.
@Suite(.serialized) struct FuzzTests {
    static func schemathesis() -> String? {
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(folder)/schemathesis"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    @Test(arguments: Backend.allCases)
    func fuzzingTheAPIFromItsDocumentGetsNoServerError(backend: Backend) async throws {
        let tool = try #require(Self.schemathesis(), "schemathesis is not installed; scripts/test installs it (pip install schemathesis==4.32.5)")
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            // Something for the generated requests to find.
            for (path, body) in [("/api/v1/users", ["username": "alice"]), ("/api/v1/groups", ["name": "staff"]), ("/api/v1/images", ["name": "debian"]),
                                 ("/api/v1/images/debian/versions", ["version": "1"])] {
                _ = try await harness.call(.POST, path, json: body, token: owner)
            }
            _ = try await harness.call(.PUT, "/api/v1/images/debian/channels/stable", json: ["version": "1"], token: owner)
            _ = try await harness.call(.POST, "/api/v1/vms", json: ["name": "work", "role": "work", "image": "debian"], token: owner)
            let (device, _) = try await harness.enrollDevice(owner: owner, user: "alice")

            // Credentials in files only readable by us, never on the command line.
            let folder = harness.folder.appendingPathComponent("fuzz")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            func write(_ name: String, _ text: String) throws -> String {
                let path = folder.appendingPathComponent(name).path
                guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                    throw HarnessError("cannot write \(path)")
                }
                return path
            }
            _ = try write("schemathesis.toml", "headers = { Authorization = \"Bearer \(owner)\" }\n")
            let certificate = try write("device.pem", try #require(device.certificatePEM))
            let key = try write("device.key", device.key.pemRepresentation)
            let ca = try write("ca.pem", harness.caPEM)
            let junit = folder.appendingPathComponent("junit.xml").path
            // The document as served (OpenAPITests holds the two equal), read from a file.
            let document = try write("openapi.yaml", OpenAPIDocument.text)

            let (_, out, err) = try await runProcess(URL(fileURLWithPath: tool), [
                "run", document, "--url", harness.base, "--tls-verify", ca,
                // The whole suite runs beside this on two cores: a slow answer is not a failure.
                "--request-timeout", "120", "--request-cert", certificate, "--request-cert-key", key,
                "--checks", "not_a_server_error", "--max-examples", "25", "--workers", "2",
                // Logging out or changing the password would end the session the fuzzing uses.
                "--exclude-operation-id", "logout", "--exclude-operation-id", "changePassword",
                "--report", "junit", "--report-junit-path", junit,
            ], directory: folder)
            let printed = out + err
            guard FileManager.default.fileExists(atPath: junit) else {
                Issue.record("schemathesis wrote no report:\n\(printed.suffix(4000))")
                return
            }
            let report = try XMLDocument(contentsOf: URL(fileURLWithPath: junit))
            let cases = try report.nodes(forXPath: "//testcase")
            let failures = try report.nodes(forXPath: "//testcase[failure]").compactMap { ($0 as? XMLElement)?.attribute(forName: "name")?.stringValue }
            // schemathesis's own crashes (errors, not failures) leave an operation less fuzzed; a few are tolerated.
            let errors = try report.nodes(forXPath: "//testcase[error]").compactMap { ($0 as? XMLElement)?.attribute(forName: "name")?.stringValue }
            let operations = Center.routes.count - 2
            #expect(cases.count >= operations, "schemathesis tested \(cases.count) of \(operations) operations:\n\(printed.suffix(3000))")
            #expect(failures.isEmpty, "5xx answers from \(failures):\n\(printed.suffix(6000))")
            #expect(errors.count <= operations / 10, "schemathesis could not test \(errors):\n\(printed.suffix(3000))")
            let generated = printed.split(separator: "\n").first { $0.contains(" generated, ") } ?? "?"
            print("schemathesis on \(backend): \(cases.count) operations, \(generated.trimmingCharacters(in: .whitespaces)), tool errors: \(errors)")
        }
    }
}
