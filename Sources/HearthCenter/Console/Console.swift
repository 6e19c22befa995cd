import Crypto
import Foundation
import HTTPTypes
import HearthCore
import Hummingbird
import NIOCore

/// The management console: server-rendered pages under `/console`, behind the admin login, for
/// an IT admin's day. It calls the same store functions as the API, so validation, the audit log
/// and the second admin's approval are the API's own; what a role may not do is neither offered
/// on a page nor accepted when posted.
///
/// Sessions are the API's admin sessions, carried in a cookie that is Secure, HttpOnly and
/// SameSite=Strict, scoped to `/console`. Every form carries a CSRF token derived from the
/// session (a keyed hash of it), and a POST whose Origin names another site is refused.
enum Console {
    static let cookie = "hearth_console"

    /// A request that passed the login check.
    struct Call {
        let request: Request
        let context: CenterContext
        let center: Center
        let admin: Admin
        let token: String
        var form: [String: String] = [:]

        var csrf: String { Console.csrf(for: token) }
        var actor: Actor { .admin(admin, address: context.address) }
        var store: Store { center.store }
        func may(_ permission: Permission) -> Bool { admin.role.may(permission) }
    }

    static func register(on router: Router<CenterContext>, center: Center) {
        router.get("/console/style.css") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=300"],
                     body: .init(byteBuffer: ByteBuffer(string: ConsoleTemplates.style)))
        }
        router.get("/console/login") { request, context in
            if let token = request.cookies[cookie]?.value, token.count <= 128, try await center.store.session(token: token) != nil {
                return redirect("/console")
            }
            return html(render("login", title: "Log in", values: ["next": safeNext(request.uri.queryParameters["next"].map(String.init))]))
        }
        router.post("/console/login") { request, context in
            try await login(request, context: context, center: center)
        }
        page(router, center, .post, "/console/logout", permission: nil, allowWhileMustChange: true) { call in
            try await call.store.endSession(token: call.token, admin: call.admin, address: call.context.address)
            var response = redirect("/console/login")
            response.headers[values: .setCookie].append("\(cookie)=; Path=/console; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
            return response
        }
        page(router, center, .get, "/console/password", permission: nil, allowWhileMustChange: true) { call in
            passwordPage(call)
        }
        page(router, center, .post, "/console/password", permission: nil, allowWhileMustChange: true) { call in
            let new = call.form["new"] ?? ""
            guard new == call.form["repeat"] else { return passwordPage(call, error: "The two new passwords differ; type the same one twice.") }
            guard try await call.store.authenticate(username: call.admin.username, password: call.form["current"] ?? "") != nil else {
                return passwordPage(call, error: "The current password is wrong.", status: .forbidden)
            }
            do {
                try await call.store.changePassword(admin: call.admin, to: new, by: call.actor)
            } catch let error as APIError {
                return passwordPage(call, error: error.message, status: error.status)
            }
            // Changing the password ends every session, this one too: log in with the new one.
            var response = redirect("/console/login")
            response.headers[values: .setCookie].append("\(cookie)=; Path=/console; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
            return response
        }
        page(router, center, .get, "/console", permission: .read) { call in try await fleetPage(call) }
        page(router, center, .get, "/console/devices/:id", permission: .read) { call in
            try await devicePage(call, id: try call.context.parameters.require("id"))
        }
        page(router, center, .post, "/console/devices/:id/commands", permission: .commandDevices) { call in
            try await issueCommand(call, device: try call.context.parameters.require("id"))
        }
        page(router, center, .post, "/console/devices/:id/measurements", permission: .retireDevices) { call in
            let id = try call.context.parameters.require("id")
            return try await act(call, back: { try await devicePage($0, id: id, error: $1, status: $2) }) {
                _ = try await call.store.approveMeasurements(deviceID: id, by: call.actor)
                return redirect("/console/devices/\(id)?done=measurements")
            }
        }
        page(router, center, .get, "/console/commands", permission: .read) { call in try await commandsPage(call) }
        page(router, center, .get, "/console/commands/:id/diagnostics", permission: .read) { call in
            try await diagnosticsPage(call, command: try call.context.parameters.require("id"))
        }
        page(router, center, .post, "/console/commands/:id/approve", permission: .wipe) { call in
            try await act(call, back: { try await commandsPage($0, error: $1, status: $2) }) {
                _ = try await call.store.approveCommand(id: try call.context.parameters.require("id"), by: call.actor)
                return redirect("/console/commands?done=approved")
            }
        }
        page(router, center, .post, "/console/commands/:id/cancel", permission: .commandDevices) { call in
            try await act(call, back: { try await commandsPage($0, error: $1, status: $2) }) {
                _ = try await call.store.cancelCommand(id: try call.context.parameters.require("id"), by: call.actor)
                return redirect("/console/commands?done=cancelled")
            }
        }
        page(router, center, .get, "/console/directory", permission: .read) { call in try await directoryPage(call) }
        page(router, center, .post, "/console/groups", permission: .manageDirectory) { call in
            try await act(call, back: { try await directoryPage($0, error: $1, status: $2) }) {
                _ = try await call.store.createGroup(name: call.form["name"] ?? "", by: call.actor)
                return redirect("/console/directory?done=group")
            }
        }
        page(router, center, .post, "/console/users", permission: .manageDirectory) { call in
            try await act(call, back: { try await directoryPage($0, error: $1, status: $2) }) {
                let username = call.form["username"] ?? ""
                let display = call.form["displayName"].flatMap { $0.isEmpty ? nil : $0 } ?? username
                _ = try await call.store.createUser(username: username, displayName: display, email: call.form["email"] ?? "", by: call.actor)
                return redirect("/console/directory?done=user")
            }
        }
        page(router, center, .post, "/console/members", permission: .manageDirectory) { call in
            try await act(call, back: { try await directoryPage($0, error: $1, status: $2) }) {
                _ = try await call.store.setMembership(group: call.form["group"] ?? "", user: call.form["user"] ?? "", member: true, by: call.actor)
                return redirect("/console/directory?done=member")
            }
        }
        page(router, center, .get, "/console/desktops", permission: .read) { call in try await desktopsPage(call) }
        page(router, center, .post, "/console/desktops", permission: .manageDesktops) { call in
            try await act(call, back: { try await desktopsPage($0, error: $1, status: $2) }) {
                let form = call.form
                let body = VMDefinitionBody(
                    name: form["name"], role: try choice(form["role"], "Role", VMDefinition.Role.self) ?? .work,
                    image: form["image"] ?? "", channel: form["channel"].flatMap { $0.isEmpty ? nil : $0 },
                    cpus: try number(form["cpus"], "CPUs"), memoryMiB: try number(form["memoryMiB"], "Memory"),
                    localDiskBytes: nil, userDiskBytes: nil, network: try choice(form["network"], "Network", VMDefinition.NetworkMode.self),
                    backedUpDisks: nil)
                _ = try await call.store.saveVMDefinition(try body.record(name: nil), creating: true, by: call.actor)
                return redirect("/console/desktops?done=desktop")
            }
        }
        page(router, center, .post, "/console/assignments", permission: .manageDesktops) { call in
            try await act(call, back: { try await desktopsPage($0, error: $1, status: $2) }) {
                let target = (call.form["target"] ?? "").split(separator: "/", maxSplits: 1).map(String.init)
                guard target.count == 2 else { throw APIError.badRequest("Choose a group or a user to assign the desktop to.") }
                _ = try await call.store.setAssignment(vm: call.form["vm"] ?? "", kind: target[0], target: target[1], assigned: true, by: call.actor)
                return redirect("/console/desktops?done=assigned")
            }
        }
        page(router, center, .get, "/console/policies", permission: .read) { call in try await policiesPage(call) }
        page(router, center, .post, "/console/policies", permission: .manageDesktops) { call in
            try await act(call, back: { try await policiesPage($0, error: $1, status: $2) }) {
                let form = call.form
                let usb = (form["usbClasses"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                let policy = Policy(
                    leaseDays: try number(form["leaseDays"], "Lease"), checkInIntervalSeconds: try number(form["checkInIntervalSeconds"], "Check-in interval"),
                    usbClasses: usb.isEmpty ? nil : usb, network: try choice(form["network"], "Network", VMDefinition.NetworkMode.self),
                    backupSchedule: form["backupSchedule"].flatMap { $0.isEmpty ? nil : $0 },
                    minimumCPUs: try number(form["minimumCPUs"], "Minimum CPUs"), minimumMemoryMiB: try number(form["minimumMemoryMiB"], "Minimum memory"))
                try await call.store.setPolicy(scope: form["scope"] ?? "", policy, by: call.actor)
                return redirect("/console/policies?done=policy")
            }
        }
        page(router, center, .get, "/console/images", permission: .read) { call in try await imagesPage(call) }
        page(router, center, .post, "/console/images/:name/channel", permission: .manageImages) { call in
            try await act(call, back: { try await imagesPage($0, error: $1, status: $2) }) {
                _ = try await call.store.setChannel(image: try call.context.parameters.require("name"), channel: call.form["channel"] ?? "",
                                                    version: call.form["version"] ?? "", by: call.actor)
                return redirect("/console/images?done=channel")
            }
        }
        page(router, center, .get, "/console/enrollment", permission: .read) { call in try await enrollmentPage(call) }
        page(router, center, .post, "/console/enrollment", permission: .enrollDevices) { call in
            try await act(call, back: { try await enrollmentPage($0, error: $1, status: $2) }) {
                let hours = try number(call.form["validHours"], "Valid for") ?? 24
                guard (1...24 * 30).contains(hours) else { throw APIError.badRequest("Valid for: from 1 to 720 hours.") }
                let user = call.form["user"].flatMap { $0.isEmpty ? nil : $0 }
                let (token, secret) = try await call.store.createEnrollmentToken(userID: user, note: call.form["note"] ?? "",
                                                                                 validFor: TimeInterval(hours) * 3600, by: call.actor)
                // Shown once, on this answer only: not a redirect, and never stored in clear.
                return try await enrollmentPage(call, secret: (secret, token.expires))
            }
        }
        page(router, center, .get, "/console/audit", permission: .readAudit) { call in try await auditPage(call) }
    }

    // MARK: Plumbing

    /// Registers a page: login check (a redirect to the login page), role check (a 403 page
    /// saying which permission is missing), and for POST the form and its CSRF token.
    static func page(_ router: Router<CenterContext>, _ center: Center, _ method: HTTPRequest.Method, _ path: RouterPath,
                     permission: Permission?, allowWhileMustChange: Bool = false,
                     _ handler: @escaping @Sendable (Call) async throws -> Response) {
        router.on(path, method: method) { request, context in
            var response = try await handle(request, context: context, center: center, method: method, permission: permission,
                                            allowWhileMustChange: allowWhileMustChange, handler: handler)
            response.headers[.cacheControl] = "no-store"
            return response
        }
    }

    private static func handle(_ request: Request, context: CenterContext, center: Center, method: HTTPRequest.Method, permission: Permission?,
                               allowWhileMustChange: Bool, handler: @Sendable (Call) async throws -> Response) async throws -> Response {
        guard let token = request.cookies[cookie]?.value, token.count <= 128,
              let admin = try await center.store.session(token: token) else {
            if method == .get { return redirect("/console/login?next=\(percentEncoded(request.uri.path))") }
            return html(render("message", title: "Logged out", values: ["error": "Your session ended; log in again and repeat what you did.",
                                                                         "back": "/console/login", "backLabel": "Log in"]), status: .unauthorized)
        }
        var call = Call(request: request, context: context, center: center, admin: admin, token: token)
        if method == .post {
            if let origin = request.headers[.origin], let host = request.head.authority, origin != "https://\(host)" {
                return refusal(call, "This form was sent from another site (\(origin)); nothing was changed.")
            }
            call.form = try await form(request, context: context)
            guard let sent = call.form["csrf"], constantTimeEqual(sent, call.csrf) else {
                return refusal(call, "This form is out of date or did not come from this console; nothing was changed. Reload the page and try again.")
            }
        }
        if admin.mustChangePassword, !allowWhileMustChange {
            return redirect("/console/password")
        }
        if let permission, !admin.role.may(permission) {
            return refusal(call, "The \(admin.role.rawValue) role may not do this (it needs the \(permission.rawValue) permission); nothing was changed.")
        }
        do {
            return try await handler(call)
        } catch let error as APIError {
            return render("message", call, title: "Not done", current: "", values: ["back": "/console", "backLabel": "Back to the fleet"],
                          error: error.message, status: error.status)
        }
    }

    /// Runs a change; a refusal from the store (validation, a conflict, a missing approval) is
    /// shown on the page the form came from, with its status.
    static func act(_ call: Call, back: (Call, String, HTTPResponse.Status) async throws -> Response,
                    _ change: () async throws -> Response) async throws -> Response {
        do {
            return try await change()
        } catch let error as APIError {
            return try await back(call, error.message, error.status)
        }
    }

    static func login(_ request: Request, context: CenterContext, center: Center) async throws -> Response {
        // A login posted from another site (login CSRF) is refused like any other form.
        if let origin = request.headers[.origin], let host = request.head.authority, origin != "https://\(host)" {
            return html(render("login", title: "Log in", values: ["error": "This login was sent from another site (\(origin)); log in here.", "next": "/console"]),
                        status: .forbidden)
        }
        let form = try await form(request, context: context)
        let username = form["username"] ?? "", next = safeNext(form["next"])
        func again(_ message: String, _ status: HTTPResponse.Status) -> Response {
            html(render("login", title: "Log in", values: ["error": message, "username": username, "next": next]), status: status)
        }
        let now = center.store.now()
        if let wait = center.loginThrottle.wait(username: username, address: context.address, now: now) {
            return again("Too many failed logins for this account or from this address; try again in \(Int(wait / 60) + 1) minute(s).", .tooManyRequests)
        }
        guard let admin = try await center.store.authenticate(username: username, password: form["password"] ?? "") else {
            center.loginThrottle.failed(username: username, address: context.address, now: now)
            CenterMetrics.failedLogins.increment()
            return again("Wrong username or password.", .unauthorized)
        }
        center.loginThrottle.succeeded(username: username)
        let session = try await center.store.createSession(for: admin, address: context.address)
        var response = redirect(admin.mustChangePassword ? "/console/password" : next)
        let age = max(0, Int(session.expires.timeIntervalSince(now)))
        response.headers[values: .setCookie].append("\(cookie)=\(session.token); Path=/console; Max-Age=\(age); Secure; HttpOnly; SameSite=Strict")
        return response
    }

    /// Only a path inside the console: never another site after login.
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/console"), !next.contains("//"), !next.contains("\\"), !next.contains(".."), next.count < 512 else { return "/console" }
        return next
    }

    static func csrf(for token: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("hearth-console-csrf".utf8), using: SymmetricKey(data: Data(token.utf8)))
        return Secrets.hex(mac)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// An `application/x-www-form-urlencoded` body.
    static func form(_ request: Request, context: CenterContext) async throws -> [String: String] {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: 64 * 1024) } catch {
            throw APIError(.contentTooLarge, "too_large", "the form is larger than 64 KiB")
        }
        var fields: [String: String] = [:]
        for pair in String(buffer: buffer).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            guard let key = parts.first, !key.contains("\0") else { continue }
            let value = parts.count > 1 ? parts[1] : ""
            guard !value.contains("\0") else { throw APIError.badRequest("a form field holds a NUL character") }
            fields[key] = value
        }
        return fields
    }

    static func number(_ text: String?, _ label: String) throws -> Int? {
        guard let text = text?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        guard let value = Int(text) else { throw APIError.badRequest("\(label) must be a whole number, not \"\(text)\".") }
        return value
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ text: String?, _ label: String, _ type: T.Type) throws -> T? where T.RawValue == String {
        guard let text, !text.isEmpty else { return nil }
        guard let value = T(rawValue: text) else {
            throw APIError.badRequest("\(label) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        return value
    }

    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=?+"))) ?? "/console"
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[.xContentTypeOptions] = "nosniff"
        // same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form posts.
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func render(_ template: String, title: String, values: [String: Any]) -> String {
        var context = values
        context["title"] = title
        return ConsoleTemplates.library.render(context, withTemplate: template) ?? "template \(template) is missing"
    }

    /// A page for a signed-in admin: the layout's navigation and who is signed in.
    static func render(_ template: String, _ call: Call, title: String, current: String, values: [String: Any],
                       error: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        var context = values
        let links: [(String, String, Permission)] = [
            ("/console", "Fleet", .read), ("/console/commands", "Commands", .read), ("/console/directory", "Users and groups", .read),
            ("/console/desktops", "Desktops", .read), ("/console/policies", "Policies", .read), ("/console/images", "Images", .read),
            ("/console/enrollment", "Enrollment", .read), ("/console/audit", "Audit log", .readAudit),
        ]
        context["nav"] = links.filter { call.may($0.2) }.map { ["href": $0.0, "label": $0.1, "current": $0.0 == current] as [String: Any] }
        // Inside the section, nav and csrf resolve from the page's own context.
        context["signedIn"] = ["username": call.admin.username, "role": call.admin.role.rawValue]
        context["csrf"] = call.csrf
        if let error { context["error"] = error }
        if let done = call.request.uri.queryParameters["done"].map(String.init), let notice = notices[done] { context["notice"] = notice }
        return html(render(template, title: title, values: context), status: status)
    }

    static func refusal(_ call: Call, _ message: String) -> Response {
        render("message", call, title: "Not done", current: "", values: ["back": "/console", "backLabel": "Back to the fleet"],
               error: message, status: .forbidden)
    }

    /// What a redirect after a change says; fixed texts, so a link cannot make the console say
    /// anything else.
    static let notices: [String: String] = [
        "approved": "Approved: the device gets the command at its next check-in.",
        "cancelled": "The command was cancelled.",
        "group": "Group created.", "user": "User created.", "member": "User added to the group.",
        "desktop": "Desktop created.", "assigned": "Desktop assigned.", "policy": "Policy saved.",
        "channel": "Channel moved: devices on it take the version at their next check-in.",
        "command": "Command sent: the device gets it at its next check-in.",
        "wipe-approval": "Wipe asked: a second admin must approve it on the Commands page before the device gets it.",
        "measurements": "Measurements approved: the device gets a policy signed for them at its next check-in.",
    ]

    static func passwordPage(_ call: Call, error: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        render("password", call, title: "Change your password", current: "", values: ["mustChange": call.admin.mustChangePassword],
               error: error, status: status)
    }
}
