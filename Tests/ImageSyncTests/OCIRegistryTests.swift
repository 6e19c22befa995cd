import Foundation
import Testing
@testable import ImageSync

/// A real registry: Debian's `docker-registry` (CNCF distribution), started on loopback.
final class Registry {
    let process = Process()
    let port: Int
    let folder: URL

    init(folder: URL) throws {
        self.folder = folder
        port = Self.freePort()
        let config = folder.appendingPathComponent("config.yml")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("storage"), withIntermediateDirectories: true)
        try """
        version: 0.1
        log:
          level: error
        storage:
          filesystem:
            rootdirectory: \(folder.appendingPathComponent("storage").path)
        http:
          addr: 127.0.0.1:\(port)
        """.write(to: config, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        process.arguments = ["serve", config.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // Ready when it accepts connections.
        for _ in 0..<100 {
            if Self.accepts(port) { return }
            usleep(100_000)
        }
        process.terminate()
        throw ImageSyncError.invalidRequest("docker-registry did not start on port \(port)")
    }

    /// A port the kernel just handed out, so two test runs never pick the same one.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 ? getsockname(fd, pointer, &length) : -1
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    var url: String { "oci+http://127.0.0.1:\(port)/hearth/images" }

    deinit {
        process.terminate()
        process.waitUntilExit()
    }
}

@Suite struct OCIRegistryTests {
    @Test func pushThenPullThroughTheDistributionAPI() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-registry"), "scripts/setup-host test installs docker-registry")
        let fixture = try Fixture()
        let v1 = try fixture.disk("v1.raw", size: 32 << 20, regions: [(0, 6 << 20, 1), (20 << 20, 2 << 20, 2)])
        let v2 = try fixture.disk("v2.raw", size: 32 << 20, regions: [(2 << 20, 3 << 20, 3)], base: v1)
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        let registry = try Registry(folder: fixture.file("registry"))
        let first = try await OCIPusher(repository: fixture.repo, registry: registry.url).push()
        #expect(first.blobsUploaded >= 3)

        let store = fixture.file("store")
        let transport = try OCITransport(url: registry.url)
        let puller = try fixture.client(transport, store: store)
        let one = try await puller.pull(name: "debian", version: "1")
        #expect(try Fixture.same(URL(fileURLWithPath: one.image), v1))

        // v2: only its new pack and index are uploaded, and only the delta is pulled.
        let published = try fixture.publisher.publish(disk: v2.path, name: "debian", version: "2")
        let second = try await OCIPusher(repository: fixture.repo, registry: registry.url).push()
        #expect(second.blobsPresent >= 2)
        #expect(second.bytesUploaded < published.newBytes + (64 << 10))
        let two = try await puller.pull(name: "debian", version: "2")
        await transport.shutdown()
        #expect(try Fixture.same(URL(fileURLWithPath: two.image), v2))
        #expect(two.bytesFetched == published.newBytes)
        #expect(two.requests == 1)
    }

    @Test func aRegistryIsUntrustedLikeAnyServer() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-registry"))
        let fixture = try Fixture()
        let v1 = try fixture.disk("v1.raw", size: 8 << 20, regions: [(0, 1 << 20, 1)])
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        let registry = try Registry(folder: fixture.file("registry"))
        _ = try await OCIPusher(repository: fixture.repo, registry: registry.url).push()
        // Someone with push rights retags "timestamp" to an older, validly signed state after
        // the client has seen the newer one.
        let puller = try fixture.client(try OCITransport(url: registry.url), store: fixture.file("store"))
        _ = try await puller.pull(name: "debian", version: "1")
        let old = try Data(contentsOf: fixture.repo.appendingPathComponent(RepositoryLayout.timestamp))
        _ = try fixture.publisher.refresh()
        _ = try await OCIPusher(repository: fixture.repo, registry: registry.url).push()
        _ = try await puller.repository.refresh()
        try old.write(to: fixture.repo.appendingPathComponent(RepositoryLayout.timestamp))
        _ = try await OCIPusher(repository: fixture.repo, registry: registry.url).push()
        await #expect {
            _ = try await puller.repository.refresh()
        } throws: { error in
            guard case let ImageSyncError.untrusted(role, reason) = error else { return false }
            return role == "timestamp" && reason.contains("rollback")
        }
        await puller.repository.transport.shutdown()
    }
}
