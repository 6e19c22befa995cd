import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import ImageSync

/// Servers and disks that misbehave: a clear error or a safe retry, never a half-written image
/// visible as the new version.
@Suite struct BadInputTests {
    static func published(_ fixture: Fixture, size: UInt64 = 16 << 20, data: Int = 10 << 20) throws -> URL {
        let disk = try fixture.disk("v1.raw", size: size, regions: [(0, data, 1)])
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        return disk
    }

    static func notInstalled(_ store: URL) -> Bool {
        !FileManager.default.fileExists(atPath: ImageStore(root: store).directory(name: "debian", version: "1").path)
    }

    @Test func aServerIgnoringRangesGetsAClearError() async throws {
        let fixture = try Fixture()
        _ = try Self.published(fixture)
        let server = try TestServer(root: fixture.repo)
        defer { server.stop() }
        server.behavior = .ignoresRanges
        let transport = HTTPTransport(baseURL: server.url)
        let store = fixture.file("store")
        await #expect {
            _ = try await fixture.client(transport, store: store).pull(name: "debian", version: "1")
        } throws: { error in
            guard case let ImageSyncError.badResponse(_, reason) = error else { return false }
            return reason.contains("answered 200") && reason.contains("byte ranges")
        }
        await transport.shutdown()
        #expect(Self.notInstalled(store))
    }

    @Test func aCutConnectionResumesReDownloadingAtMostOneMiB() async throws {
        let fixture = try Fixture()
        let disk = try Self.published(fixture)
        let server = try TestServer(root: fixture.repo)
        defer { server.stop() }
        // Declares the whole range, sends 3 MiB and a bit, and hangs up: a wrong
        // Content-Length and a cut connection in one.
        let cut = 3 << 20 + 12345
        server.behavior = .cutsRangesAfter(bytes: cut)
        let transport = HTTPTransport(baseURL: server.url)
        let store = fixture.file("store")
        let puller = try fixture.client(transport, store: store)
        // What the client received before the cut, as it reported it.
        let received = NIOLockedValueBox<UInt64>(0)
        puller.progress = { status in received.withLockedValue { $0 = max($0, status.bytesFetched) } }
        await #expect {
            _ = try await puller.pull(name: "debian", version: "1")
        } throws: { error in
            guard case let ImageSyncError.transport(_, reason) = error else { return false }
            return reason.contains("ended after")
        }
        #expect(Self.notInstalled(store))
        let beforeCut = received.withLockedValue { $0 }
        #expect(beforeCut > 0)
        server.behavior = .honest
        let result = try await puller.pull(name: "debian", version: "1")
        await transport.shutdown()
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), disk))
        let total = UInt64(try fixture.publisher.versions()[0].custom.storedBytes)
        let refetched = beforeCut + result.bytesFetched - total
        #expect(refetched <= 1 << 20, "re-downloaded \(refetched) bytes")
        #expect(result.blocksResumed >= Int(beforeCut / (64 << 10)) - 1)
    }

    @Test func corruptPacksInAFolderRepositoryAreNamed() async throws {
        let fixture = try Fixture()
        _ = try Self.published(fixture)
        let pack = try FileManager.default.contentsOfDirectory(atPath: fixture.repo.appendingPathComponent("packs").path).first { $0.hasSuffix(".pack") }!
        let url = fixture.repo.appendingPathComponent("packs").appendingPathComponent(pack)
        var data = try Data(contentsOf: url)
        data[5 << 20] ^= 0x01
        try data.write(to: url)
        let store = fixture.file("store")
        await #expect {
            _ = try await fixture.client(fixture.local(), store: store).pull(name: "debian", version: "1")
        } throws: { error in
            guard case let ImageSyncError.corruptData(message) = error else { return false }
            return message.contains(pack)
        }
        #expect(Self.notInstalled(store))
    }

    @Test func truncatedOrOversizedMetadataIsRefused() async throws {
        let fixture = try Fixture()
        _ = try Self.published(fixture)
        let server = try TestServer(root: fixture.repo)
        defer { server.stop() }
        let transport = HTTPTransport(baseURL: server.url)
        let puller = try fixture.client(transport, store: fixture.file("store"))
        let timestamp = try Data(contentsOf: fixture.repo.appendingPathComponent(RepositoryLayout.timestamp))
        server.override(RepositoryLayout.timestamp, with: timestamp.prefix(timestamp.count / 2))
        await #expect(throws: ImageSyncError.untrusted(role: "timestamp", reason: "not a signed metadata envelope")) {
            _ = try await puller.pull(name: "debian", version: "1")
        }
        server.override(RepositoryLayout.timestamp, with: timestamp + Data(repeating: 0x20, count: 100 << 10))
        await #expect {
            _ = try await puller.pull(name: "debian", version: "1")
        } throws: { error in
            guard case let ImageSyncError.badResponse(_, reason) = error else { return false }
            return reason.contains("more than the 65536")
        }
        await transport.shutdown()
    }

    @Test func twoPullsIntoOneFolderDoNotMix() async throws {
        let fixture = try Fixture()
        _ = try Self.published(fixture)
        let store = fixture.file("store")
        let store0 = ImageStore(root: store)
        try store0.makeDirectories(name: "debian")
        // Another pull of the same version holds the lock.
        let other = try FileLock(path: store0.lockPath(name: "debian", version: "1"), busy: "")
        await #expect {
            _ = try await fixture.client(fixture.local(), store: store).pull(name: "debian", version: "1")
        } throws: { error in
            guard case let ImageSyncError.busy(message) = error else { return false }
            return message.contains("another pull of debian 1")
        }
        withExtendedLifetime(other) {}
        _ = consume other
        let result = try await fixture.client(fixture.local(), store: store).pull(name: "debian", version: "1")
        #expect(!result.alreadyPresent)
    }

    @Test func aFullDiskIsNamedAndThePullResumesOnceThereIsRoom() async throws {
        let fixture = try Fixture()
        let disk = try Self.published(fixture)
        let store = fixture.file("store")
        try FileManager.default.createDirectory(at: store, withIntermediateDirectories: true)
        // A 4 MiB filesystem for a version with 10 MiB of data.
        try #require(Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", store.path]) == 0, "tests run as root and may mount tmpfs")
        defer { _ = Self.run("/bin/umount", ["-l", store.path]) }
        await #expect {
            _ = try await fixture.client(fixture.local(), store: store).pull(name: "debian", version: "1")
        } throws: { error in
            guard case ImageSyncError.diskFull = error else { return false }
            return "\(error)".contains("free some space")
        }
        #expect(Self.notInstalled(store))
        try #require(Self.run("/bin/mount", ["-o", "remount,size=64m", store.path]) == 0)
        let result = try await fixture.client(fixture.local(), store: store).pull(name: "debian", version: "1")
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), disk))
    }

    @Test func keysReadableByOthersAreRefused() throws {
        let fixture = try Fixture()
        let key = fixture.keys.appendingPathComponent("targets.key").path
        chmod(key, 0o644)
        #expect {
            _ = try KeyStore(directory: fixture.keys).load(.targets)
        } throws: { error in
            "\(error)".contains("chmod 600")
        }
        let disk = try fixture.disk("v1.raw", size: 1 << 20, regions: [(0, 4096, 1)])
        #expect(throws: ImageSyncError.self) { try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1") }
    }

    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
