import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A repository kept in an OCI registry through the distribution API: packs and indexes are
/// blobs under their own SHA-256 (the registry's digest is theirs), and each metadata file is a
/// blob referenced by a small manifest under a tag (`timestamp`, `root.N`, `snapshot.N`,
/// `targets.N`). The registry is as untrusted as any server: what it returns is checked against
/// the signed metadata.
public enum OCILayout {
    public static let metadataMediaType = "application/vnd.hearth.metadata+json"
    public static let packMediaType = "application/vnd.hearth.pack.v1+zstd"
    public static let indexMediaType = "application/vnd.hearth.index.v1+zstd"
    static let emptyConfig = Data("{}".utf8)

    /// The tag for a metadata path, or the blob digest for a content-addressed one.
    enum Reference {
        case tag(String)
        case blob(String)
    }

    static func reference(for path: String) -> Reference? {
        let parts = path.split(separator: "/")
        guard parts.count == 2 else { return nil }
        let file = String(parts[1])
        switch parts[0] {
        case "packs", "indexes":
            guard let dot = file.firstIndex(of: ".") else { return nil }
            return .blob(String(file[..<dot]))
        case "metadata":
            guard file.hasSuffix(".json") else { return nil }
            return .tag(String(file.dropLast(5)))
        default:
            return nil
        }
    }

    /// `oci://HOST[:PORT]/NAME` (HTTPS) or `oci+http://…` (plain HTTP, for loopback) into the
    /// registry's API base and the repository name.
    public static func parse(_ url: String) -> (base: String, name: String)? {
        let scheme: String
        let rest: Substring
        if url.hasPrefix("oci://") {
            scheme = "https"
            rest = url.dropFirst(6)
        } else if url.hasPrefix("oci+http://") {
            scheme = "http"
            rest = url.dropFirst(11)
        } else {
            return nil
        }
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let host = rest[..<slash]
        let name = rest[rest.index(after: slash)...].trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard !host.isEmpty, !name.isEmpty else { return nil }
        return ("\(scheme)://\(host)", name)
    }
}

/// Reads a repository from an OCI registry.
public final class OCITransport: RepositoryTransport {
    let http: HTTPTransport
    let display: String

    public init(url: String, limits: TransferLimits = TransferLimits()) throws(ImageSyncError) {
        guard let (base, name) = OCILayout.parse(url) else {
            throw .invalidRequest("\(url) is not an OCI repository address; write oci://HOST[:PORT]/NAME (or oci+http:// for a registry without TLS)")
        }
        http = HTTPTransport(baseURL: "\(base)/v2/\(name)", limits: limits)
        display = url
    }

    public var location: String { display }

    public func shutdown() async { await http.shutdown() }

    struct Manifest: Codable {
        struct Descriptor: Codable {
            var mediaType: String
            var digest: String
            var size: Int
        }

        var schemaVersion = 2
        var mediaType = "application/vnd.oci.image.manifest.v1+json"
        var artifactType: String?
        var config: Descriptor
        var layers: [Descriptor]
    }

    public func fetch(_ path: String, maxLength: Int) async throws(ImageSyncError) -> Data? {
        switch OCILayout.reference(for: path) {
        case .blob(let hex):
            return try await http.fetch("blobs/sha256:\(hex)", maxLength: maxLength)
        case .tag(let tag):
            guard let manifestData = try await http.fetch("manifests/\(tag)", maxLength: 64 << 10,
                                                          headers: ["Accept": "application/vnd.oci.image.manifest.v1+json"]) else { return nil }
            guard let manifest = try? JSONDecoder().decode(Manifest.self, from: manifestData), manifest.layers.count == 1,
                  manifest.layers[0].digest.hasPrefix("sha256:") else {
                throw .badResponse(url: "\(display) tag \(tag)", reason: "not a Hearth metadata manifest")
            }
            let layer = manifest.layers[0]
            if layer.size > maxLength {
                throw .badResponse(url: "\(display) tag \(tag)", reason: "names a \(layer.size)-byte file, more than the \(maxLength) expected")
            }
            guard let data = try await http.fetch("blobs/\(layer.digest)", maxLength: maxLength) else {
                throw .badResponse(url: "\(display) tag \(tag)", reason: "names blob \(layer.digest), which the registry does not have")
            }
            return data
        case nil:
            throw .invalidRequest("\(path) has no place in an OCI repository")
        }
    }

    public func fetchRange(_ path: String, range: Range<UInt64>, consume: (ByteBuffer) async throws(ImageSyncError) -> Void) async throws(ImageSyncError) {
        guard case .blob(let hex) = OCILayout.reference(for: path) else {
            throw .invalidRequest("\(path) is not a blob")
        }
        try await http.fetchRange("blobs/sha256:\(hex)", range: range, consume: consume)
    }
}

/// Copies a repository folder into an OCI registry: blobs the registry lacks, then the
/// versioned metadata, then the timestamp, so a reader never sees metadata naming a missing blob.
public struct OCIPusher: Sendable {
    public let repository: URL
    public let base: String
    public let name: String

    public struct Result: Codable, Sendable {
        public var blobsUploaded: Int
        public var blobsPresent: Int
        public var bytesUploaded: UInt64
        public var tags: Int
    }

    public init(repository: URL, registry url: String) throws(ImageSyncError) {
        guard let (base, name) = OCILayout.parse(url) else {
            throw .invalidRequest("\(url) is not an OCI repository address; write oci://HOST[:PORT]/NAME (or oci+http:// for a registry without TLS)")
        }
        self.repository = repository
        self.base = base
        self.name = name
    }

    public func push(progress: ((String) -> Void)? = nil) async throws(ImageSyncError) -> Result {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let result = try await push(client: client, progress: progress)
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func files(_ folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent(folder).path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { "\(folder)/\($0)" }
    }

    private func push(client: HTTPClient, progress: ((String) -> Void)?) async throws(ImageSyncError) -> Result {
        var result = Result(blobsUploaded: 0, blobsPresent: 0, bytesUploaded: 0, tags: 0)
        _ = try await upload(OCILayout.emptyConfig, client: client, result: &result)
        for path in files("packs") + files("indexes") {
            guard case .blob(let hex) = OCILayout.reference(for: path) else { continue }
            if try await exists(hex, client: client) {
                result.blobsPresent += 1
                continue
            }
            progress?(path)
            let data = try read(path)
            guard Digest.of(data).hex == hex else {
                throw .corruptData("\(repository.appendingPathComponent(path).path) does not match its name; the repository folder is damaged")
            }
            _ = try await upload(data, client: client, result: &result)
        }
        // Versioned metadata in version order; the timestamp last.
        let metadata = files("metadata").filter { $0 != RepositoryLayout.timestamp && $0 != RepositoryLayout.currentRoot }
        for path in metadata + [RepositoryLayout.timestamp] {
            guard case .tag(let tag) = OCILayout.reference(for: path) else { continue }
            let data = try read(path)
            let digest = try await upload(data, client: client, result: &result)
            let manifest = OCITransport.Manifest(
                artifactType: OCILayout.metadataMediaType,
                config: .init(mediaType: "application/vnd.oci.empty.v1+json", digest: "sha256:\(Digest.of(OCILayout.emptyConfig).hex)", size: 2),
                layers: [.init(mediaType: OCILayout.metadataMediaType, digest: "sha256:\(digest.hex)", size: data.count)])
            let body: Data
            do { body = try JSONEncoder().encode(manifest) } catch { throw .invalidRequest("\(error)") }
            var request = HTTPClientRequest(url: "\(base)/v2/\(name)/manifests/\(tag)")
            request.method = .PUT
            request.headers.add(name: "Content-Type", value: "application/vnd.oci.image.manifest.v1+json")
            request.body = .bytes(ByteBuffer(bytes: body))
            try await expect(client, request, [.created], what: "store tag \(tag)")
            result.tags += 1
        }
        return result
    }

    private func read(_ path: String) throws(ImageSyncError) -> Data {
        guard let data = FileManager.default.contents(atPath: repository.appendingPathComponent(path).path) else {
            throw .io(path: repository.appendingPathComponent(path).path, operation: "read", reason: "cannot read")
        }
        return data
    }

    private func exists(_ hex: String, client: HTTPClient) async throws(ImageSyncError) -> Bool {
        var request = HTTPClientRequest(url: "\(base)/v2/\(name)/blobs/sha256:\(hex)")
        request.method = .HEAD
        let status = try await send(client, request, what: "look up blob \(hex.prefix(12))").status
        return status == .ok
    }

    /// Uploads a blob unless present; returns its digest.
    private func upload(_ data: Data, client: HTTPClient, result: inout Result) async throws(ImageSyncError) -> Digest {
        let digest = Digest.of(data)
        if try await exists(digest.hex, client: client) { return digest }
        var start = HTTPClientRequest(url: "\(base)/v2/\(name)/blobs/uploads/")
        start.method = .POST
        let started = try await send(client, start, what: "start an upload")
        guard started.status == .accepted, let location = started.headers.first(name: "Location") else {
            throw .badResponse(url: base, reason: "HTTP \(started.status.code) starting an upload; is this an OCI registry that allows pushes?")
        }
        let absolute = location.hasPrefix("http") ? location : base + location
        let separator = absolute.contains("?") ? "&" : "?"
        var put = HTTPClientRequest(url: "\(absolute)\(separator)digest=sha256:\(digest.hex)")
        put.method = .PUT
        put.headers.add(name: "Content-Type", value: "application/octet-stream")
        put.body = .bytes(ByteBuffer(bytes: data))
        try await expect(client, put, [.created], what: "upload a blob")
        result.blobsUploaded += 1
        result.bytesUploaded += UInt64(data.count)
        return digest
    }

    private func send(_ client: HTTPClient, _ request: HTTPClientRequest, what: String) async throws(ImageSyncError) -> HTTPClientResponse {
        do {
            let response = try await client.execute(request, timeout: .seconds(300))
            return response
        } catch {
            throw .transport(url: request.url, reason: "\(what): \(HTTPTransport.describe(error))")
        }
    }

    private func expect(_ client: HTTPClient, _ request: HTTPClientRequest, _ statuses: [HTTPResponseStatus], what: String) async throws(ImageSyncError) {
        let response = try await send(client, request, what: what)
        var detail = ""
        do {
            let body = try await response.body.collect(upTo: 64 << 10)
            detail = String(buffer: body)
        } catch {}
        guard statuses.contains(response.status) else {
            throw .badResponse(url: request.url, reason: "HTTP \(response.status.code) trying to \(what): \(detail.prefix(300))")
        }
    }
}
