// Check-in throughput and latency of a real Center: enrolled devices, each on its own mutual-TLS
// connection, check in back to back for a fixed time; prints check-ins per second with p50/p99.
// The Center's database holds a fleet of FLEET devices (default 100,000, the issue's sizing),
// spread over users in groups, of which DEVICES check in.
// With --reconnect every check-in opens a new TLS connection (a full handshake with the device's
// certificate), as an Engine checking in every few minutes does; without it each device keeps
// its connection, which measures the check-in itself.
// Usage: center-checkin-bench [--database URL] [--devices N] [--fleet FLEET] [--seconds S] [--reconnect]
// Benchmarks/CenterCheckIn/run.sh runs it on SQLite and on a PostgreSQL it starts, beside wrk
// against /health (the same server's ceiling for a TLS request that touches the database once).
import AsyncHTTPClient
import Crypto
import Foundation
import HearthCenter
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import SQLKit
import X509

func option(_ name: String, _ fallback: String?) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return fallback }
    return arguments[index + 1]
}

let devices = Int(option("--devices", "64")!)!
let fleet = Int(option("--fleet", "100000")!)!
let reconnect = CommandLine.arguments.contains("--reconnect")
let seconds = Double(option("--seconds", "20")!)!
let database = option("--database", nil)

let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-checkin-bench-\(getpid())")
defer { try? FileManager.default.removeItem(at: folder) }
var configuration = CenterConfiguration(dataDirectory: folder)
configuration.port = 0
configuration.database = database
configuration.passwordCost = 4
var logger = Logger(label: "bench")
logger.logLevel = .error
let (center, first) = try await Center.prepare(configuration, logger: logger)
let running = try await center.start()
let base = "https://127.0.0.1:\(running.port)"
let caPEM = center.ca.pem

func client(certificate: String? = nil, key: P256.Signing.PrivateKey? = nil) throws -> HTTPClient {
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(caPEM.utf8), format: .pem)])
    if let certificate, let key {
        tls.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(certificate.utf8), format: .pem))]
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
    }
    var http = HTTPClient.Configuration(tlsConfiguration: tls)
    http.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1)
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
}

func call(_ http: HTTPClient, _ method: HTTPMethod, _ path: String, _ body: [String: Any]?, token: String? = nil) async throws -> [String: Any] {
    var request = HTTPClientRequest(url: base + path)
    request.method = method
    if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
    if let body {
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        request.headers.add(name: "Content-Type", value: "application/json")
    }
    let response = try await http.execute(request, timeout: .seconds(30))
    let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
    guard (200..<300).contains(response.status.code) else {
        throw NSError(domain: "bench", code: Int(response.status.code), userInfo: [NSLocalizedDescriptionKey: String(decoding: data, as: UTF8.self)])
    }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
}

// Set-up: the owner, a user in two groups (one with a policy), an image on a channel, two VM definitions,
// and the devices enrolled for that user — so each check-in resolves real desired state.
let admin = try client()
var token = try await call(admin, .POST, "/api/v1/session", ["username": "owner", "password": first.ownerPassword!])["token"] as! String
_ = try await call(admin, .POST, "/api/v1/me/password", ["current": first.ownerPassword!, "new": "benchmark-password"], token: token)
token = try await call(admin, .POST, "/api/v1/session", ["username": "owner", "password": "benchmark-password"])["token"] as! String
for (method, path, body) in [
    (HTTPMethod.POST, "/api/v1/users", ["username": "alice"] as [String: Any]), (.POST, "/api/v1/groups", ["name": "staff"]),
    (.POST, "/api/v1/groups", ["name": "contractors"]), (.PUT, "/api/v1/groups/contractors/members/alice", [:]),
    (.PUT, "/api/v1/groups/staff/members/alice", [:]), (.POST, "/api/v1/images", ["name": "debian"]),
    (.POST, "/api/v1/images/debian/versions", ["version": "1"]), (.PUT, "/api/v1/images/debian/channels/stable", ["version": "1"]),
    (.POST, "/api/v1/vms", ["name": "work", "role": "work", "image": "debian"]),
    (.POST, "/api/v1/vms", ["name": "personal", "role": "personal", "image": "debian"]),
    (.PUT, "/api/v1/vms/work/assignments/group/staff", [:]), (.PUT, "/api/v1/vms/personal/assignments/user/alice", [:]),
    (.PUT, "/api/v1/policies/group:staff", ["leaseDays": 7, "usbClasses": ["hid"]]),
] {
    _ = try await call(admin, method, path, body, token: token)
}
// The rest of the fleet, written straight into the database: 20 devices per user, each user in
// one of the two groups, so that the tables a check-in reads have a fleet's size.
let others = max(0, fleet - devices)
let seeding = Date()
try await center.store.database.transaction { db in
    let groups = try await db.raw("SELECT id FROM user_groups ORDER BY name").all().map { try $0.decode(column: "id", as: String.self) }
    let now = Int64(Date().timeIntervalSince1970)
    let users = (others + 19) / 20
    for start in stride(from: 0, to: users, by: 500) {
        let range = start..<min(users, start + 500)
        let users = range.map { index -> SQLQueryString in "(\(bind: "fleet-user-\(index)"), \(bind: "fleet-\(index)"), '', '', \(bind: now))" }
        let members = range.map { index -> SQLQueryString in "(\(bind: groups[index % groups.count]), \(bind: "fleet-user-\(index)"))" }
        try await db.raw("INSERT INTO users (id, username, display_name, email, created) VALUES " + users.joined(separator: ", ")).run()
        try await db.raw("INSERT INTO group_members (group_id, user_id) VALUES " + members.joined(separator: ", ")).run()
    }
    for start in stride(from: 0, to: others, by: 500) {
        let rows = (start..<min(others, start + 500)).map { index -> SQLQueryString in
            let serial = SHA256.hash(data: Data("fleet-\(index)".utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
            return "(\(bind: "fleet-device-\(index)"), \(bind: "fleet-user-\(index / 20)"), \(bind: "fleet-\(index)"), \(bind: serial), '', \(bind: now))"
        }
        try await db.raw("INSERT INTO devices (id, user_id, name, certificate_serial, public_key_sha256, enrolled) VALUES " + rows.joined(separator: ", ")).run()
    }
}
FileHandle.standardError.write(Data("seeded \(others) other devices in \(String(format: "%.1f", Date().timeIntervalSince(seeding))) s\n".utf8))

var deviceClients: [HTTPClient] = []
for index in 0..<devices {
    let secret = try await call(admin, .POST, "/api/v1/enrollment-tokens", ["user": "alice"], token: token)["secret"] as! String
    let key = P256.Signing.PrivateKey()
    let csr = try CertificateSigningRequest(version: .v1, subject: try DistinguishedName { CommonName("device-\(index)") },
                                            privateKey: .init(key), attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
    let enrolled = try await call(admin, .POST, "/api/v1/enroll", ["token": secret, "csr": try csr.serializeAsPEM().pemString, "name": "device-\(index)"])
    deviceClients.append(try client(certificate: enrolled["certificate"] as? String, key: key))
}
try await admin.shutdown()

nonisolated(unsafe) let status: [String: Any] = [
    "engineVersion": "0.1.0",
    "inventory": ["cpuModel": "bench", "cpus": 4, "memoryBytes": 16 << 30, "diskBytes": 512 << 30, "virtualization": "kvm"],
    "vms": [["name": "work", "state": "running", "image": "debian@1"], ["name": "personal", "state": "stopped", "image": "debian@1"]],
    "security": "ok",
]
// The simulated device's side is kept cheap (the status encoded once, the answer's status code and
// size checked, not decoded) so that the two cores go to the Center; the warm-up call below
// decodes the whole answer once per device.
let statusBody = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: status))
@Sendable func checkIn(_ http: HTTPClient) async throws {
    var request = HTTPClientRequest(url: base + "/api/v1/device/checkin")
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    if reconnect { request.headers.add(name: "Connection", value: "close") }
    request.body = .bytes(statusBody)
    let response = try await http.execute(request, timeout: .seconds(30))
    let body = try await response.body.collect(upTo: 1 << 20)
    guard response.status == .ok, body.readableBytes > 0 else {
        throw NSError(domain: "bench", code: Int(response.status.code), userInfo: [NSLocalizedDescriptionKey: String(buffer: body)])
    }
}
// One warm-up check-in per device (TLS handshakes), then the measured run.
for http in deviceClients { _ = try await call(http, .POST, "/api/v1/device/checkin", status) }
let clock = ContinuousClock()
let deadline = clock.now + .seconds(seconds)
let started = clock.now
let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
    for http in deviceClients {
        group.addTask {
            var mine: [Double] = []
            while clock.now < deadline {
                let begin = clock.now
                try await checkIn(http)
                let elapsed = clock.now - begin
                mine.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
            }
            return mine
        }
    }
    var all: [Double] = []
    for try await part in group { all += part }
    return all.sorted()
}
let elapsed = clock.now - started
let total = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
print(String(format: "hearth check-in (%@, %d of %d devices, %@, %.0f s): %d check-ins, %.0f per second, p50 %.1f ms, p99 %.1f ms",
             center.store.database.kind.rawValue, devices, max(fleet, devices), reconnect ? "a new TLS connection each" : "connections kept", total, latencies.count, Double(latencies.count) / total, percentile(0.5), percentile(0.99)))
for http in deviceClients { try await http.shutdown() }
await running.shutdown()
