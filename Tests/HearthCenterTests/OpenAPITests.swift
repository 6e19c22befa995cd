import Foundation
import HearthCenter
import Testing

/// docs' API description and the server agree: the same routes, the same security.
@Suite struct OpenAPITests {
    /// (path, method) → security scheme ("" for none) parsed from the document's `paths:`.
    static func documented() -> [String: String] {
        var result: [String: String] = [:]
        var path: String?
        var method: String?
        var inPaths = false
        for line in OpenAPIDocument.text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":"),
                      ["get", "post", "put", "delete", "patch"].contains(line.trimmingCharacters(in: .whitespaces).dropLast()) {
                method = String(line.trimmingCharacters(in: .whitespaces).dropLast()).uppercased()
                if let path, let method { result["\(method) \(path)"] = "?" }
            } else if line.hasPrefix("      security:"), let path, let method {
                let value = line.replacingOccurrences(of: "      security:", with: "").trimmingCharacters(in: .whitespaces)
                result["\(method) \(path)"] = value == "[]" ? "" : (value.contains("device") ? "device" : "session")
            }
        }
        return result
    }

    @Test func theDocumentNamesExactlyTheRoutesServedWithTheirSecurity() {
        let documented = Self.documented()
        var served: [String: String] = [:]
        for route in Center.routes {
            let security = switch route.access {
            case .open: ""
            case .device: "device"
            case .anyAdmin, .admin: "session"
            }
            served["\(route.method.rawValue) \(route.path)"] = security
        }
        // Served by RepositoryMiddleware rather than a route: devices, or admins.
        served["GET /repository/{path}"] = "device"

        #expect(Set(documented.keys) == Set(served.keys), "only documented: \(Set(documented.keys).subtracting(served.keys)); only served: \(Set(served.keys).subtracting(documented.keys))")
        for (key, security) in served {
            #expect(documented[key] == security, "\(key): documented security \(documented[key] ?? "none"), served \(security)")
        }
    }

    @Test func theDocumentIsServed() async throws {
        try await CenterHarness.with(.sqlite) { harness in
            let answer = try await harness.call(.GET, "/openapi.yaml")
            #expect(answer.status == 200)
            #expect(String(decoding: answer.body, as: UTF8.self) == OpenAPIDocument.text)
            let health = try await harness.call(.GET, "/health")
            #expect(health.status == 200 && health.object["status"] as? String == "ok")
            // A failed login shows in the metrics, beside Hummingbird's request counters.
            _ = try await harness.call(.POST, "/api/v1/session", json: ["username": "owner", "password": "not the password"])
            let metrics = String(decoding: try await harness.call(.GET, "/metrics").body, as: UTF8.self)
            #expect(metrics.contains("hearth_center_failed_logins_total"))
            #expect(metrics.contains("hb_requests"))
        }
    }
}
