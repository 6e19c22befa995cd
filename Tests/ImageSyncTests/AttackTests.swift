import Foundation
import Testing
@testable import ImageSync

/// The attacks TUF names, each refused with a reason, and nothing untrusted installed.
@Suite struct AttackTests {
    /// A repository with debian 1 published, a client that has pulled it, and that client.
    static func pulled(_ fixture: Fixture) async throws -> Puller {
        let disk = try fixture.disk("v1.raw", size: 8 << 20, regions: [(0, 2 << 20, 1)])
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        let puller = try fixture.client(fixture.local(), store: fixture.file("store"))
        _ = try await puller.pull(name: "debian", version: "1")
        return puller
    }

    static func publishV2(_ fixture: Fixture) throws {
        let disk = try fixture.disk("v2.raw", size: 8 << 20, regions: [(0, 2 << 20, 1), (4 << 20, 1 << 20, 2)])
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "2")
    }

    static func expectUntrusted(_ role: String, containing text: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("expected \(role) metadata to be rejected")
        } catch let ImageSyncError.untrusted(rejected, reason) {
            #expect(rejected == role)
            #expect(reason.contains(text), "reason: \(reason)")
        } catch {
            Issue.record("unexpected error: \(error)")
        }
    }

    func metadata(_ fixture: Fixture, _ path: String) -> URL { fixture.repo.appendingPathComponent(path) }

    @Test func rollbackToOlderMetadataIsRejected() async throws {
        let fixture = try Fixture()
        let puller = try await Self.pulled(fixture)
        let old = try Data(contentsOf: metadata(fixture, RepositoryLayout.timestamp))
        try Self.publishV2(fixture)
        _ = try await puller.pull(name: "debian", version: "2")
        // A mirror serves the timestamp from before v2.
        try old.write(to: metadata(fixture, RepositoryLayout.timestamp))
        await Self.expectUntrusted("timestamp", containing: "rollback") {
            _ = try await puller.repository.refresh()
        }
    }

    @Test func frozenMetadataIsRejected() async throws {
        let fixture = try Fixture()
        _ = try await Self.pulled(fixture)
        // Eight days on, nobody has refreshed the seven-day timestamp.
        let later = try fixture.client(fixture.local(), store: fixture.file("store"), now: { Date() + 8 * 86400 })
        await Self.expectUntrusted("timestamp", containing: "freeze") {
            _ = try await later.pull(name: "debian", version: "1")
        }
        // A refresh by the publisher cures it.
        _ = try fixture.publisher.refresh(now: Date() + 8 * 86400)
        #expect(try await later.repository.refresh().targets["debian/1"] != nil)
    }

    @Test func mixAndMatchIsRejected() async throws {
        let fixture = try Fixture()
        let puller = try await Self.pulled(fixture)
        try Self.publishV2(fixture)
        // The current snapshot's path now holds an older, validly signed snapshot.
        let state = try fixture.publisher.state()
        let current = metadata(fixture, RepositoryLayout.snapshot(state.snapshot.version))
        try Data(contentsOf: metadata(fixture, RepositoryLayout.snapshot(1))).write(to: current)
        await Self.expectUntrusted("snapshot", containing: "not the file the timestamp pins") {
            _ = try await puller.pull(name: "debian", version: "2")
        }
        #expect(!FileManager.default.fileExists(atPath: ImageStore(root: fixture.file("store")).imagePath(name: "debian", version: "2").path))
    }

    @Test func aTargetLongerThanSignedIsRejected() async throws {
        let fixture = try Fixture()
        let disk = try fixture.disk("v1.raw", size: 8 << 20, regions: [(0, 2 << 20, 1)])
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        let server = try TestServer(root: fixture.repo)
        defer { server.stop() }
        server.behavior = .endless(prefix: "indexes/")
        let transport = HTTPTransport(baseURL: server.url)
        let puller = try fixture.client(transport, store: fixture.file("store"))
        await #expect {
            _ = try await puller.pull(name: "debian", version: "1")
        } throws: { error in
            guard case let ImageSyncError.badResponse(_, reason) = error else { return false }
            return reason.contains("more than")
        }
        // An endless timestamp (no signed length) stops at its fixed limit.
        server.behavior = .endless(prefix: "metadata/timestamp")
        await #expect {
            _ = try await puller.pull(name: "debian", version: "1")
        } throws: { error in
            guard case let ImageSyncError.badResponse(url, reason) = error else { return false }
            return url.hasSuffix("timestamp.json") && reason.contains("more than the 65536")
        }
        await transport.shutdown()
    }

    @Test func aTamperedBlockIsRejectedAndNothingIsInstalled() async throws {
        let fixture = try Fixture()
        let disk = try fixture.disk("v1.raw", size: 8 << 20, regions: [(0, 3 << 20, 1)])
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        let server = try TestServer(root: fixture.repo)
        defer { server.stop() }
        server.behavior = .corruptsPacks
        let transport = HTTPTransport(baseURL: server.url)
        let store = fixture.file("store")
        let puller = try fixture.client(transport, store: store)
        await #expect {
            _ = try await puller.pull(name: "debian", version: "1")
        } throws: { error in
            guard case let ImageSyncError.corruptData(message) = error else { return false }
            return message.contains("does not match its signed hash")
        }
        #expect(ImageStore(root: store).installed().isEmpty)
        // An honest server afterwards: the pull completes, keeping what was verified.
        server.behavior = .honest
        let result = try await puller.pull(name: "debian", version: "1")
        await transport.shutdown()
        #expect(result.blocksResumed > 0)
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), disk))
    }

    @Test func metadataSignedByAnUnknownKeyIsRejected() async throws {
        let fixture = try Fixture()
        let puller = try await Self.pulled(fixture)
        let state = try fixture.publisher.state()
        let forged = TimestampMetadata(version: state.timestamp.version + 1, expires: Date() + 86400, meta: state.timestamp.meta)
        try Envelope.sign(forged, with: [SigningKey()]).write(to: metadata(fixture, RepositoryLayout.timestamp))
        await Self.expectUntrusted("timestamp", containing: "unknown or revoked key") {
            _ = try await puller.repository.refresh()
        }
    }

    @Test func metadataSignedByARevokedKeyIsRejected() async throws {
        let fixture = try Fixture()
        let puller = try await Self.pulled(fixture)
        let stolen = try KeyStore(directory: fixture.keys).load(.targets)
        _ = try fixture.publisher.rotateKey(.targets)
        // The client follows the rotation.
        _ = try await puller.repository.refresh()
        #expect(puller.repository.root.version == 2)
        // Whoever holds the old targets key forges a targets file and the metadata pinning it.
        let state = try fixture.publisher.state()
        var targets = state.targets
        targets.version += 1
        let forged = try Envelope.sign(targets, with: [stolen])
        try forged.write(to: metadata(fixture, RepositoryLayout.targets(targets.version)))
        let snapshot = SnapshotMetadata(version: state.snapshot.version + 1, expires: Date() + 86400,
                                        meta: ["targets.json": MetaFile(version: targets.version, length: forged.count, sha256: .of(forged))])
        let snapshotData = try Envelope.sign(snapshot, with: [KeyStore(directory: fixture.keys).load(.snapshot)])
        try snapshotData.write(to: metadata(fixture, RepositoryLayout.snapshot(snapshot.version)))
        let timestamp = TimestampMetadata(version: state.timestamp.version + 1, expires: Date() + 86400,
                                          meta: ["snapshot.json": MetaFile(version: snapshot.version, length: snapshotData.count, sha256: .of(snapshotData))])
        try Envelope.sign(timestamp, with: [KeyStore(directory: fixture.keys).load(.timestamp)]).write(to: metadata(fixture, RepositoryLayout.timestamp))
        await Self.expectUntrusted("targets", containing: "unknown or revoked key") {
            _ = try await puller.repository.refresh()
        }
    }

    @Test func rootRotationIsFollowedAndAnUnendorsedRootIsRejected() async throws {
        let fixture = try Fixture()
        let puller = try await Self.pulled(fixture)
        let oldRoot = try KeyStore(directory: fixture.keys).load(.root)
        _ = try fixture.publisher.rotateKey(.root)
        _ = try fixture.publisher.rotateKey(.root)
        try Self.publishV2(fixture)
        // A client pinned to root 1 walks 1 → 2 → 3.
        let result = try await puller.pull(name: "debian", version: "2")
        #expect(puller.repository.root.version == 3)
        #expect(result.bytesFetched > 0)
        // Root 4 signed only by the key retired two rotations ago.
        var root = puller.repository.root
        root.version = 4
        try Envelope.sign(root, with: [oldRoot]).write(to: metadata(fixture, RepositoryLayout.root(4)))
        await Self.expectUntrusted("root", containing: "unknown or revoked key") {
            _ = try await puller.repository.refresh()
        }
        // The client's trust survives a restart at version 3, not 1.
        let restarted = try fixture.client(fixture.local(), store: fixture.file("store"))
        #expect(restarted.repository.root.version == 3)
    }

    @Test func aServerThatTricklesIsAbandoned() async throws {
        let fixture = try Fixture()
        let disk = try fixture.disk("v1.raw", size: 8 << 20, regions: [(0, 1 << 20, 1)])
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        let server = try TestServer(root: fixture.repo)
        defer { server.stop() }
        server.behavior = .trickles(interval: .milliseconds(100))
        var limits = TransferLimits()
        limits.grace = 1
        // The read timeout stays far away, so that on a loaded machine only the rate can end
        // the transfer: one byte every 100 ms is always far below 1000 bytes per second.
        limits.readTimeout = 60
        limits.minimumBytesPerSecond = 1000
        let transport = HTTPTransport(baseURL: server.url, limits: limits)
        let puller = try fixture.client(transport, store: fixture.file("store"))
        let error = await #expect(throws: ImageSyncError.self) {
            _ = try await puller.pull(name: "debian", version: "1")
        }
        await transport.shutdown()
        if case .tooSlow = error {} else { Issue.record("expected tooSlow, got \(String(describing: error))") }
        // The trickle sent far less than the metadata it was asked for before it was dropped.
        #expect(server.bytesSent < 600)
    }
}
