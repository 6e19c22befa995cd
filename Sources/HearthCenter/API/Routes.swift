import Foundation
import HTTPTypes
import HearthCore
import Hummingbird
import NIOCore
import X509

/// Who may call a route.
public enum Access: Sendable, Equatable {
    /// Anyone (health, the API document, login, enrollment with its token).
    case open
    /// Any logged-in admin, even one who must still change a one-time password.
    case anyAdmin
    /// An admin whose role has the permission.
    case admin(Permission)
    /// An enrolled, unretired device, by its client certificate (mutual TLS).
    case device
}

/// One route of the API: the table the server is built from, and which the tests check against
/// `docs/openapi.yaml` and the authorization matrix.
public struct Route: Sendable {
    public let method: HTTPRequest.Method
    /// With `{name}` parameters, as in the OpenAPI document.
    public let path: String
    public let access: Access
    let handler: @Sendable (Request, CenterContext, Center) async throws -> Response
}

extension Center {
    /// Every route the Center serves.
    public static let routes: [Route] = [
        Route(method: .get, path: "/health", access: .open) { _, _, center in
            try await center.health()
        },
        Route(method: .get, path: "/metrics", access: .open) { _, _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: CenterMetrics.text())))
        },
        Route(method: .get, path: "/openapi.yaml", access: .open) { _, _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.text)))
        },
        Route(method: .post, path: "/api/v1/session", access: .open) { request, context, center in
            struct Login: Decodable { let username: String; let password: String }
            let login = try await JSONBody.decode(Login.self, from: request, context: context)
            let now = center.store.now()
            if let wait = center.loginThrottle.wait(username: login.username, address: context.address, now: now) {
                throw APIError(.tooManyRequests, "too_many_requests",
                               "too many failed logins for this account or from this address; try again in \(Int(wait / 60) + 1) minute(s)")
            }
            guard let admin = try await center.store.authenticate(username: login.username, password: login.password) else {
                center.logger.notice("admin login refused", metadata: ["address": "\(context.address)"])
                CenterMetrics.failedLogins.increment()
                center.loginThrottle.failed(username: login.username, address: context.address, now: now)
                throw APIError.unauthorized("wrong username or password")
            }
            center.loginThrottle.succeeded(username: login.username)
            let session = try await center.store.createSession(for: admin, address: context.address)
            struct Answer: Encodable { let token: String; let expires: Date; let admin: Admin }
            return try JSONBody.response(Answer(token: session.token, expires: session.expires, admin: admin), status: .created)
        },
        Route(method: .delete, path: "/api/v1/session", access: .anyAdmin) { _, context, center in
            try await center.store.endSession(token: context.sessionToken!, admin: context.admin!, address: context.address)
            return Response(status: .noContent)
        },
        Route(method: .get, path: "/api/v1/me", access: .anyAdmin) { _, context, _ in
            try JSONBody.response(context.admin!)
        },
        Route(method: .post, path: "/api/v1/me/password", access: .anyAdmin) { request, context, center in
            struct Change: Decodable { let current: String; let new: String }
            let change = try await JSONBody.decode(Change.self, from: request, context: context)
            let admin = context.admin!
            guard try await center.store.authenticate(username: admin.username, password: change.current) != nil else {
                throw APIError.forbidden("the current password is wrong")
            }
            try await center.store.changePassword(admin: admin, to: change.new, by: .admin(admin, address: context.address))
            return Response(status: .noContent)
        },
        Route(method: .get, path: "/api/v1/admins", access: .admin(.manageAdmins)) { _, _, center in
            try JSONBody.response(try await center.store.admins())
        },
        Route(method: .post, path: "/api/v1/admins", access: .admin(.manageAdmins)) { request, context, center in
            struct New: Decodable { let username: String; let password: String; let role: AdminRole }
            let new = try await JSONBody.decode(New.self, from: request, context: context)
            let admin = try await center.store.createAdmin(username: new.username, password: new.password, role: new.role,
                                                           mustChangePassword: true, by: .admin(context.admin!, address: context.address))
            return try JSONBody.response(admin, status: .created)
        },
        Route(method: .patch, path: "/api/v1/admins/{id}", access: .admin(.manageAdmins)) { request, context, center in
            struct Change: Decodable { let role: AdminRole?; let disabled: Bool? }
            let change = try await JSONBody.decode(Change.self, from: request, context: context)
            return try JSONBody.response(try await center.store.updateAdmin(
                id: try context.parameters.require("id"), role: change.role, disabled: change.disabled,
                by: context.actor, actorID: context.admin!.id))
        },
        Route(method: .get, path: "/api/v1/users", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.users())
        },
        Route(method: .post, path: "/api/v1/users", access: .admin(.manageDirectory)) { request, context, center in
            struct New: Decodable { let username: String; let displayName: String?; let email: String? }
            let new = try await JSONBody.decode(New.self, from: request, context: context)
            let user = try await center.store.createUser(username: new.username, displayName: new.displayName ?? new.username,
                                                         email: new.email ?? "", by: .admin(context.admin!, address: context.address))
            return try JSONBody.response(user, status: .created)
        },
        Route(method: .get, path: "/api/v1/users/{id}", access: .admin(.read)) { _, context, center in
            try JSONBody.response(try await center.store.user(id: try context.parameters.require("id")))
        },
        Route(method: .delete, path: "/api/v1/users/{id}", access: .admin(.manageDirectory)) { _, context, center in
            try await center.store.deleteUser(id: try context.parameters.require("id"), by: .admin(context.admin!, address: context.address))
            return Response(status: .noContent)
        },
        Route(method: .get, path: "/api/v1/groups", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.groups())
        },
        Route(method: .post, path: "/api/v1/groups", access: .admin(.manageDirectory)) { request, context, center in
            struct New: Decodable { let name: String }
            let new = try await JSONBody.decode(New.self, from: request, context: context)
            return try JSONBody.response(try await center.store.createGroup(name: new.name, by: .admin(context.admin!, address: context.address)), status: .created)
        },
        Route(method: .get, path: "/api/v1/groups/{id}", access: .admin(.read)) { _, context, center in
            try JSONBody.response(try await center.store.group(id: try context.parameters.require("id")))
        },
        Route(method: .put, path: "/api/v1/groups/{id}/members/{user}", access: .admin(.manageDirectory)) { _, context, center in
            try JSONBody.response(try await center.store.setMembership(
                group: try context.parameters.require("id"), user: try context.parameters.require("user"), member: true,
                by: .admin(context.admin!, address: context.address)))
        },
        Route(method: .delete, path: "/api/v1/groups/{id}/members/{user}", access: .admin(.manageDirectory)) { _, context, center in
            try JSONBody.response(try await center.store.setMembership(
                group: try context.parameters.require("id"), user: try context.parameters.require("user"), member: false,
                by: .admin(context.admin!, address: context.address)))
        },
        Route(method: .get, path: "/api/v1/enrollment-tokens", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.enrollmentTokens())
        },
        Route(method: .post, path: "/api/v1/enrollment-tokens", access: .admin(.enrollDevices)) { request, context, center in
            struct New: Decodable { let user: String?; let note: String?; let validHours: Double? }
            let new = try await JSONBody.decode(New.self, from: request, context: context)
            let (token, secret) = try await center.store.createEnrollmentToken(
                userID: new.user, note: new.note ?? "", validFor: (new.validHours ?? 24) * 3600,
                by: .admin(context.admin!, address: context.address))
            struct Answer: Encodable { let token: EnrollmentToken; let secret: String }
            return try JSONBody.response(Answer(token: token, secret: secret), status: .created)
        },
        Route(method: .post, path: "/api/v1/enroll", access: .open) { request, context, center in
            let enroll = try await JSONBody.decode(EnrollRequest.self, from: request, context: context)
            let ca = center.ca
            let (device, certificate) = try await center.store.enroll(secret: enroll.token, name: enroll.name, address: context.address) { id in
                let issued = try ca.issueDeviceCertificate(csrPEM: enroll.csr, deviceID: id)
                return (issued.serial, issued.publicKeySHA256, try issued.certificate.serializeAsPEM().pemString)
            }
            center.logger.info("device enrolled", metadata: ["device": "\(device.id)", "name": "\(device.name)"])
            CenterMetrics.enrollments.increment()
            return try JSONBody.response(EnrollResponse(deviceID: device.id, certificate: certificate, caCertificate: ca.pem, userID: device.userID,
                                                        leaseKey: center.leaseSigner.publicKey),
                                         status: .created)
        },
        Route(method: .get, path: "/api/v1/devices", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.devices())
        },
        Route(method: .get, path: "/api/v1/devices/{id}", access: .admin(.read)) { _, context, center in
            try JSONBody.response(try await center.store.device(id: try context.parameters.require("id")))
        },
        Route(method: .post, path: "/api/v1/devices/{id}/retire", access: .admin(.retireDevices)) { _, context, center in
            try JSONBody.response(try await center.store.retire(deviceID: try context.parameters.require("id"),
                                                                by: .admin(context.admin!, address: context.address)))
        },
        Route(method: .post, path: "/api/v1/devices/{id}/measurements", access: .admin(.retireDevices)) { _, context, center in
            try JSONBody.response(try await center.store.approveMeasurements(deviceID: try context.parameters.require("id"),
                                                                             by: .admin(context.admin!, address: context.address)))
        },
        Route(method: .get, path: "/api/v1/audit", access: .admin(.readAudit)) { request, _, center in
            var filter = Store.AuditFilter()
            let query = request.uri.queryParameters
            filter.actor = query["actor"].map(String.init)
            filter.action = query["action"].map(String.init)
            filter.target = query["target"].map(String.init)
            func date(_ name: String) throws -> Date? {
                guard let text = query[Substring(name)].map(String.init) else { return nil }
                guard let date = ISO8601DateFormatter().date(from: text) else {
                    throw APIError.badRequest("\(name) must be an ISO 8601 time such as 2026-11-21T10:00:00Z")
                }
                return date
            }
            filter.since = try date("since")
            filter.until = try date("until")
            if let limit = query["limit"] {
                guard let value = Int(limit), value > 0, value <= 1000 else { throw APIError.badRequest("limit must be a number from 1 to 1000") }
                filter.limit = value
            }
            return try JSONBody.response(try await center.store.audit(filter))
        },
        Route(method: .post, path: "/api/v1/device/checkin", access: .device) { request, context, center in
            let status = try await JSONBody.decode(DeviceStatus.self, from: request, context: context)
            let serial = try await center.verifiedSerial(context)
            let answer = try await center.store.checkIn(certificateSerial: serial, status: status, address: context.address,
                                                        leaseSigner: center.leaseSigner, policySigner: center.policySigner)
            CenterMetrics.checkIns.increment()
            return try JSONBody.response(answer)
        },
        Route(method: .post, path: "/api/v1/device/commands/{id}", access: .device) { request, context, center in
            let report = try await JSONBody.decode(CommandReport.self, from: request, context: context)
            let device = try await center.authenticatedDevice(context)
            return try JSONBody.response(try await center.store.reportCommand(id: try context.parameters.require("id"), device: device,
                                                                              report: report, address: context.address))
        },
        Route(method: .post, path: "/api/v1/device/certificate", access: .device) { request, context, center in
            struct Renewal: Decodable { let csr: String }
            let renewal = try await JSONBody.decode(Renewal.self, from: request, context: context)
            let (device, serial) = try await center.authenticatedCertificate(context)
            let ca = center.ca
            let certificate = try await center.store.renewCertificate(device: device, presentedSerial: serial, address: context.address) { id in
                let issued = try ca.issueDeviceCertificate(csrPEM: renewal.csr, deviceID: id)
                return (issued.serial, issued.publicKeySHA256, try issued.certificate.serializeAsPEM().pemString)
            }
            struct Renewed: Encodable { let certificate: String; let caCertificate: String }
            return try JSONBody.response(Renewed(certificate: certificate, caCertificate: ca.pem))
        },
        Route(method: .put, path: "/api/v1/device/commands/{id}/diagnostics", access: .device) { request, context, center in
            let bundle = try await JSONBody.decode(DiagnosticsBundle.self, from: request, context: context)
            let device = try await center.authenticatedDevice(context)
            let record = try await center.store.storeDiagnostics(commandID: try context.parameters.require("id"), device: device,
                                                                 bundle: bundle, address: context.address)
            struct Stored: Encodable { let commandID: String; let size: Int; let uploaded: Date }
            return try JSONBody.response(Stored(commandID: record.commandID, size: record.size, uploaded: record.uploaded))
        },
    ] + desktopRoutes + commandRoutes
}

/// JSON in and out, with errors that name the field at fault.
enum JSONBody {
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, context: CenterContext) async throws -> T {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: context.maxUploadSize) } catch {
            throw APIError(.contentTooLarge, "too_large", "the request body is larger than \(context.maxUploadSize / 1024) KiB")
        }
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the body as application/json")
        }
        let data = Data(buffer: buffer)
        // NUL cannot be stored as text (PostgreSQL refuses it), raw or escaped.
        if data.contains(0) || data.range(of: Data("\\u0000".utf8)) != nil {
            throw APIError.badRequest("the body holds a NUL character; text fields may not contain one")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw APIError.badRequest("missing field '\(path(context.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(type, context) {
            throw APIError.badRequest("field '\(path(context.codingPath))' must be \(describe(type))")
        } catch let DecodingError.valueNotFound(type, context) {
            throw APIError.badRequest("field '\(path(context.codingPath))' must be \(describe(type)), not null")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw APIError.badRequest("field '\(path(context.codingPath))': \(context.debugDescription)")
        } catch {
            throw APIError.badRequest("the body is not valid JSON")
        }
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type, is UInt64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default: return "\(type)".hasPrefix("Array") ? "a list" : "an object"
        }
    }
}
