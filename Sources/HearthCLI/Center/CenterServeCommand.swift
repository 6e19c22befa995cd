import ArgumentParser
import Foundation
import HearthCenter
import Logging

struct CenterServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the Center's HTTPS API until SIGTERM or SIGINT.",
        discussion: """
        On first start with an empty data directory the Center makes its own CA and server \
        certificate, creates the owner admin and prints a one-time password for it (shown once, \
        never logged). A PostgreSQL password may come from PGPASSWORD instead of the URL.
        """
    )

    @Option(help: "The folder for the Center's database, CA and keys.")
    var data: String

    @Option(help: "Address and port to listen on.")
    var listen: String = "127.0.0.1:8443"

    @Option(help: "sqlite:PATH (default: DATA/center.sqlite) or postgres://USER@HOST:PORT/DATABASE.")
    var database: String?

    @Option(help: "A PEM certificate chain to serve instead of the Center's own (needs --key).")
    var cert: String?

    @Option(help: "The PEM private key for --cert.")
    var key: String?

    @Option(help: "Another DNS name or IP address for the Center's own server certificate (repeatable).")
    var name: [String] = []

    func validate() throws {
        if (cert == nil) != (key == nil) { throw ValidationError("--cert and --key go together") }
        if let database, database.contains("://"), let url = URLComponents(string: database), url.password != nil {
            throw ValidationError("keep the database password off the command line: set PGPASSWORD in the environment instead")
        }
        _ = try Self.split(listen)
    }

    static func split(_ listen: String) throws -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen takes HOST:PORT, for example 127.0.0.1:8443 or 0.0.0.0:443")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    func run() async throws {
        var logger = Logger(label: "hearth.center")
        if ProcessInfo.processInfo.environment["HEARTH_LOG_LEVEL"] == nil { logger.logLevel = .info }
        var configuration = CenterConfiguration(dataDirectory: URL(fileURLWithPath: data))
        (configuration.host, configuration.port) = try Self.split(listen)
        configuration.database = database
        configuration.certificateFile = cert.map { URL(fileURLWithPath: $0) }
        configuration.keyFile = key.map { URL(fileURLWithPath: $0) }
        configuration.serverNames = name
        let (center, first) = try await Center.prepare(configuration, logger: logger)
        if first.createdCA { print("Made the Center's CA: \(first.caCertificatePath)") }
        print("CA fingerprint (SHA-256): \(first.caFingerprint)")
        if let username = first.ownerUsername, let password = first.ownerPassword {
            print("""
            Created the owner admin. Log in once with
              username: \(username)
              password: \(password)
            This password is shown only now; change it at first login (POST /api/v1/me/password).
            """)
        }
        let listen = listen
        try await center.run { port in
            print("Serving https://\(listen.hasSuffix(":0") ? String(listen.dropLast(2)) + ":\(port)" : listen)  (SIGTERM or Ctrl-C stops it)")
            fflush(nil)
        }
    }
}
