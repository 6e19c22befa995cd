import AsyncHTTPClient
import Crypto
import Foundation
import HearthCenter
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOFoundationCompat
import NIOSSL
import SwiftASN1
import Testing
import X509

/// Which database a test's Center runs on; every storage test runs on both.
enum Backend: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// A PostgreSQL server the tests start once on loopback (initdb into a temporary folder, run as
/// the `postgres` user when the tests run as root), with one fresh database per test.
actor PostgresServer {
    static let shared = PostgresServer()

    private var starting: Task<Int, any Error>?
    private var process: Process?
    private var counter = 0

    /// A new empty database's URL.
    func newDatabase() async throws -> String {
        let port = try await start()
        counter += 1
        let name = "hearth_test_\(getpid())_\(counter)"
        // Right after start the server may still refuse new databases for a moment.
        for attempt in 1...20 {
            do {
                try await Self.run(["createdb", "-h", "127.0.0.1", "-p", "\(port)", "-U", "hearth", name])
                break
            } catch where attempt < 20 {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        return "postgres://hearth@127.0.0.1:\(port)/\(name)"
    }

    /// Starts the server once, however many tests ask at the same time.
    private func start() async throws -> Int {
        if let starting { return try await starting.value }
        let task = Task { try await self.launch() }
        starting = task
        return try await task.value
    }

    private func launch() async throws -> Int {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-pg-\(getpid())")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if getuid() == 0 { try await Self.run(["chown", "postgres:postgres", folder.path], direct: true) }
        try await Self.run(["initdb", "-D", folder.appendingPathComponent("data").path, "-U", "hearth", "-A", "trust", "--no-sync"])
        let port = Self.freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: getuid() == 0 ? "/usr/sbin/runuser" : Self.binary("postgres"))
        let arguments = ["-D", folder.appendingPathComponent("data").path, "-h", "127.0.0.1", "-p", "\(port)",
                         "-k", folder.path, "-c", "fsync=off", "-c", "max_connections=200"]
        server.arguments = getuid() == 0 ? ["-u", "postgres", "--", Self.binary("postgres")] + arguments : arguments
        server.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        server.standardError = try FileHandle(forWritingTo: {
            let log = folder.appendingPathComponent("postgres.log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            return log
        }())
        try server.run()
        process = server
        // Ready when it accepts a connection.
        for _ in 0..<100 {
            if (try? await Self.run(["pg_isready", "-h", "127.0.0.1", "-p", "\(port)", "-q"])) != nil {
                atexit { PostgresServer.stopAtExit() }
                PostgresServer.pid = server.processIdentifier
                PostgresServer.folder = folder.path
                return port
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        server.terminate()
        throw HarnessError("PostgreSQL did not start; see \(folder.path)/postgres.log")
    }

    nonisolated(unsafe) static var pid: Int32 = 0
    nonisolated(unsafe) static var folder: String = ""

    /// Stops the server at once (SIGQUIT: no checkpoint) and removes its folder once it has
    /// exited. The signal goes to the postmaster itself, whose PID is the first line of
    /// `postmaster.pid`: run as root, `pid` is runuser's, which does not pass SIGQUIT on, and a
    /// server whose folder was removed under it outlived the tests.
    static func stopAtExit() {
        guard pid > 0 else { return }
        let postmaster = (try? String(contentsOfFile: "\(folder)/data/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first.flatMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
        for target in [postmaster, pid].compactMap({ $0 }) { kill(target, SIGQUIT) }
        if let postmaster { for _ in 0..<250 where kill(postmaster, 0) == 0 { usleep(20_000) } }
        try? FileManager.default.removeItem(atPath: folder)
    }

    static func binary(_ name: String) -> String {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: >) {
            let path = "/usr/lib/postgresql/\(version)/bin/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return name
    }

    /// Runs a PostgreSQL tool (as the postgres user when root) and waits for it.
    static func run(_ command: [String], direct: Bool = false) async throws {
        var arguments = command
        if !direct { arguments[0] = binary(arguments[0]) }
        if getuid() == 0 && !direct { arguments = ["/usr/sbin/runuser", "-u", "postgres", "--"] + arguments }
        let executable = URL(fileURLWithPath: direct ? "/usr/bin/env" : arguments[0])
        let (status, _, errors) = try await runProcess(executable, direct ? arguments : Array(arguments.dropFirst()))
        guard status == 0 else { throw HarnessError("\(command.joined(separator: " ")) failed (\(status)): \(errors.suffix(500))") }
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An answer from the Center: status and the JSON body.
struct Answer {
    let status: Int
    let body: Data
    var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }
    var array: [[String: Any]] { json as? [[String: Any]] ?? [] }
    var errorMessage: String { (object["error"] as? [String: Any])?["message"] as? String ?? "" }
}

/// A device's key and, once enrolled, its certificate.
struct DeviceIdentity {
    let key = P256.Signing.PrivateKey()
    var certificatePEM: String?

    func csr(name: String = "laptop") throws -> String {
        let privateKey = Certificate.PrivateKey(key)
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(name) }, privateKey: privateKey,
            attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256)
        return try request.serializeAsPEM().pemString
    }
}

/// A real Center on loopback, its data in a temporary folder, and HTTPS clients that trust its CA.
final class CenterHarness: @unchecked Sendable {
    let backend: Backend
    let folder: URL
    let running: RunningCenter
    let ownerPassword: String
    let client: HTTPClient
    var center: Center { running.center }
    var base: String { "https://127.0.0.1:\(running.port)" }
    var caPEM: String { running.center.ca.pem }

    /// Starts a Center; the owner's one-time password is replaced by `owner-password-1`.
    init(_ backend: Backend, now: @escaping @Sendable () -> Date = { Date() }) async throws {
        self.backend = backend
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-center-\(UUID().uuidString.prefix(8))")
        var configuration = CenterConfiguration(dataDirectory: folder)
        configuration.port = 0
        configuration.passwordCost = 4
        configuration.now = now
        if backend == .postgres { configuration.database = try await PostgresServer.shared.newDatabase() }
        var logger = Logger(label: "test.center")
        logger.logLevel = .warning
        let (center, first) = try await Center.prepare(configuration, logger: logger)
        running = try await center.start()
        ownerPassword = try #require(first.ownerPassword)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(center.ca.pem.utf8), format: .pem)])
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
    }

    private let extraClients = NIOLockedValueBox<[HTTPClient]>([])

    func stop() async {
        for client in extraClients.withLockedValue({ $0 }) { try? await client.shutdown() }
        try? await client.shutdown()
        await running.shutdown()
        try? FileManager.default.removeItem(at: folder)
    }

    /// Runs `body` with a fresh Center and stops it afterwards, whether `body` throws or not.
    static func with(_ backend: Backend, now: @escaping @Sendable () -> Date = { Date() },
                     _ body: (CenterHarness) async throws -> Void) async throws {
        let harness = try await CenterHarness(backend, now: now)
        do {
            try await body(harness)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    /// Logs the owner in, replacing the one-time password; returns a session token.
    func ownerToken() async throws -> String {
        let first = try await call(.POST, "/api/v1/session", json: ["username": "owner", "password": ownerPassword])
        let token = try #require(first.object["token"] as? String)
        let changed = try await call(.POST, "/api/v1/me/password", json: ["current": ownerPassword, "new": "owner-password-1"], token: token)
        #expect(changed.status == 204)
        return try await login("owner", "owner-password-1")
    }

    func login(_ username: String, _ password: String) async throws -> String {
        let answer = try await call(.POST, "/api/v1/session", json: ["username": username, "password": password])
        guard answer.status == 201, let token = answer.object["token"] as? String else {
            throw HarnessError("login of \(username) failed: \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
        }
        return token
    }

    /// An admin with `role` and a changed password, logged in.
    func admin(_ role: String, by owner: String) async throws -> String {
        let name = "\(role)-\(UUID().uuidString.prefix(6))"
        let made = try await call(.POST, "/api/v1/admins", json: ["username": name, "password": "first-password-1", "role": role], token: owner)
        guard made.status == 201 else { throw HarnessError("creating \(name): \(made.status) \(made.errorMessage)") }
        let first = try await login(name, "first-password-1")
        _ = try await call(.POST, "/api/v1/me/password", json: ["current": "first-password-1", "new": "second-password-2"], token: first)
        return try await login(name, "second-password-2")
    }

    func call(_ method: HTTPMethod, _ path: String, json: Any? = nil, raw: String? = nil, token: String? = nil,
              contentType: String = "application/json", client: HTTPClient? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
            request.headers.add(name: "Content-Type", value: contentType)
        } else if let raw {
            request.body = .bytes(ByteBuffer(string: raw))
            request.headers.add(name: "Content-Type", value: contentType)
        }
        let response = try await (client ?? self.client).execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return Answer(status: Int(response.status.code), body: Data(buffer: body))
    }

    /// An HTTPS client presenting the device's certificate.
    func deviceClient(_ identity: DeviceIdentity) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(caPEM.utf8), format: .pem)])
        tls.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(try #require(identity.certificatePEM).utf8), format: .pem))]
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.key.pemRepresentation.utf8), format: .pem))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        extraClients.withLockedValue { $0.append(client) }
        return client
    }

    /// Enrolls a new device with a fresh token; returns its identity (with certificate) and id.
    func enrollDevice(owner: String, user: String? = nil) async throws -> (DeviceIdentity, String) {
        var body: [String: Any] = ["note": "test"]
        if let user { body["user"] = user }
        let token = try await call(.POST, "/api/v1/enrollment-tokens", json: body, token: owner)
        let secret = try #require(token.object["secret"] as? String)
        var identity = DeviceIdentity()
        let enrolled = try await call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": try identity.csr(), "name": "laptop-1"])
        guard enrolled.status == 201 else { throw HarnessError("enroll: \(enrolled.status) \(enrolled.errorMessage)") }
        identity.certificatePEM = enrolled.object["certificate"] as? String
        return (identity, try #require(enrolled.object["deviceID"] as? String))
    }

    nonisolated(unsafe) static let status: [String: Any] = [
        "engineVersion": "0.1.0",
        "inventory": ["cpuModel": "QEMU Virtual CPU", "cpus": 2, "memoryBytes": 8 << 30, "diskBytes": 256 << 30, "virtualization": "tcg"],
        "vms": [["name": "work", "state": "running", "image": "debian@1"]],
        "security": "unmeasured",
    ]
}

/// Runs a program to its end without holding one of Swift's few cooperative threads while it
/// runs: the Center the program talks to needs them to answer.
func runProcess(_ executable: URL, _ arguments: [String], input: String = "", environment: [String: String] = [:],
                directory: URL? = nil) async throws -> (Int32, String, String) {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do {
                let process = Process()
                process.executableURL = executable
                process.arguments = arguments
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                if let directory { process.currentDirectoryURL = directory }
                let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
                process.standardInput = stdin
                process.standardOutput = stdout
                process.standardError = stderr
                try process.run()
                stdin.fileHandleForWriting.write(Data(input.utf8))
                try stdin.fileHandleForWriting.close()
                // Standard error is drained beside standard output, so neither pipe fills up.
                let errors = NIOLockedValueBox(Data())
                let drained = DispatchSemaphore(value: 0)
                DispatchQueue.global().async {
                    errors.withLockedValue { $0 = stderr.fileHandleForReading.readDataToEndOfFile() }
                    drained.signal()
                }
                let out = stdout.fileHandleForReading.readDataToEndOfFile()
                drained.wait()
                process.waitUntilExit()
                continuation.resume(returning: (process.terminationStatus, String(decoding: out, as: UTF8.self),
                                                String(decoding: errors.withLockedValue { $0 }, as: UTF8.self)))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}
