import Crypto
import Foundation
import HearthCore
@testable import HearthEngine
import NIOConcurrencyHelpers
import Testing
import TPM

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

/// The lease anchored in a (software) TPM: neither a clock set back nor an old lease file put
/// back extends it.
@Suite(.serialized, .enabled(if: SoftwareTPM.installed, "needs swtpm (scripts/setup-host run)"))
struct TPMLeaseTests {
    let base = LeaseKeeperTests()

    @Test func aClockSetBackWithAnOldLeaseFileRestoredDoesNotExtendTheLease() throws {
        let swtpm = try SoftwareTPM()
        defer { swtpm.stop(); try? FileManager.default.removeItem(atPath: base.folder) }
        let zone = SecurityZone(mode: .tpm(tcti: swtpm.tcti), root: base.folder)
        let clock = LeaseKeeperTests.Clock()
        let start = clock.now
        try FileManager.default.createDirectory(atPath: base.folder, withIntermediateDirectories: true)
        func makeKeeper() throws -> LeaseKeeper {
            try LeaseKeeper(path: "\(base.folder)/lease.json", leaseKey: base.centerKey.publicKey.rawRepresentation.base64EncodedString(),
                            deviceID: "dev-1", now: { clock.now }, tpm: try #require(zone.leaseAnchor()))
        }
        var keeper = try makeKeeper()
        try keeper.accept(try base.lease(issued: start, days: 14))
        let copy = try Data(contentsOf: URL(fileURLWithPath: "\(base.folder)/lease.json"))
        #expect(keeper.standing == .valid(until: start.addingTimeInterval(14 * 86400)))

        // Twenty days of the PC running (the TPM's clock moves), then the user sets the system
        // clock back to the start and puts the old lease file back. Without the TPM the mark
        // in that file would say it is still the first day.
        let tpm = try TPM(tcti: swtpm.tcti)
        try tpm.advanceClock(to: try tpm.clock() + 20 * 86_400_000)
        clock.now = start
        try copy.write(to: URL(fileURLWithPath: "\(base.folder)/lease.json"))
        keeper = try makeKeeper()
        #expect(keeper.standing == .expired(since: start.addingTimeInterval(14 * 86400)), "\(keeper.standing)")
        #expect(keeper.now() >= start.addingTimeInterval(20 * 86400))

        // A check-in renews it (the expiry moved by days: the TPM counter moves with it).
        let renewal = try base.lease(issued: start.addingTimeInterval(20 * 86400), days: 14)
        try keeper.accept(renewal)
        #expect(keeper.standing == .valid(until: start.addingTimeInterval(34 * 86400)))
        // The day-one file put back now is an older copy by the TPM's counter: not trusted,
        // even though its own lease would still look valid by its mark and the system clock.
        try copy.write(to: URL(fileURLWithPath: "\(base.folder)/lease.json"))
        keeper = try makeKeeper()
        guard case .untrusted(let reason) = keeper.standing else {
            Issue.record("a restored lease file was trusted: \(keeper.standing)")
            return
        }
        #expect(reason.contains("older copy"))
        // Until the next check-in.
        try keeper.accept(try base.lease(issued: start.addingTimeInterval(20 * 86400 + 600), days: 14))
        #expect(keeper.standing == .valid(until: start.addingTimeInterval(34 * 86400 + 600)))
    }
}
