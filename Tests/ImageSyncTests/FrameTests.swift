import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import ImageSync

/// Blocks new in one publish are compressed together, in frames of several blocks: fewer bytes
/// to move, and still every block checked on its own, fetched alone when another version needs
/// only it, and resumed after a cut without re-downloading more than 1 MiB.
@Suite struct FrameTests {
    /// 6 MiB of text (compressible) and 1 MiB of noise (not), in a 16 MiB disk.
    static func textDisk(_ fixture: Fixture) throws -> URL {
        let text = try fixture.disk("text.raw", size: 16 << 20, regions: [(0, 6 << 20, 1)], compressible: true)
        return try fixture.disk("v1.raw", size: 16 << 20, regions: [(8 << 20, 1 << 20, 2)], base: text)
    }

    static func index(_ fixture: Fixture, version: String = "1") throws -> BlockIndex {
        let target = try #require(try fixture.publisher.versions().first { $0.custom.version == version })
        return try fixture.publisher.loadIndex(target)
    }

    @Test func blocksNewInAPublishShareFramesAndPullWhole() async throws {
        let fixture = try Fixture()
        let disk = try Self.textDisk(fixture)
        let published = try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        #expect(published.newBlocks == 112)
        let index = try Self.index(fixture)
        let text = index.entries.filter { $0.block < 96 }
        let noise = index.entries.filter { $0.block >= 128 }
        #expect(text.count == 96 && noise.count == 16)
        // The text travels in frames of several blocks, each within the limits a client enforces.
        #expect(text.allSatisfy { $0.frameBlocks > 1 && $0.compressed })
        #expect(text.allSatisfy { $0.storedLength <= BlockIndex.maximumFrameStored })
        #expect(Set(text.map(\.packOffset)).count < 12)
        // Noise does not shrink: wherever it went, it costs what it weighs, not more.
        let textFrames = Set(text.map(\.packOffset))
        let textBytes = index.entries.filter { textFrames.contains($0.packOffset) }
            .reduce(into: [UInt64: UInt64]()) { $0[$1.packOffset] = UInt64($1.storedLength) }.values.reduce(0, +)
        let noiseOnly = index.storedBytes - textBytes
        let noiseInTextFrames = UInt64(noise.filter { textFrames.contains($0.packOffset) }.count) * 65536
        #expect(noiseOnly + noiseInTextFrames <= 16 * 65536 + 64)

        // Together beats alone: the same text compressed block by block at the same level.
        let data = try Data(contentsOf: disk)
        var alone = 0
        var scratch: [UInt8] = []
        for block in 0..<96 {
            let bytes = Array(data[(block << 16)..<((block + 1) << 16)])
            alone += bytes.withUnsafeBytes { Zstd.compress($0, level: PublishOptions().compressionLevel, into: &scratch) } ?? 65536
        }
        let together = textBytes - noiseInTextFrames
        #expect(together * 10 < UInt64(alone) * 9, "frames \(together) B, blocks alone \(alone) B")

        let store = ImageStore(root: fixture.file("store"))
        let result = try await fixture.client(fixture.local(), store: store.root).pull(name: "debian", version: "1")
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), disk))
        #expect(result.bytesFetched == index.storedBytes)
        #expect(try store.verify(name: "debian", version: "1").intact)
    }

    @Test func aLoneBlockIsAFrameOfOneAndPullsWhole() async throws {
        let fixture = try Fixture()
        let disk = try fixture.disk("v1.raw", size: 4 << 20, regions: [(1 << 20, 65536, 5)], compressible: true)
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        let entry = try #require(try Self.index(fixture).entries.first)
        #expect(entry.block == 16 && entry.frameBlocks == 1 && entry.compressed && entry.storedLength < 65536 / 2)
        let result = try await fixture.client(fixture.local(), store: fixture.file("store")).pull(name: "debian", version: "1")
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), disk))
        #expect(result.bytesFetched == UInt64(entry.storedLength))
    }

    @Test func aBlockFromTheMiddleOfAFrameComesWithItsFrame() async throws {
        let fixture = try Fixture()
        let disk = try Self.textDisk(fixture)
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        let v1 = try Self.index(fixture)
        // Another image holding only v1's block 37, which sits inside a frame, not at its start.
        let shared = try #require(v1.entries.first { $0.block == 37 })
        #expect(shared.frameSlot > 0)
        let data = try Data(contentsOf: disk)
        let other = fixture.file("other.raw")
        _ = FileManager.default.createFile(atPath: other.path, contents: nil)
        let handle = try FileHandle(forWritingTo: other)
        try handle.truncate(atOffset: 4 << 20)
        try handle.seek(toOffset: 2 << 20)
        try handle.write(contentsOf: data[(37 << 16)..<(38 << 16)])
        try handle.close()
        let published = try fixture.publisher.publish(disk: other.path, name: "tiny", version: "1")
        #expect(published.newBlocks == 0)

        // A machine without v1 fetches the whole frame for that one block, as `diff` says.
        let store = ImageStore(root: fixture.file("store"))
        let puller = try fixture.client(fixture.local(), store: store.root)
        let target = try #require(try fixture.publisher.versions().first { $0.custom.name == "tiny" })
        let estimate = DeltaEstimate.estimate(target: target, index: try fixture.publisher.loadIndex(target), held: [])
        let result = try await puller.pull(name: "tiny", version: "1")
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), other))
        #expect(result.bytesFetched == UInt64(shared.storedLength))
        #expect(estimate.bytesToFetch == result.bytesFetched)
    }

    @Test func aCutConnectionInsideFramesResumesReDownloadingAtMostOneMiB() async throws {
        let fixture = try Fixture()
        let disk = try fixture.disk("v1.raw", size: 40 << 20, regions: [(0, 32 << 20, 3)], compressible: true)
        try fixture.publisher.publish(disk: disk.path, name: "debian", version: "1")
        let total = try Self.index(fixture).storedBytes
        #expect(total > 6 << 20)
        let server = try TestServer(root: fixture.repo)
        defer { server.stop() }
        // Cut in the middle of a frame.
        server.behavior = .cutsRangesAfter(bytes: 3 << 20 + 300_000)
        let transport = HTTPTransport(baseURL: server.url)
        let store = fixture.file("store")
        let puller = try fixture.client(transport, store: store)
        let received = NIOLockedValueBox<UInt64>(0)
        puller.progress = { status in received.withLockedValue { $0 = max($0, status.bytesFetched) } }
        await #expect(throws: ImageSyncError.self) { _ = try await puller.pull(name: "debian", version: "1") }
        let beforeCut = received.withLockedValue { $0 }
        server.behavior = .honest
        let result = try await puller.pull(name: "debian", version: "1")
        await transport.shutdown()
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), disk))
        // What the first pull had received (the transport may drop what was still in flight when
        // the connection broke) is kept, but for at most 1 MiB.
        let refetched = beforeCut + result.bytesFetched - total
        #expect(refetched <= 1 << 20, "re-downloaded \(refetched) bytes of \(beforeCut) received before the cut")
        #expect((result.blocksResumed > 0) == (result.bytesFetched < total))
    }

    @Test func aTamperedFrameIsRejectedAndNothingIsInstalled() async throws {
        let fixture = try Fixture()
        let disk = try Self.textDisk(fixture)
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
        server.behavior = .honest
        let result = try await puller.pull(name: "debian", version: "1")
        await transport.shutdown()
        #expect(try Fixture.same(URL(fileURLWithPath: result.image), disk))
    }

    /// An index naming impossible frames is refused before anything is fetched; an index of
    /// the first format (every block its own frame) still reads.
    @Test func frameFieldsOfAnIndexAreChecked() throws {
        let digest = Digest.of([UInt8](repeating: 1, count: 65536))
        func index(_ entry: BlockIndex.Entry) -> BlockIndex {
            BlockIndex(virtualSize: 1 << 30, blockSize: 65536, packs: [digest], entries: [entry])
        }
        func entry(frameBlocks: UInt8, slot: UInt8, compressed: Bool = true, length: UInt32 = 65536) -> BlockIndex.Entry {
            .init(block: 3, length: length, digest: digest, pack: 0, packOffset: 0, storedLength: 1000,
                  compressed: compressed, frameBlocks: frameBlocks, frameSlot: slot)
        }
        #expect(try BlockIndex(decoding: index(entry(frameBlocks: 64, slot: 63)).encoded()) == index(entry(frameBlocks: 64, slot: 63)))
        for bad in [entry(frameBlocks: 65, slot: 0), entry(frameBlocks: 4, slot: 4), entry(frameBlocks: 0, slot: 0),
                    entry(frameBlocks: 2, slot: 0, compressed: false)] {
            #expect {
                _ = try BlockIndex(decoding: index(bad).encoded())
            } throws: { error in
                guard case let ImageSyncError.corruptData(message) = error else { return false }
                return message.contains("block 3")
            }
        }

        let single = index(entry(frameBlocks: 1, slot: 0))
        var raw = try #require(Zstd.decompress(single.encoded(), limit: 1 << 20))
        raw.replaceSubrange(0..<8, with: Array("HRTHIDX1".utf8))
        #expect(try BlockIndex(decoding: Zstd.compressWhole(raw, level: 3)) == single)
        // A format from a later Hearth is named as such, not as damage.
        raw.replaceSubrange(0..<8, with: Array("HRTHIDX3".utf8))
        #expect {
            _ = try BlockIndex(decoding: Zstd.compressWhole(raw, level: 3))
        } throws: { error in
            guard case let ImageSyncError.corruptData(message) = error else { return false }
            return message.contains("newer than this Hearth reads") && message.contains("update Hearth")
        }
    }
}
