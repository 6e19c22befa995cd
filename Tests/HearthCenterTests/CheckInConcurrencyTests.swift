import Foundation
@testable import HearthCenter
import HearthCore
import Logging
import SQLKit
import Testing

/// Devices checking in all at once while an admin changes what they read. On SQLite the
/// check-ins share the one connection with each other, not with the admin's transactions
/// (docs/PERFORMANCE.md): this is where a lost status or a "database is locked" would show.
@Suite struct CheckInConcurrencyTests {
    @Test(arguments: Backend.allCases)
    func everyCheckInIsAnsweredAndRecordedWhileAnAdminChangesPoliciesAndSendsCommands(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            for (method, path, body) in [
                ("POST", "/api/v1/users", ["username": "alice"] as [String: Any]), ("POST", "/api/v1/groups", ["name": "staff"]),
                ("POST", "/api/v1/groups", ["name": "finance"]),
                ("PUT", "/api/v1/groups/staff/members/alice", [:]), ("PUT", "/api/v1/groups/finance/members/alice", [:]),
                ("POST", "/api/v1/images", ["name": "debian"]), ("POST", "/api/v1/images/debian/versions", ["version": "1"]),
                ("PUT", "/api/v1/images/debian/channels/stable", ["version": "1"]),
                ("POST", "/api/v1/vms", ["name": "work", "role": "work", "image": "debian"]),
                ("PUT", "/api/v1/vms/work/assignments/group/staff", [:]),
                ("PUT", "/api/v1/policies/group:finance", ["leaseDays": 20]),
            ] {
                let answer = try await harness.call(method == "POST" ? .POST : .PUT, path, json: body, token: owner)
                #expect(answer.status < 300, "\(method) \(path): \(answer.status) \(answer.errorMessage)")
            }
            var enrolled: [(DeviceIdentity, String)] = []
            for _ in 0..<8 { enrolled.append(try await harness.enrollDevice(owner: owner, user: "alice")) }
            let devices = enrolled
            let rounds = 12
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601

            try await withThrowingTaskGroup(of: Void.self) { group in
                for (identity, id) in devices {
                    let client = try harness.deviceClient(identity)
                    group.addTask {
                        for round in 1...rounds {
                            var status = CenterHarness.status
                            status["engineVersion"] = "0.1.\(round)"
                            let answer = try await harness.call(.POST, "/api/v1/device/checkin", json: status, client: client)
                            try #require(answer.status == 200, "check-in \(round) of \(id): \(answer.status) \(answer.errorMessage)")
                            let desired = try decoder.decode(CheckInResponse.self, from: answer.body)
                            #expect(desired.deviceID == id)
                            #expect(desired.vms.map(\.definition.name) == ["work"], "the work VM, through the staff group")
                        }
                    }
                }
                // Meanwhile the admin locks every device and moves the staff group's lease each time.
                group.addTask {
                    for (index, (_, id)) in devices.enumerated() {
                        let lock = try await harness.call(.POST, "/api/v1/devices/\(id)/commands", json: ["kind": "lock"], token: owner)
                        #expect(lock.status == 201, "\(lock.errorMessage)")
                        let policy = try await harness.call(.PUT, "/api/v1/policies/group:staff", json: ["leaseDays": index + 1], token: owner)
                        #expect(policy.status < 300, "\(policy.errorMessage)")
                    }
                }
                try await group.waitForAll()
            }

            // Afterwards every device is told of its lock and of the last lease, and the Center
            // kept the status each device sent last.
            for (identity, id) in devices {
                var status = CenterHarness.status
                status["engineVersion"] = "0.2.0"
                let answer = try await harness.call(.POST, "/api/v1/device/checkin", json: status, client: try harness.deviceClient(identity))
                let desired = try decoder.decode(CheckInResponse.self, from: answer.body)
                #expect(desired.commands.map(\.kind) == [.lock])
                // The stricter of the two groups' leases: staff's last value (8 days) against finance's 20.
                #expect(desired.vms.first?.policy.leaseDays == devices.count)
                let device = try await harness.call(.GET, "/api/v1/devices/\(id)", token: owner)
                #expect((device.object["status"] as? [String: Any])?["engineVersion"] as? String == "0.2.0")
                let commands = try await harness.call(.GET, "/api/v1/devices/\(id)/commands", token: owner)
                #expect(commands.array.map { $0["state"] as? String } == ["delivered"])
            }
        }
    }

    /// A check-in's statement that comes while another caller's transaction is open waits for
    /// it: run inside it, the check-in would be undone when that transaction fails.
    @Test(arguments: Backend.allCases)
    func aCheckInIsNotUndoneByAnotherCallersFailedTransaction(backend: Backend) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-shared-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = backend == .postgres ? try await PostgresServer.shared.newDatabase() : "sqlite:\(folder.path)/center.sqlite"
        let database = try await CenterDatabase.open(url, logger: Logger(label: "test"))
        try await database.read { db in
            try await db.raw("CREATE TABLE marks (id TEXT PRIMARY KEY, value TEXT NOT NULL)").run()
            try await db.raw("INSERT INTO marks (id, value) VALUES ('device', 'before')").run()
        }
        struct Mark: FrequentStatement {
            typealias Row = any SQLRow
            static let sql = "UPDATE marks SET value = $1 WHERE id = 'device'"
            static let sqliteSQL = "UPDATE marks SET value = ?1 WHERE id = 'device'"
            let value: String
            var values: [FrequentValue] { [.text(value)] }
        }
        struct Refused: Error {}
        let (opened, signal) = AsyncStream<Void>.makeStream()
        let failed = Task {
            try await database.transaction { db in
                try await db.raw("INSERT INTO marks (id, value) VALUES ('admin', 'change')").run()
                signal.yield()
                try await Task.sleep(for: .milliseconds(300))
                throw Refused()
            }
        }
        for await _ in opened { break }
        _ = try await database.frequent { connection in try await connection.rows(Mark(value: "checked in")) }
        await #expect(throws: Refused.self) { try await failed.value }
        let marks = try await database.read { db in
            try await db.raw("SELECT id, value FROM marks ORDER BY id").all().map { try $0.decode(column: "value", as: String.self) }
        }
        #expect(marks == ["checked in"], "the admin's change rolled back, the check-in kept")
        await database.close()
    }
}
