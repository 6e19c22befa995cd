import AsyncHTTPClient
import Foundation
import HearthCore
import NIOCore
import NIOHTTP1
import NIOSSL

/// The Engine's calls to the Center's device API, over HTTPS that trusts only the Center's own CA
/// and presents the device's certificate (mutual TLS).
public final class CenterClient: Sendable {
    public let base: String
    let client: HTTPClient
    /// The TLS configuration of every device call, also used for image pulls from the Center.
    public let tls: TLSConfiguration

    /// - Parameters:
    ///   - caPEM: the Center's CA certificate: the only root this client trusts.
    ///   - identity: the device's certificate and key; nil while enrolling.
    public init(center: String, caPEM: String, identity: (certificatePEM: String, keyPEM: String)?) throws {
        base = center.hasSuffix("/") ? String(center.dropLast()) : center
        guard let url = URL(string: base), url.scheme == "https", url.host != nil else {
            throw ManagementError.badCenter("'\(center)' is not an https:// URL of a Center (for example https://center.example:8443)")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
            if let identity {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(identity.certificatePEM.utf8)).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.keyPEM.utf8), format: .pem))
            }
        } catch {
            throw ManagementError.badCenter("the Center's CA certificate or the device's identity cannot be read: \(error)")
        }
        self.tls = tls
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        configuration.redirectConfiguration = .disallow
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit {
        client.shutdown().whenComplete { _ in }
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    public func enroll(_ request: EnrollRequest) async throws -> EnrollResponse {
        try await exchange(.POST, "/api/v1/enroll", request, as: EnrollResponse.self)
    }

    public func checkIn(_ status: DeviceStatus) async throws -> CheckInResponse {
        try await exchange(.POST, "/api/v1/device/checkin", status, as: CheckInResponse.self)
    }

    public func report(command id: String, _ report: CommandReport) async throws {
        struct Ignored: Decodable {}
        _ = try await exchange(.POST, "/api/v1/device/commands/\(id)", report, as: Ignored.self)
    }

    /// A new certificate for this device's key; returns its PEM.
    public func renewCertificate(csr: String) async throws -> String {
        struct Renewal: Encodable { let csr: String }
        struct Renewed: Decodable { let certificate: String }
        return try await exchange(.POST, "/api/v1/device/certificate", Renewal(csr: csr), as: Renewed.self).certificate
    }

    /// Uploads the log bundle of a collectDiagnostics command; returns the bytes the Center kept.
    public func uploadDiagnostics(command id: String, _ bundle: DiagnosticsBundle) async throws -> Int {
        struct Stored: Decodable { let size: Int }
        return try await exchange(.PUT, "/api/v1/device/commands/\(id)/diagnostics", bundle, as: Stored.self).size
    }

    /// A file of the Center's repository (the trust anchor), at most `maxLength` bytes; nil on 404.
    public func repositoryFile(_ path: String, maxLength: Int) async throws -> Data? {
        var request = HTTPClientRequest(url: "\(base)/repository/\(path)")
        request.method = .GET
        let response = try await send(request)
        if response.status == .notFound { return nil }
        let body = try await response.body.collect(upTo: maxLength)
        guard response.status == .ok else {
            throw ManagementError.center(status: Int(response.status.code), message: String(buffer: body))
        }
        return Data(buffer: body)
    }

    private func exchange<Body: Encodable, Answer: Decodable>(_ method: HTTPMethod, _ path: String, _ body: Body, as: Answer.Type) async throws -> Answer {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try encoder.encode(body)))
        let response = try await send(request)
        let data = try await response.body.collect(upTo: 8 << 20)
        guard (200..<300).contains(response.status.code) else {
            let message = (try? JSONDecoder().decode(Failure.self, from: Data(buffer: data)))?.error.message ?? String(buffer: data)
            throw ManagementError.center(status: Int(response.status.code), message: message)
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(Answer.self, from: Data(buffer: data))
        } catch {
            throw ManagementError.center(status: Int(response.status.code), message: "an answer this Engine cannot read (\(error)); is the Center a newer version?")
        }
    }

    private struct Failure: Decodable {
        struct Detail: Decodable { let message: String }
        let error: Detail
    }

    private func send(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        do {
            return try await client.execute(request, timeout: .seconds(60))
        } catch {
            throw ManagementError.unreachable(base, reason: "\(error)")
        }
    }
}

/// What went wrong in the management zone, said so an admin or a user can act on it.
public enum ManagementError: Error, Sendable, CustomStringConvertible {
    case badCenter(String)
    case unreachable(String, reason: String)
    case center(status: Int, message: String)
    case notEnrolled(String)
    case badLease(String)
    case identity(path: String, reason: String)

    public var description: String {
        switch self {
        case .badCenter(let message): return message
        case .unreachable(let center, let reason): return "the Center at \(center) cannot be reached (\(reason)); the Engine keeps working offline within its lease and tries again"
        case .center(let status, let message): return "the Center refused (HTTP \(status)): \(message)"
        case .notEnrolled(let message): return message
        case .badLease(let message): return "the lease from the Center is not valid: \(message)"
        case .identity(let path, let reason): return "the device identity in \(path) cannot be used: \(reason)"
        }
    }
}
