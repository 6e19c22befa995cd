import ArgumentParser
import Foundation
import ImageSync
import NIOSSL

/// `hearth image …`: signed gold image versions, published once and pulled by delta.
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Publish gold image versions to a signed repository and pull them by delta.",
        subcommands: [
            ImageInitCommand.self, ImagePublishCommand.self, ImagePullCommand.self, ImageDiffCommand.self,
            ImageListCommand.self, ImageVerifyCommand.self, ImagePushCommand.self, ImageRefreshCommand.self, ImageRotateKeyCommand.self,
        ]
    )
}

/// Where a client reads a repository and which root it trusts.
struct RepositoryClientOptions: ParsableArguments {
    @Option(help: "The repository: a folder, an http(s):// URL (the Center, a web server, a cache node), or an OCI registry as oci://HOST/NAME.")
    var repo: String

    @Option(help: "The root metadata file this machine pins as its trust anchor (printed by `hearth image init`).")
    var trust: String

    @Option(help: "Give up on a server slower than this many bytes per second (after a grace period).")
    var minRate: Double = 2048

    @Option(help: "Seconds before the minimum rate applies, and without any data before a transfer is abandoned.")
    var patience: Double = 20

    @Option(help: "Cap the download rate, e.g. 2M for 2 MiB per second.")
    var limitRate: ByteSize?

    @Option(help: "For https:// repositories: trust this CA certificate (PEM, e.g. a Center's ca.pem) instead of the system's.")
    var ca: String?

    @Option(help: "For https:// repositories that want one (the Center): a client certificate, PEM (needs --key).")
    var cert: String?

    @Option(help: "The PEM private key of --cert.")
    var key: String?

    /// The TLS settings --ca, --cert and --key ask for, or nil for the system's defaults.
    func tls() throws -> TLSConfiguration? {
        guard ca != nil || cert != nil else { return nil }
        if (cert == nil) != (key == nil) { throw ValidationError("--cert and --key go together") }
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if let ca { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
            if let cert, let key {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
        } catch {
            throw ValidationError("cannot read the TLS files (--ca, --cert, --key): \(error)")
        }
        return tls
    }

    func transport() throws -> any RepositoryTransport {
        var limits = TransferLimits()
        limits.minimumBytesPerSecond = minRate
        limits.grace = patience
        limits.readTimeout = patience
        limits.bandwidthLimit = limitRate.map { Double($0.bytes) }
        if repo.hasPrefix("http://") || repo.hasPrefix("https://") {
            return HTTPTransport(baseURL: repo, limits: limits, tls: try tls())
        }
        if repo.hasPrefix("oci://") || repo.hasPrefix("oci+http://") {
            return try OCITransport(url: repo, limits: limits)
        }
        return LocalTransport(root: URL(fileURLWithPath: repo), limits: limits)
    }

    /// Opens the repository with trust state kept in `store` (or a scratch folder for
    /// commands that only look).
    func open(store: URL) throws -> TrustedRepository {
        let anchor = URL(fileURLWithPath: trust)
        guard let data = FileManager.default.contents(atPath: anchor.path) else {
            throw ValidationError("cannot read the trust anchor \(trust)")
        }
        // One trust folder per pinned root, so two repositories never share state.
        return try TrustedRepository(transport: transport(), pinnedRoot: anchor,
                                     stateDirectory: ImageStore(root: store).trustDirectory(anchor: data))
    }
}

/// Where a publisher's repository and keys are.
struct RepositoryPublisherOptions: ParsableArguments {
    @Option(help: "The repository folder.")
    var repo: String

    @Option(help: "The folder holding the signing keys (readable by their owner only).")
    var keys: String

    var publisher: Publisher {
        Publisher(repository: URL(fileURLWithPath: repo), keys: KeyStore(directory: URL(fileURLWithPath: keys)))
    }
}
