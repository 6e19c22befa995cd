import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import UnixSignals
import X509

/// How a Center is started (`hearth center serve`).
public struct CenterConfiguration: Sendable {
    /// Holds the SQLite database, the CA and TLS keys (`tls/`), and nothing else.
    public var dataDirectory: URL
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests).
    public var port: Int = 8443
    /// nil: `sqlite:DATA/center.sqlite`.
    public var database: String?
    /// A certificate (PEM, chain first) and key the admin gives instead of the Center's own.
    public var certificateFile: URL?
    public var keyFile: URL?
    /// Extra names (DNS or IP) the Center's own server certificate is valid for.
    public var serverNames: [String] = []
    /// The image repository the Center serves at `/repository/` (default `DATA/repository`):
    /// publish into it with `hearth image publish --repo`.
    public var repositoryDirectory: URL?
    /// bcrypt cost for admin passwords (lower only in tests).
    public var passwordCost: UInt8 = 12
    public var now: @Sendable () -> Date = { Date() }

    public init(dataDirectory: URL) {
        self.dataDirectory = dataDirectory
    }
}

/// What the first start prints once: how the owner logs in, and the CA a client pins.
public struct FirstStart: Sendable {
    public var ownerUsername: String?
    /// Shown once, never logged; the owner must change it at first login.
    public var ownerPassword: String?
    public var caFingerprint: String
    public var caCertificatePath: String
    public var createdCA: Bool
}

/// A running Center: the store, its CA, and the HTTPS API.
public final class Center: Sendable {
    public let store: Store
    public let ca: CertificateAuthority
    /// Client certificates whose CA signature was checked already.
    let verifiedCertificates = VerifiedCertificates()
    public let leaseSigner: LeaseSigner
    /// Signs devices' work-key policies (docs/SECURITY.md).
    public let policySigner: PolicySigner
    public let logger: Logger
    let loginThrottle = LoginThrottle()
    let configuration: CenterConfiguration
    private let tls: TLSConfiguration

    /// Prepares a Center: folders, CA and certificates, database and migrations, the owner admin.
    public static func prepare(_ configuration: CenterConfiguration, logger: Logger) async throws(CenterError) -> (Center, FirstStart) {
        let data = configuration.dataDirectory
        let tlsFolder = data.appendingPathComponent("tls")
        for folder in [data, tlsFolder] {
            if mkdir(folder.path, 0o700) != 0 && errno != EEXIST {
                throw .io("cannot create \(folder.path): \(String(cString: strerror(errno)))")
            }
        }
        chmod(tlsFolder.path, 0o700)
        let (ca, createdCA) = try CertificateAuthority.loadOrCreate(in: tlsFolder, name: "Hearth Center")
        let leaseSigner = try LeaseSigner.loadOrCreate(at: tlsFolder.appendingPathComponent("lease.key"))
        let policySigner = try PolicySigner.loadOrCreate(at: tlsFolder.appendingPathComponent("policy.key"))

        // The server certificate: the admin's, or one from the Center's CA for the names it answers to.
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            if let certificateFile = configuration.certificateFile, let keyFile = configuration.keyFile {
                chain = try NIOSSLCertificate.fromPEMFile(certificateFile.path)
                key = try NIOSSLPrivateKey(file: keyFile.path, format: .pem)
            } else {
                let names = ["localhost", "127.0.0.1", "::1", configuration.host] + configuration.serverNames
                let (certificate, serverKey) = try ca.issueServerCertificate(names: names.filter { $0 != "0.0.0.0" && $0 != "::" })
                try PEMFiles.writeKey(serverKey, to: tlsFolder.appendingPathComponent("server.key"))
                try PEMFiles.write(try certificate.serializeAsPEM().pemString, to: tlsFolder.appendingPathComponent("server.pem"), mode: 0o644)
                chain = [try NIOSSLCertificate(bytes: Array(try certificate.serializeAsPEM().pemString.utf8), format: .pem)]
                key = try NIOSSLPrivateKey(bytes: Array(serverKey.pemRepresentation.utf8), format: .pem)
            }
        } catch let error as CenterError {
            throw error
        } catch {
            throw .tls("cannot load the server certificate and key: \(error); give a PEM certificate chain and its PEM key, or leave both out to use the Center's own CA")
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        // Devices present their client certificate; admins and browsers need none.
        tls.certificateVerification = .optionalVerification
        do {
            tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(ca.pem.utf8), format: .pem)])
        } catch {
            throw .tls("cannot use the Center's CA certificate as trust root: \(error)")
        }

        let url = configuration.database ?? "sqlite:\(data.appendingPathComponent("center.sqlite").path)"
        let database = try await CenterDatabase.open(url, logger: logger)
        let applied = try await Migrations.run(on: database)
        if !applied.isEmpty { logger.info("database migrated", metadata: ["applied": "\(applied)", "database": "\(database.location)"]) }
        let store = Store(database: database, now: configuration.now, passwordCost: configuration.passwordCost)

        var first = FirstStart(caFingerprint: ca.fingerprint, caCertificatePath: tlsFolder.appendingPathComponent("ca.pem").path, createdCA: createdCA)
        do {
            if try await store.adminCount() == 0 {
                let password = String(Secrets.token().prefix(24))
                _ = try await store.createAdmin(username: "owner", password: password, role: .owner, mustChangePassword: true, by: .center)
                first.ownerUsername = "owner"
                first.ownerPassword = password
            }
        } catch let error as APIError where error.code == "conflict" {
            // Another Center on the same database made the owner first.
        } catch {
            await database.close()
            throw .storage("cannot create the owner admin: \(CenterDatabase.describe(error))")
        }
        return (Center(store: store, ca: ca, leaseSigner: leaseSigner, policySigner: policySigner, logger: logger, configuration: configuration, tls: tls), first)
    }

    private init(store: Store, ca: CertificateAuthority, leaseSigner: LeaseSigner, policySigner: PolicySigner, logger: Logger, configuration: CenterConfiguration, tls: TLSConfiguration) {
        self.store = store
        self.ca = ca
        self.leaseSigner = leaseSigner
        self.policySigner = policySigner
        self.logger = logger
        self.configuration = configuration
        self.tls = tls
    }

    /// Serves until SIGTERM or SIGINT (or `shutdown` on the returned handle in tests), finishing
    /// requests in flight. `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let group = try makeServiceGroup(signals: [.sigterm, .sigint], onListening: onListening)
        try await group.run()
        await store.database.close()
    }

    /// Starts serving in the background; for tests and the main job.
    public func start() async throws -> RunningCenter {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let group = try makeServiceGroup(signals: []) { port in continuation.yield(port); continuation.finish() }
        let task = Task {
            do { try await group.run() } catch { self.logger.error("the Center stopped: \(error)") }
        }
        var iterator = stream.makeAsyncIterator()
        guard let port = await iterator.next() else {
            task.cancel()
            throw CenterError.io("the Center did not start listening on \(configuration.host):\(configuration.port)")
        }
        return RunningCenter(center: self, port: port, group: group, task: task)
    }

    private func makeServiceGroup(signals: [UnixSignal], onListening: @escaping @Sendable (Int) async -> Void) throws -> ServiceGroup {
        _ = CenterMetrics.registry
        let router = Router(context: CenterContext.self)
        router.add(middleware: ErrorMiddleware(logger: logger))
        router.add(middleware: MetricsMiddleware())
        let repository = configuration.repositoryDirectory ?? configuration.dataDirectory.appendingPathComponent("repository")
        router.add(middleware: RepositoryMiddleware(center: self, files: FileMiddleware(repository.path, urlBasePath: "/repository", logger: logger)))
        for route in Self.routes {
            let path = RouterPath(route.path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: ""))
            router.on(path, method: route.method) { request, context in
                // NUL cannot be stored as text (PostgreSQL refuses it): refused here, for every route.
                if request.uri.description.range(of: "%00", options: .caseInsensitive) != nil {
                    throw APIError.badRequest("the URL holds a NUL character (%00)")
                }
                var context = context
                try await self.authorize(route.access, request: request, context: &context)
                return try await route.handler(request, context, self)
            }
        }
        Console.register(on: router, center: self)
        let app = Application(
            router: router,
            server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Hearth Center"),
            onServerRunning: { channel in
                await onListening(channel.localAddress?.port ?? 0)
            },
            logger: logger)
        return ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: signals, logger: logger))
    }

    /// Checks the caller against the route's access; fills in the admin for admin routes.
    func authorize(_ access: Access, request: Request, context: inout CenterContext) async throws {
        switch access {
        case .open, .device:
            return
        case .anyAdmin, .admin:
            guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
                throw APIError.unauthorized("log in first (POST /api/v1/session) and send the token as 'Authorization: Bearer TOKEN'")
            }
            let token = String(header.dropFirst("Bearer ".count))
            guard token.count <= 128, let admin = try await store.session(token: token) else {
                throw APIError.unauthorized("the session token is unknown or expired; log in again")
            }
            context.admin = admin
            context.sessionToken = token
            guard case let .admin(permission) = access else { return }
            if admin.mustChangePassword {
                throw APIError.forbidden("change your one-time password first (POST /api/v1/me/password)")
            }
            guard admin.role.may(permission) else {
                throw APIError.forbidden("the \(admin.role.rawValue) role may not do this (needs the \(permission.rawValue) permission)")
            }
        }
    }

    /// The device whose client certificate this connection presented: issued by this Center's
    /// CA, enrolled and not retired.
    func authenticatedDevice(_ context: CenterContext) async throws -> Device {
        try await authenticatedCertificate(context).device
    }

    /// The device and the serial of the certificate it presented.
    func authenticatedCertificate(_ context: CenterContext) async throws -> (device: Device, serial: String) {
        let serial = try await verifiedSerial(context)
        guard let device = try await store.device(certificateSerial: serial) else {
            throw APIError.forbidden("this device was retired or is not enrolled; enroll it again with a new token")
        }
        return (device, serial)
    }

    /// The serial of the client certificate this connection presented, once it is known to be
    /// issued by this Center's CA. Whether its device is enrolled and not retired is for the
    /// caller to ask the database.
    func verifiedSerial(_ context: CenterContext) async throws -> String {
        guard let der = await context.peerCertificateDER() else {
            throw APIError.unauthorized("this call needs the device's client certificate (mutual TLS); enroll the device first")
        }
        return try verifiedCertificates.serial(of: der) { der in
            guard let certificate = try? Certificate(derEncoded: der),
                  certificate.issuer == ca.certificate.subject,
                  ca.certificate.publicKey.isValidSignature(certificate.signature, for: certificate) else {
                throw APIError.unauthorized("the client certificate was not issued by this Center")
            }
            return CertificateAuthority.hex(certificate.serialNumber)
        }
    }

    func health() async throws -> Response {
        struct Health: Encodable { let status: String; let database: String; let detail: String? }
        do {
            try await store.database.read { db in try await db.raw("SELECT 1").run() }
            return try JSONBody.response(Health(status: "ok", database: store.database.kind.rawValue, detail: nil))
        } catch {
            return try JSONBody.response(Health(status: "unavailable", database: store.database.kind.rawValue,
                                                detail: "the database does not answer"), status: .serviceUnavailable)
        }
    }
}

/// Serves the image repository at `/repository/…` to enrolled devices (their client certificate)
/// and to admins (a session token), with Range requests, from the repository folder. The data is
/// verified by its signed metadata on the client; access is limited because a gold image is the
/// organisation's own.
struct RepositoryMiddleware: RouterMiddleware {
    typealias Context = CenterContext
    let center: Center
    let files: FileMiddleware<CenterContext, LocalFileSystem>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/repository/") else { return try await next(request, context) }
        guard request.method == .get || request.method == .head else {
            throw APIError(.methodNotAllowed, "method_not_allowed", "the repository is read-only over HTTP; publish with hearth image publish")
        }
        if request.headers[.authorization] != nil {
            var context = context
            try await center.authorize(.admin(.read), request: request, context: &context)
        } else {
            _ = try await center.authenticatedDevice(context)
        }
        return try await files.handle(request, context: context) { _, _ in
            throw APIError.notFound("\(request.uri.path) is not in the repository")
        }
    }
}

/// A Center serving in the background.
public struct RunningCenter: Sendable {
    public let center: Center
    public let port: Int
    let group: ServiceGroup
    let task: Task<Void, Never>

    /// Stops accepting, finishes requests in flight, closes the database.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
        await task.value
        await center.store.database.close()
    }
}

/// Every error leaves as JSON: ours as they are, Hummingbird's (404, 405, 413…) in the same
/// shape, and anything unexpected as a 500 that names no internals.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = CenterContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return APIError.response(status: error.status, code: error.code, message: error.message)
        } catch let error as HTTPError {
            let code = error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
            let message = error.body ?? (error.status == .notFound ? "no such route: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return APIError.response(status: error.status, code: code, message: message)
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return APIError.response(status: .internalServerError, code: "internal", message: "the Center could not complete this request; its log has the details")
        }
    }
}
