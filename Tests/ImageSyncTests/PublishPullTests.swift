import Foundation
import Testing
@testable import ImageSync

/// Publishing and pulling: the image a client assembles is the one published, and a new
/// version costs only what changed.
@Suite struct PublishPullTests {
    static let size: UInt64 = 48 << 20

    /// v1: 12 MiB of data in three places; v2: 2 MiB rewritten and 1 MiB added.
    static func versions(_ fixture: Fixture) throws -> (URL, URL) {
        let v1 = try fixture.disk("v1.raw", size: size, regions: [(0, 4 << 20, 1), (10 << 20, 6 << 20, 2), (40 << 20, 2 << 20, 3)])
        let v2 = try fixture.disk("v2.raw", size: size, regions: [(12 << 20, 2 << 20, 4), (30 << 20, 1 << 20, 5)], base: v1)
        return (v1, v2)
    }

    @Test func aPulledVersionIsTheImagePublished() async throws {
        let fixture = try Fixture()
        let (v1, _) = try Self.versions(fixture)
        let published = try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        #expect(published.info.blocks == 192)
        #expect(published.info.dataBytes == 12 << 20)

        let store = fixture.file("store")
        let result = try await fixture.client(fixture.local(), store: store).pull(name: "debian", version: "1")
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), v1))
        #expect(result.bytesFetched == published.newBytes)
        // Sparse: the holes were not written.
        let attributes = try FileManager.default.attributesOfItem(atPath: result.image)
        #expect((attributes[.size] as? UInt64) == Self.size)
        #expect(ImageStore(root: store).installed().map(\.version) == ["1"])
    }

    @Test func verifyFindsEveryChangedBlockOfAPulledVersion() async throws {
        let fixture = try Fixture()
        let (v1, _) = try Self.versions(fixture)
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        let store = ImageStore(root: fixture.file("store"))
        let result = try await fixture.client(fixture.local(), store: store.root).pull(name: "debian", version: "1")
        let clean = try store.verify(name: "debian", version: "1")
        #expect(clean.intact && clean.blocks == 192)
        #expect(clean.bytesHashed == 12 << 20 && clean.bytesRead == Self.size)

        // One byte flipped in a data block (block 3), one written into a hole (block 400).
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: result.image))
        try handle.seek(toOffset: 3 * 65536 + 17)
        let byte = try #require(handle.readData(ofLength: 1).first)
        try handle.seek(toOffset: 3 * 65536 + 17)
        handle.write(Data([byte ^ 0x40]))
        try handle.seek(toOffset: 400 * 65536 + 5)
        handle.write(Data([1]))
        try handle.close()
        let damaged = try store.verify(name: "debian", version: "1")
        #expect(!damaged.intact)
        #expect(damaged.damagedBlocks == [3, 400])

        #expect(throws: ImageSyncError.self) { try store.verify(name: "debian", version: "9") }
    }

    @Test func aNewVersionCostsOnlyWhatChanged() async throws {
        let fixture = try Fixture()
        let (v1, v2) = try Self.versions(fixture)
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        let second = try fixture.publisher.publish(disk: v2.path, name: "debian", version: "2")
        // 2 MiB rewritten + 1 MiB new, incompressible: 48 new blocks of 64 KiB.
        #expect(second.newBlocks == 48)

        let store = fixture.file("store")
        let puller = try fixture.client(fixture.local(), store: store)
        _ = try await puller.pull(name: "debian", version: "1")
        let result = try await puller.pull(name: "debian", version: "2")
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), v2))
        #expect(result.bytesFetched == second.newBytes)
        #expect(result.blocksFromLocal == 192 + 16 - 48)
        // v1 stays beside v2 (A/B).
        #expect(try Fixture.same(ImageStore(root: store).imagePath(name: "debian", version: "1"), v1))

        let again = try await puller.pull(name: "debian", version: "2")
        #expect(again.alreadyPresent && again.bytesFetched == 0)
    }

    @Test func differentImagesShareTheirCommonBlocks() async throws {
        let fixture = try Fixture()
        let (v1, _) = try Self.versions(fixture)
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        // Another image with v1's first 4 MiB at the same place, and 1 MiB of its own.
        let other = try fixture.disk("other.raw", size: 8 << 20, regions: [(0, 4 << 20, 1), (6 << 20, 1 << 20, 9)])
        let published = try fixture.publisher.publish(disk: other.path, name: "ubuntu", version: "24.04")
        #expect(published.newBlocks == 16)

        let store = fixture.file("store")
        let puller = try fixture.client(fixture.local(), store: store)
        _ = try await puller.pull(name: "debian", version: "1")
        let result = try await puller.pull(name: "ubuntu", version: nil)
        #expect(result.version == "24.04")
        #expect(result.blocksFromLocal == 64)
        #expect(result.bytesFetched == published.newBytes)
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), other))
    }

    @Test func publishedVersionsAreImmutableAndNamesAreChecked() throws {
        let fixture = try Fixture()
        let (v1, _) = try Self.versions(fixture)
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        #expect(throws: ImageSyncError.alreadyPublished(name: "debian", version: "1")) {
            try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        }
        for bad in ["../etc", ".hidden", "a/b", "", String(repeating: "x", count: 65)] {
            #expect(throws: ImageSyncError.self) { try fixture.publisher.publish(disk: v1.path, name: bad, version: "1") }
        }
    }

    @Test func publishReadsEveryDiskFormat() async throws {
        let fixture = try Fixture()
        let (v1, _) = try Self.versions(fixture)
        let qcow2 = fixture.file("v1.qcow2").path
        let convert = Process()
        convert.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        convert.arguments = ["convert", "-f", "raw", "-O", "qcow2", v1.path, qcow2]
        try convert.run()
        convert.waitUntilExit()
        try #require(convert.terminationStatus == 0)
        try fixture.publisher.publish(disk: qcow2, name: "debian", version: "1")
        let result = try await fixture.client(fixture.local(), store: fixture.file("store")).pull(name: "debian", version: "1")
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), v1))
    }

    @Test func diffPredictsWhatThePullMoves() async throws {
        let fixture = try Fixture()
        let (v1, v2) = try Self.versions(fixture)
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        try fixture.publisher.publish(disk: v2.path, name: "debian", version: "2")
        let store = fixture.file("store")
        let puller = try fixture.client(fixture.local(), store: store)
        try await puller.repository.refresh()
        let (_, one) = try await puller.repository.index(for: puller.repository.target(name: "debian", version: "1"))
        let target = try puller.repository.target(name: "debian", version: "2")
        let (_, two) = try await puller.repository.index(for: target)
        let estimate = DeltaEstimate.estimate(target: target, index: two, held: [("1", one)])

        _ = try await puller.pull(name: "debian", version: "1")
        let result = try await puller.pull(name: "debian", version: "2")
        #expect(estimate.bytesToFetch == result.bytesFetched)
        #expect(estimate.requests == result.requests)
        #expect(estimate.blocksReused == result.blocksFromLocal)
        #expect(estimate.bytesToFetch < estimate.fullBytes / 4)
    }

    @Test func overHTTPRequestsAreBatched() async throws {
        let fixture = try Fixture()
        let (v1, v2) = try Self.versions(fixture)
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        try fixture.publisher.publish(disk: v2.path, name: "debian", version: "2")
        let server = try TestServer(root: fixture.repo)
        defer { server.stop() }
        let transport = HTTPTransport(baseURL: server.url)
        let puller = try fixture.client(transport, store: fixture.file("store"))
        let first = try await puller.pull(name: "debian", version: "1")
        let second = try await puller.pull(name: "debian", version: "2")
        await transport.shutdown()
        #expect(try Fixture.same(URL(fileURLWithPath: second.image), v2))
        let packRequests = server.requests.filter { $0.hasPrefix("packs/") }
        #expect(packRequests.count == first.requests + second.requests)
        // At most one request per 8 MiB fetched (and at least one).
        let fetched = first.bytesFetched + second.bytesFetched
        #expect(packRequests.count <= max(1, Int((fetched + (8 << 20) - 1) / (8 << 20))))
    }
}
