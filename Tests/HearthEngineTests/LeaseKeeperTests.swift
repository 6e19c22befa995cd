import Crypto
import Foundation
import HearthCore
@testable import HearthEngine
import NIOConcurrencyHelpers
import Testing

/// The lease as the Engine holds it: only the Center's key signs one, and no clock trick
/// stretches it.
@Suite struct LeaseKeeperTests {
    final class Clock: @unchecked Sendable {
        private let box = NIOLockedValueBox(Date(timeIntervalSince1970: 1_800_000_000))
        var now: Date {
            get { box.withLockedValue { $0 } }
            set { box.withLockedValue { $0 = newValue } }
        }
    }

    let centerKey = Curve25519.Signing.PrivateKey()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lease-\(UUID().uuidString.prefix(8))").path

    func lease(device: String = "dev-1", issued: Date, days: Double, key: Curve25519.Signing.PrivateKey? = nil) throws -> Lease {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        let payload = try encoder.encode(Lease.Terms(deviceID: device, issued: issued, expires: issued.addingTimeInterval(days * 86400)))
        return Lease(payload: payload.base64EncodedString(), signature: try (key ?? centerKey).signature(for: payload).base64EncodedString())
    }

    func keeper(_ clock: Clock) throws -> LeaseKeeper {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return try LeaseKeeper(path: "\(folder)/lease.json", leaseKey: centerKey.publicKey.rawRepresentation.base64EncodedString(),
                               deviceID: "dev-1", now: { clock.now })
    }

    @Test func aLeaseRunsOutAndSettingTheClockBackDoesNotRenewIt() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clock = Clock()
        let start = clock.now
        var keeper = try keeper(clock)
        #expect(keeper.standing == .none)
        try keeper.accept(try lease(issued: start, days: 14))
        #expect(keeper.standing == .valid(until: start.addingTimeInterval(14 * 86400)))

        clock.now = start.addingTimeInterval(15 * 86400)
        #expect(keeper.standing == .expired(since: start.addingTimeInterval(14 * 86400)))
        // The user sets the clock back a week: still expired.
        clock.now = start.addingTimeInterval(8 * 86400)
        #expect(keeper.standing == .expired(since: start.addingTimeInterval(14 * 86400)))
        // And after a restart of the Engine, from the mark kept on disk.
        keeper = try self.keeper(clock)
        #expect(keeper.standing == .expired(since: start.addingTimeInterval(14 * 86400)))
        // A check-in renews it.
        try keeper.accept(try lease(issued: start.addingTimeInterval(15 * 86400), days: 14))
        #expect(keeper.standing == .valid(until: start.addingTimeInterval(29 * 86400)))
    }

    @Test func aLeaseSignedByAnotherKeyForAnotherDeviceOrOlderIsRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clock = Clock()
        let keeper = try keeper(clock)
        let forged = try lease(issued: clock.now, days: 365, key: Curve25519.Signing.PrivateKey())
        #expect(throws: ManagementError.self) { try keeper.accept(forged) }
        #expect(keeper.standing == .none)
        #expect(throws: ManagementError.self) { try keeper.accept(try lease(device: "dev-2", issued: clock.now, days: 14)) }
        // A tampered payload with the old signature.
        var tampered = try lease(issued: clock.now, days: 1)
        tampered.payload = try lease(issued: clock.now, days: 300).payload
        #expect(throws: ManagementError.self) { try keeper.accept(tampered) }

        try keeper.accept(try lease(issued: clock.now, days: 2))
        // A replayed older answer with a longer lease changes nothing.
        try keeper.accept(try lease(issued: clock.now.addingTimeInterval(-3600), days: 30))
        #expect(keeper.standing == .valid(until: clock.now.addingTimeInterval(2 * 86400)))
    }

    @Test func aDamagedLeaseFileIsNamed() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: "\(folder)/lease.json"))
        #expect { try keeper(Clock()) } throws: { "\($0)".contains("lease.json") && "\($0)".contains("damaged") }
    }
}
