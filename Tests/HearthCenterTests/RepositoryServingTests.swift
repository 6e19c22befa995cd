import Foundation
import HearthCenter
import ImageSync
import NIOSSL
import Testing

/// The Center serves its image repository over HTTPS to enrolled devices, who pull by delta
/// through it like from any server: Range requests, every block verified.
@Suite struct RepositoryServingTests {
    @Test func anEnrolledDevicePullsFromTheCenterAndAStrangerIsRefused() async throws {
        try await CenterHarness.with(.sqlite) { harness in
            // A repository in the Center's data folder, with one version of a 4 MiB disk.
            let repository = harness.folder.appendingPathComponent("repository")
            let keys = harness.folder.appendingPathComponent("keys")
            let publisher = Publisher(repository: repository, keys: KeyStore(directory: keys))
            let anchor = try publisher.initialize()
            let disk = harness.folder.appendingPathComponent("v1.raw")
            var bytes = [UInt8](repeating: 0, count: 4 << 20)
            var state: UInt64 = 42
            for index in 0..<(1 << 20) { state = state &* 6364136223846793005 &+ 1442695040888963407; bytes[index] = UInt8(truncatingIfNeeded: state >> 33) }
            try Data(bytes).write(to: disk)
            try publisher.publish(disk: disk.path, name: "debian", version: "1")

            let owner = try await harness.ownerToken()
            let (device, _) = try await harness.enrollDevice(owner: owner)
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(harness.caPEM.utf8), format: .pem)])
            tls.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(try #require(device.certificatePEM).utf8), format: .pem))]
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(device.key.pemRepresentation.utf8), format: .pem))

            let store = harness.folder.appendingPathComponent("store")
            let transport = HTTPTransport(baseURL: "\(harness.base)/repository", tls: tls)
            let trusted = try TrustedRepository(transport: transport, pinnedRoot: anchor,
                                                stateDirectory: ImageStore(root: store).trustDirectory(anchor: try Data(contentsOf: anchor)))
            let result = try await Puller(repository: trusted, store: ImageStore(root: store)).pull(name: "debian", version: "1")
            await transport.shutdown()
            #expect(try Data(contentsOf: URL(fileURLWithPath: result.image)) == Data(bytes))
            #expect(result.bytesFetched > 0 && result.requests >= 1)

            // The same through the command line, as an admin or a script on the device would.
            let files = harness.folder.appendingPathComponent("device")
            try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
            try harness.caPEM.write(to: files.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
            try try #require(device.certificatePEM).write(to: files.appendingPathComponent("device.pem"), atomically: true, encoding: .utf8)
            FileManager.default.createFile(atPath: files.appendingPathComponent("device.key").path, contents: Data(device.key.pemRepresentation.utf8),
                                           attributes: [.posixPermissions: 0o600])
            let cli = try await AdminCLITests.run([
                "image", "pull", "debian", "--version", "1", "--repo", "\(harness.base)/repository", "--trust", anchor.path,
                "--ca", files.appendingPathComponent("ca.pem").path, "--cert", files.appendingPathComponent("device.pem").path,
                "--key", files.appendingPathComponent("device.key").path, "--into", harness.folder.appendingPathComponent("cli-store").path,
            ], environment: [:])
            #expect(cli.0 == 0, "\(cli.2)")
            let pulled = harness.folder.appendingPathComponent("cli-store/debian/1/system.img")
            #expect(try Data(contentsOf: pulled) == Data(bytes))

            // Without a device certificate: refused, with the reason.
            var anonymousTLS = TLSConfiguration.makeClientConfiguration()
            anonymousTLS.trustRoots = tls.trustRoots
            let anonymous = HTTPTransport(baseURL: "\(harness.base)/repository", tls: anonymousTLS)
            let refused = try TrustedRepository(transport: anonymous, pinnedRoot: anchor,
                                                stateDirectory: harness.folder.appendingPathComponent("other-trust"))
            await #expect(throws: ImageSyncError.self) { try await refused.refresh() }
            await anonymous.shutdown()
            let answer = try await harness.call(.GET, "/repository/metadata/timestamp.json")
            #expect(answer.status == 401 && answer.errorMessage.contains("client certificate"))
            // An admin may read it too; nothing outside the repository is reachable.
            let asAdmin = try await harness.call(.GET, "/repository/metadata/timestamp.json", token: owner)
            #expect(asAdmin.status == 200, "\(asAdmin.status) \(asAdmin.errorMessage)")
            #expect(try await harness.call(.GET, "/repository/../tls/ca.key", token: owner).status >= 400)
            #expect(try await harness.call(.GET, "/repository/nothing.json", token: owner).status == 404)
        }
    }
}
