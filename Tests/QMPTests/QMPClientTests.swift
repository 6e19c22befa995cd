import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import QMP

@Suite struct QMPClientTests {
    /// Runs `body` against a stub that handles the capabilities handshake and hands every
    /// other request to `respond`.
    func withStub(
        greeting: String = StubQMPServer.greeting,
        respond: @escaping @Sendable (String, JSONValue) -> [String]? = { _, request in [StubQMPServer.ok(request)] },
        _ body: (String) async throws -> Void
    ) async throws {
        let server = try await StubQMPServer.start(greeting: greeting) { request in
            let command = request["execute"]?.stringValue ?? ""
            return command == "qmp_capabilities" ? [StubQMPServer.ok(request)] : respond(command, request)
        }
        do {
            try await body(server.path)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test func handshakeReadsTheGreetingAndNegotiatesCapabilities() async throws {
        let seen = NIOLockedValueBox<[String]>([])
        try await withStub(respond: { command, request in
            seen.withLockedValue { $0.append(command) }
            return [StubQMPServer.ok(request)]
        }) { path in
            let client = try await QMPClient.connect(socketPath: path)
            #expect(client.greeting.version.qemu.major == 7)
            #expect(client.greeting.version.package == "stub")
            try await client.execute("cont", returning: QMPEmpty.self)
            #expect(seen.withLockedValue { $0 } == ["cont"])
            await client.close()
        }
    }

    @Test func typedRepliesDecode() async throws {
        try await withStub(respond: { _, request in
            [#"{"return": {"status": "running", "singlestep": false, "running": true}, "id": "\#(request["id"]?.stringValue ?? "")"}"#]
        }) { path in
            let client = try await QMPClient.connect(socketPath: path)
            let status = try await client.execute("query-status", returning: QMPStatus.self)
            #expect(status == QMPStatus(status: "running", running: true))
            await client.close()
        }
    }

    @Test func argumentsReachTheServerAsJSON() async throws {
        let received = NIOLockedValueBox<JSONValue?>(nil)
        try await withStub(respond: { _, request in
            received.withLockedValue { $0 = request["arguments"] }
            return [StubQMPServer.ok(request)]
        }) { path in
            struct Arguments: Encodable, Sendable { var device: String; var force: Bool }
            let client = try await QMPClient.connect(socketPath: path)
            try await client.execute("eject", arguments: Arguments(device: "cd0", force: true), returning: QMPEmpty.self)
            #expect(received.withLockedValue { $0 } == .object(["device": .string("cd0"), "force": .bool(true)]))
            await client.close()
        }
    }

    @Test func anErrorReplyThrowsWithQEMUsClassAndText() async throws {
        try await withStub(respond: { _, request in
            [#"{"error": {"class": "CommandNotFound", "desc": "The command frobnicate has not been found"}, "id": "\#(request["id"]?.stringValue ?? "")"}"#]
        }) { path in
            let client = try await QMPClient.connect(socketPath: path)
            await #expect(throws: QMPError.commandFailed(command: "frobnicate", errorClass: "CommandNotFound", description: "The command frobnicate has not been found")) {
                try await client.execute("frobnicate")
            }
            await client.close()
        }
    }

    @Test func eventsArriveOnTheStreamBetweenReplies() async throws {
        try await withStub(respond: { _, request in
            [
                #"{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "STOP"}"#,
                StubQMPServer.ok(request),
                #"{"timestamp": {"seconds": 1700000001, "microseconds": 6}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#,
            ]
        }) { path in
            let client = try await QMPClient.connect(socketPath: path)
            try await client.execute("stop")
            var iterator = client.events.makeAsyncIterator()
            let first = await iterator.next()
            let second = await iterator.next()
            #expect(first?.event == "STOP")
            #expect(second?.event == "SHUTDOWN")
            #expect(second?.data?["reason"]?.stringValue == "guest-shutdown")
            await client.close()
            #expect(await iterator.next() == nil)
        }
    }

    @Test func repliesOutOfOrderReachTheirOwnCommands() async throws {
        // The stub holds the reply to "slow" and sends it after the reply to "fast".
        let held = NIOLockedValueBox<String?>(nil)
        try await withStub(respond: { command, request in
            if command == "slow" {
                held.withLockedValue { $0 = request["id"]?.stringValue }
                return []
            }
            let slowID = held.withLockedValue { $0 } ?? ""
            return [
                #"{"return": "fast-reply", "id": "\#(request["id"]?.stringValue ?? "")"}"#,
                #"{"return": "slow-reply", "id": "\#(slowID)"}"#,
            ]
        }) { path in
            let client = try await QMPClient.connect(socketPath: path)
            async let slow = client.execute("slow", returning: String.self)
            while held.withLockedValue({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
            let fast = try await client.execute("fast", returning: String.self)
            #expect(fast == "fast-reply")
            #expect(try await slow == "slow-reply")
            await client.close()
        }
    }

    @Test func aCommandWithoutReplyTimesOutAndTheConnectionStaysUsable() async throws {
        try await withStub(respond: { command, request in
            command == "hang" ? [] : [StubQMPServer.ok(request)]
        }) { path in
            let client = try await QMPClient.connect(socketPath: path)
            await #expect(throws: QMPError.timeout(command: "hang", seconds: 0.2)) {
                try await client.execute("hang", timeout: .milliseconds(200))
            }
            try await client.execute("cont", returning: QMPEmpty.self)
            await client.close()
        }
    }

    @Test func aServerThatHangsUpFailsTheWaitingCommand() async throws {
        try await withStub(respond: { command, request in
            command == "quit" ? nil : [StubQMPServer.ok(request)]
        }) { path in
            let client = try await QMPClient.connect(socketPath: path)
            await #expect(throws: QMPError.disconnected(command: "quit")) {
                try await client.execute("quit", timeout: .seconds(5))
            }
            await #expect(throws: QMPError.disconnected(command: "cont")) {
                try await client.execute("cont", timeout: .seconds(5))
            }
        }
    }

    /// Seen from QEMU 7.2 under load: a connection made right after another client's `cont` and
    /// close first receives that session's RESUME event, then its own greeting.
    @Test func anEventLeftOverFromThePreviousSessionIsSkipped() async throws {
        let stale = #"{"timestamp": {"seconds": 1795299165, "microseconds": 74685}, "event": "RESUME"}"#
        try await withStub(greeting: stale + "\r\n" + StubQMPServer.greeting) { path in
            let client = try await QMPClient.connect(socketPath: path, timeout: .seconds(5))
            #expect(client.greeting.version.package == "stub")
            try await client.execute("cont", returning: QMPEmpty.self)
            await client.close()
        }
        // Events and never a greeting: still not QEMU, within the timeout.
        try await withStub(greeting: stale) { path in
            await #expect(throws: QMPError.self) {
                _ = try await QMPClient.connect(socketPath: path, timeout: .seconds(2))
            }
        }
    }

    @Test func aPeerThatIsNotQMPIsNamed() async throws {
        try await withStub(greeting: #"{"hello": "I am not QEMU"}"#) { path in
            let error = await #expect(throws: QMPError.self) {
                _ = try await QMPClient.connect(socketPath: path, timeout: .seconds(2))
            }
            guard case .notQMP(let reported, let detail)? = error else {
                Issue.record("expected notQMP, got \(String(describing: error))")
                return
            }
            #expect(reported == path)
            #expect(detail.contains("not a QMP greeting"))
        }
        try await withStub(greeting: "SSH-2.0-OpenSSH_9.2") { path in
            do {
                _ = try await QMPClient.connect(socketPath: path, timeout: .seconds(2))
                Issue.record("connected to a peer that is not QMP")
            } catch let error as QMPError {
                guard case .notQMP(let reported, _) = error else {
                    Issue.record("expected notQMP, got \(error)")
                    return
                }
                #expect(reported == path)
            }
        }
    }

    @Test func aSilentPeerTimesOutInsteadOfHanging() async throws {
        try await withStub(greeting: "") { path in
            await #expect(throws: QMPError.timeout(command: "greeting", seconds: 0.3)) {
                _ = try await QMPClient.connect(socketPath: path, timeout: .milliseconds(300))
            }
        }
    }

    @Test func anOversizedMessageClosesTheConnectionInsteadOfGrowingWithoutBound() async throws {
        let huge = #"{"return": ""# + String(repeating: "A", count: QMPClient.maximumMessageLength + 10)
        try await withStub(respond: { _, _ in [huge] }) { path in
            let client = try await QMPClient.connect(socketPath: path)
            await #expect(throws: QMPError.self) {
                try await client.execute("query-status", timeout: .seconds(20))
            }
            await client.close()
        }
    }

    @Test func nothingListeningIsAConnectionFailure() async throws {
        let path = "/tmp/hearth-nothing-\(UUID().uuidString.prefix(8)).sock"
        do {
            _ = try await QMPClient.connect(socketPath: path, timeout: .seconds(1))
            Issue.record("connected to nothing")
        } catch let error as QMPError {
            guard case .connectionFailed(let reported, let reason) = error else {
                Issue.record("expected connectionFailed, got \(error)")
                return
            }
            #expect(reported == path)
            #expect(reason.contains("No such file"))
        }
    }
}
