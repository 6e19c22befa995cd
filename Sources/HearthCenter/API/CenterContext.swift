import Foundation
import Hummingbird
import NIOCore
import NIOSSL
import X509

/// Per request: the connection it came on (for the peer's address and client certificate) and,
/// once authenticated, who is asking.
public struct CenterContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel
    var admin: Admin?
    var sessionToken: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Request bodies above this are refused with 413 before they are read whole.
    public var maxUploadSize: Int { 256 * 1024 }

    /// The peer's IP address, for the audit log.
    var address: String { channel.remoteAddress?.ipAddress ?? "unknown" }

    /// The client certificate the TLS handshake validated against the Center's CA, if any, as DER.
    func peerCertificateDER() async -> [UInt8]? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        return try? certificate.toDERBytes()
    }
}
