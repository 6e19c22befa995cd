import Foundation
import GuestKit
import HearthCore
import HearthEngine
import Testing

extension VMSuites {
    /// `hearth engine run` as a real process, controlled with `hearth vm …` over its socket, and
    /// killed with SIGKILL while a VM runs.
    @Suite struct EngineDaemonTests {
        static var hearth: URL {
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("hearth")
        }

        static func hearth(_ arguments: [String], as user: String? = nil) throws -> (status: Int32, output: String) {
            let process = Process()
            if let user {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                process.arguments = ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", hearth.path] + arguments
            } else {
                process.executableURL = hearth
                process.arguments = arguments
            }
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }

        /// `hearth engine run`; these machines have no TPM, so it runs in the insecure
        /// development mode unless `secure` (then it refuses work desktops).
        static func startEngine(root: String, definitions: String, secure: Bool = false) throws -> Process {
            let process = Process()
            process.executableURL = hearth
            process.arguments = ["engine", "run", "--root", root, "--definitions", definitions] + (secure ? [] : ["--insecure-no-tpm"])
            _ = FileManager.default.createFile(atPath: "\(root)/engine.log", contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(root)/engine.log"))
            log.seekToEndOfFile()
            process.standardOutput = log
            process.standardError = log
            try process.run()
            // Ready when it answers (a killed Engine's socket file may still be there).
            let deadline = Date().addingTimeInterval(60)
            while (try? ControlClient.send(ControlRequest(action: .list), to: "\(root)/control.sock"))?.ok != true, Date() < deadline {
                Thread.sleep(forTimeInterval: 0.1)
            }
            return process
        }

        func list(_ control: String) throws -> [VMStatus] {
            let (status, output) = try Self.hearth(["vm", "list", "--json", "--control", control])
            #expect(status == 0, "\(output)")
            return try JSONDecoder().decode([VMStatus].self, from: Data(output.utf8))
        }

        /// Point 8 of the security zone: no TPM, no work desktop, and the message says what to do;
        /// the insecure development mode says what it is at start.
        @Test func withoutATPMTheEngineRefusesWorkDesktopsUnlessToldItIsDevelopment() throws {
            let fixture = try EngineTests.Fixture()
            let definitions = "\(fixture.root)/vms.json"
            let vms = VMDefinitionList(vms: [VMDefinition(name: "work", role: .work, image: .init(name: "kit", version: "1"), memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 32 << 20)])
            try JSONEncoder().encode(vms).write(to: URL(fileURLWithPath: definitions))
            let control = "\(fixture.root)/control.sock"
            let engine = try Self.startEngine(root: fixture.root, definitions: definitions, secure: true)
            defer { kill(engine.processIdentifier, SIGKILL) }
            let refused = try Self.hearth(["vm", "start", "work", "--control", control])
            #expect(refused.status != 0)
            #expect(refused.output.contains("no TPM answers") && refused.output.contains("--insecure-no-tpm"), "\(refused.output)")
            #expect(try list(control).first?.blocked?.contains("--insecure-no-tpm") == true)
            kill(engine.processIdentifier, SIGKILL)
            engine.waitUntilExit()
            let log = try String(contentsOfFile: "\(fixture.root)/engine.log", encoding: .utf8)
            #expect(log.contains("security zone: no-tpm"), "\(log)")
            #expect(!log.contains("ERROR:tcti"), "tpm2-tss's own error lines stay out of the Engine's output")

            let insecure = try Self.startEngine(root: fixture.root, definitions: definitions)
            defer { kill(insecure.processIdentifier, SIGKILL) }
            #expect(try list(control).first?.blocked == nil)
            #expect(try String(contentsOfFile: "\(fixture.root)/engine.log", encoding: .utf8).contains("INSECURE: running without a TPM"))
        }

        @Test func theEngineSurvivesAKillAndFindsItsVM() throws {
            let fixture = try EngineTests.Fixture()
            let definitions = "\(fixture.root)/vms.json"
            let vms = VMDefinitionList(vms: [VMDefinition(name: "work", role: .work, image: .init(name: "kit", version: "1"), memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 32 << 20)])
            try JSONEncoder().encode(vms).write(to: URL(fileURLWithPath: definitions))
            let control = "\(fixture.root)/control.sock"

            var engine = try Self.startEngine(root: fixture.root, definitions: definitions)
            defer { kill(engine.processIdentifier, SIGKILL) }
            #expect(try list(control).map(\.phase) == [.stopped])
            let started = try Self.hearth(["vm", "start", "work", "--control", control])
            #expect(started.status == 0, "\(started.output)")
            let pid = try #require(try list(control).first?.pid)

            // kill -9 the Engine; the VM runs on, and the next Engine finds it.
            kill(engine.processIdentifier, SIGKILL)
            engine.waitUntilExit()
            #expect(Engine.isAlive(pid))
            engine = try Self.startEngine(root: fixture.root, definitions: definitions)
            let found = try #require(try list(control).first)
            #expect(found.phase == .running)
            #expect(found.pid == pid)

            // Only root and the allowed users may control it.
            chmod(fixture.root, 0o755)
            chmod(control, 0o666)
            let stranger = try Self.hearth(["vm", "stop", "work", "--control", control], as: "65534")
            #expect(stranger.status != 0)
            #expect(stranger.output.contains("may not control this Engine"), "\(stranger.output)")
            #expect(Engine.isAlive(pid))

            let stopped = try Self.hearth(["vm", "stop", "work", "--control", control])
            #expect(stopped.status == 0, "\(stopped.output)")
            #expect(!Engine.isAlive(pid))
            #expect(try list(control).map(\.phase) == [.stopped])
            let bad = try Self.hearth(["vm", "start", "nonesuch", "--control", control])
            #expect(bad.status != 0 && bad.output.contains("no VM named 'nonesuch'"), "\(bad.output)")
        }
    }
}
