import AsyncHTTPClient
import Foundation
import HearthCenter
import NIOHTTP1
import Testing

/// Every route against every kind of caller: no credentials, each admin role, a device's
/// certificate, another device's certificate. A refusal is 401 or 403 and changes nothing.
@Suite(.serialized) struct AuthorizationTests {
    /// What a route's access lets each caller do.
    static func allowed(_ access: Access, role: AdminRole?) -> Bool {
        switch access {
        case .open: return true
        case .anyAdmin: return role != nil
        case let .admin(permission): return role?.may(permission) ?? false
        case .device: return false
        }
    }

    @Test(arguments: Backend.allCases)
    func everyRoleAndEveryDeviceAgainstEveryRoute(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            var tokens: [AdminRole: String] = [.owner: owner]
            for role in [AdminRole.operator, .helpdesk, .auditor] {
                tokens[role] = try await harness.admin(role.rawValue, by: owner)
            }
            _ = try await harness.call(.POST, "/api/v1/users", json: ["username": "alice"], token: owner)
            _ = try await harness.call(.POST, "/api/v1/groups", json: ["name": "staff"], token: owner)
            _ = try await harness.call(.POST, "/api/v1/images", json: ["name": "debian"], token: owner)
            _ = try await harness.call(.POST, "/api/v1/images/debian/versions", json: ["version": "1"], token: owner)
            _ = try await harness.call(.PUT, "/api/v1/images/debian/channels/stable", json: ["version": "1"], token: owner)
            _ = try await harness.call(.POST, "/api/v1/vms", json: ["name": "work", "role": "work", "image": "debian"], token: owner)
            let (device, deviceID) = try await harness.enrollDevice(owner: owner, user: "alice")
            let deviceClient = try harness.deviceClient(device)
            // A lock to cancel, a wipe (issued by an admin outside the matrix) to approve, and a
            // delivered command for the device to report on.
            let lock = try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "lock"], token: owner)
            let issuer = try await harness.admin("operator", by: owner)
            // An admin for the owner to change in the matrix.
            let spare = "spare-\(UUID().uuidString.prefix(6).lowercased())"
            _ = try await harness.call(.POST, "/api/v1/admins", json: ["username": spare, "password": "a long password 1", "role": "helpdesk"], token: owner)
            let wipe = try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "wipe"], token: issuer)
            #expect(wipe.object["state"] as? String == "awaitingApproval")
            let diagnostics = try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "collectDiagnostics"], token: owner)
            _ = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: deviceClient)

            for route in Center.routes where route.path != "/api/v1/session" || route.method != .post {
                var path = route.path
                let values: [String: String] = [
                    "{user}": "alice", "{name}": route.path.contains("images") ? "debian" : "work", "{channel}": "stable",
                    "{kind}": "group", "{target}": "staff", "{scope}": "group:staff",
                    "{id}": route.path.contains("groups") ? "staff" : route.path.contains("devices") ? deviceID
                        : route.path.contains("admins") ? spare
                        : route.path.contains("approve") ? (wipe.object["id"] as? String ?? "")
                        : route.path.contains("cancel") ? (lock.object["id"] as? String ?? "")
                        : route.path.contains("device/commands") ? (diagnostics.object["id"] as? String ?? "") : "alice",
                ]
                for (key, value) in values { path = path.replacingOccurrences(of: key, with: value) }
                let method = HTTPMethod(rawValue: route.method.rawValue)
                // Bodies that would be accepted, so that a refusal can only come from authorization.
                let unique = "x\(UUID().uuidString.prefix(6).lowercased())"
                let body: Any? = switch (route.method, route.path) {
                case (.post, "/api/v1/device/checkin"): CenterHarness.status
                case (.post, "/api/v1/enrollment-tokens"): ["note": "matrix"]
                case (.post, "/api/v1/users"): ["username": unique]
                case (.post, "/api/v1/groups"), (.post, "/api/v1/images"): ["name": unique]
                case (.post, "/api/v1/admins"): ["username": unique, "password": "a long password 1", "role": "auditor"]
                case (.post, "/api/v1/me/password"): ["current": "wrong password 00", "new": "another password 1"]
                case (.post, "/api/v1/enroll"): ["token": "hte_unknown", "csr": "x", "name": "x"]
                case (.post, "/api/v1/images/{name}/versions"): ["version": unique]
                case (.put, "/api/v1/images/{name}/channels/{channel}"): ["version": "1"]
                case (.post, "/api/v1/vms"): ["name": unique, "role": "personal", "image": "debian"]
                case (.put, "/api/v1/vms/{name}"): ["role": "work", "image": "debian", "cpus": 2]
                case (.put, "/api/v1/policies/{scope}"): ["leaseDays": 7]
                case (.put, "/api/v1/settings"): ["wipeNeedsApproval": true]
                case (.patch, "/api/v1/admins/{id}"): ["role": "auditor"]
                case (.post, "/api/v1/devices/{id}/commands"): ["kind": "restartVM", "vm": "work"]
                case (.post, "/api/v1/device/commands/{id}"): ["state": "acknowledged"]
                case (.post, "/api/v1/device/certificate"): ["csr": try DeviceIdentity().csr()]
                case (.put, "/api/v1/device/commands/{id}/diagnostics"): ["collected": "2026-11-21T10:00:00Z", "summary": "matrix", "files": [Any]()]
                default: route.method == .post || route.method == .put ? [String: Any]() : nil
                }
                // Routes that end what later calls need run last, below.
                if route.path == "/api/v1/session" || route.path == "/api/v1/me/password" || route.path.hasSuffix("/retire") || route.method == .delete { continue }

                let anonymous = try await harness.call(method, path, json: body)
                if route.access == .open {
                    #expect(anonymous.status < 500, "\(route.method) \(route.path) anonymous: \(anonymous.status)")
                } else {
                    #expect(anonymous.status == 401, "\(route.method) \(route.path) without credentials: \(anonymous.status)")
                }
                for role in AdminRole.allCases {
                    let answer = try await harness.call(method, path, json: body, token: tokens[role])
                    if route.access == .open {
                        #expect(answer.status < 500, "\(route.method) \(route.path) as \(role): \(answer.status)")
                    } else if Self.allowed(route.access, role: role) {
                        #expect(answer.status != 401 && answer.status != 403 && answer.status < 500,
                                "\(route.method) \(route.path) as \(role): \(answer.status) \(answer.errorMessage)")
                    } else {
                        #expect(answer.status == 403 || (route.access == .device && answer.status == 401),
                                "\(route.method) \(route.path) as \(role) should be refused: \(answer.status)")
                    }
                }
                // A device certificate opens the device routes and nothing an admin has.
                let asDevice = try await harness.call(method, path, json: body, client: deviceClient)
                if route.access == .device {
                    #expect(asDevice.status == 200, "\(route.path) as the device: \(asDevice.status) \(asDevice.errorMessage)")
                } else if route.access != .open {
                    #expect(asDevice.status == 401, "\(route.method) \(route.path) with a device certificate: \(asDevice.status)")
                }
            }

            // Destructive routes: refused for the roles without the permission, and nothing changed.
            for role in AdminRole.allCases where !role.may(.retireDevices) {
                #expect(try await harness.call(.POST, "/api/v1/devices/\(deviceID)/retire", token: tokens[role]).status == 403)
            }
            for role in AdminRole.allCases where !role.may(.manageDirectory) {
                #expect(try await harness.call(.DELETE, "/api/v1/users/alice", token: tokens[role]).status == 403)
                #expect(try await harness.call(.DELETE, "/api/v1/groups/staff/members/alice", token: tokens[role]).status == 403)
            }
            #expect(try await harness.call(.GET, "/api/v1/users/alice", token: owner).status == 200)
            #expect(try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: deviceClient).status == 200)
            // One device's certificate is only ever that device: its check-in lands on its own record.
            let (other, otherID) = try await harness.enrollDevice(owner: owner)
            let otherClient = try harness.deviceClient(other)
            let answer = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: otherClient)
            #expect(answer.object["deviceID"] as? String == otherID)
            #expect(otherID != deviceID)

            // Every role may change its own password (which ends its sessions) and log out.
            for role in AdminRole.allCases {
                let current = role == .owner ? "owner-password-1" : "second-password-2"
                let changed = try await harness.call(.POST, "/api/v1/me/password", json: ["current": current, "new": "third-password-3"], token: tokens[role])
                #expect(changed.status == 204, "\(role) changing its password: \(changed.status) \(changed.errorMessage)")
            }
        }
    }

    @Test func aCertificateFromAnotherCAIsNotADevice() async throws {
        try await CenterHarness.with(.sqlite) { harness in
            try await CenterHarness.with(.sqlite) { stranger in
                // A device enrolled at another Center presents a well-formed certificate from the wrong CA.
                let (identity, _) = try await stranger.enrollDevice(owner: try await stranger.ownerToken())
                let client = try harness.deviceClient(identity)
                do {
                    let answer = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: client)
                    #expect(answer.status == 401 && answer.errorMessage.contains("not issued by this Center"))
                } catch {
                    // Or the handshake itself refuses the certificate: no request reaches the Center.
                }
            }
        }
    }
}
