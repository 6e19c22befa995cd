import AsyncHTTPClient
import Foundation
@testable import HearthCenter
import NIOCore
import NIOSSL
import Testing

/// The management console in a real browser (headless Chromium) against a real Center: an IT
/// admin's day from the first login to an approved wipe, and an auditor who may look but not act.
@Suite(.serialized) struct ConsoleTests {
    /// Where the screenshots the README shows are written.
    static let screenshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/screenshots").path

    @Test(.enabled(if: Browser.available, "needs Debian's chromium and chromium-driver (scripts/setup-host test installs them)"))
    func anAdminRunsTheFleetFromTheBrowserAndAnAuditorIsRefused() async throws {
        try await CenterHarness.with(.sqlite) { harness in
            let browser = try await Browser()
            do {
                try await Self.day(harness, browser)
            } catch {
                await browser.quit()
                throw error
            }
            await browser.quit()
        }
    }

    static func day(_ harness: CenterHarness, _ browser: Browser) async throws {
        let base = harness.base
        // First login with the one-time password: the console asks for a new one first.
        try await browser.go("\(base)/console")
        #expect(try await browser.url.hasSuffix("/console/login?next=/console"))
        try await screenshot(browser, "login")
        try await logIn(browser, "owner", harness.ownerPassword)
        #expect(try await browser.title == "Change your password · Hearth Center")
        try await browser.type("#current", harness.ownerPassword)
        try await browser.type("#new", "owner-password-1")
        try await browser.type("#repeat", "owner-password-1")
        try await browser.click("form.card button")
        try await logIn(browser, "owner", "owner-password-1")
        #expect(try await browser.title == "Fleet · Hearth Center")

        // The image comes from `hearth image publish`; the rest is the admin's, in the browser.
        let owner = try await harness.login("owner", "owner-password-1")
        _ = try await harness.call(.POST, "/api/v1/images", json: ["name": "debian"], token: owner)
        _ = try await harness.call(.POST, "/api/v1/images/debian/versions", json: ["version": "1", "notes": "bookworm"], token: owner)
        _ = try await harness.call(.PUT, "/api/v1/images/debian/channels/stable", json: ["version": "1"], token: owner)
        for (name, role) in [("approver", "operator"), ("watcher", "auditor")] {
            _ = try await harness.call(.POST, "/api/v1/admins", json: ["username": name, "password": "first-password-1", "role": role], token: owner)
            let first = try await harness.login(name, "first-password-1")
            _ = try await harness.call(.POST, "/api/v1/me/password", json: ["current": "first-password-1", "new": "\(name)-password-2"], token: first)
        }

        // A group and a user, and the user in the group.
        try await browser.click("nav a[href='/console/directory']")
        try await browser.type("#group-name", "staff")
        try await browser.click("form[action='/console/groups'] button")
        #expect(try await browser.text(".notice") == "Group created.")
        try await browser.type("#user-name", "alice")
        try await browser.type("#user-display", "Alice Example")
        try await browser.click("form[action='/console/users'] button")
        try await browser.choose("#member-user", "alice")
        try await browser.choose("#member-group", "staff")
        try await browser.click("form[action='/console/members'] button")
        #expect(try await browser.text("#groups-h + table tbody").contains("staff alice"))
        // A name the Center refuses is said on the page, and nothing is made.
        try await browser.type("#group-name", "no spaces allowed")
        try await browser.click("form[action='/console/groups'] button")
        #expect(try await browser.text("[role=alert]").contains("name"))
        #expect(try await harness.call(.GET, "/api/v1/groups", token: owner).array.count == 1)
        try await screenshot(browser, "users-and-groups")

        // A work desktop, assigned to the group.
        try await browser.click("nav a[href='/console/desktops']")
        try await browser.type("#vm-name", "work")
        try await browser.type("#vm-image", "debian")
        try await browser.type("#vm-cpus", "two")
        try await browser.click("form[action='/console/desktops'] button")
        #expect(try await browser.text("[role=alert]") == "CPUs must be a whole number, not \"two\".")
        #expect(try await browser.run("return document.getElementById('vm-name').value") as? String == "work", "the form keeps what was typed")
        try await browser.type("#vm-cpus", "2")
        try await browser.choose("#vm-network", "none")
        try await browser.click("form[action='/console/desktops'] button")
        #expect(try await browser.text(".notice") == "Desktop created.")
        try await browser.choose("#assign-vm", "work")
        try await browser.choose("#assign-target", "group staff")
        try await browser.click("form[action='/console/assignments'] button")
        #expect(try await browser.text("main table tbody").contains("group staff"))
        let desktops = try await harness.call(.GET, "/api/v1/vms/work", token: owner).object
        #expect(desktops["groups"] as? [String] == ["staff"] && desktops["network"] as? String == "none")
        try await screenshot(browser, "desktops")

        // A policy for the group.
        try await browser.click("nav a[href='/console/policies']")
        try await browser.choose("#p-scope", "group staff")
        try await browser.type("#p-lease", "14")
        try await browser.type("#p-checkin", "300")
        try await browser.click("form[action='/console/policies'] button")
        #expect(try await browser.text(".notice") == "Policy saved.")
        #expect((try await harness.call(.GET, "/api/v1/policies", token: owner).object["group:staff"] as? [String: Any])?["leaseDays"] as? Int == 14)

        // An enrollment token for alice; a device enrolls with it and checks in.
        try await browser.click("nav a[href='/console/enrollment']")
        try await browser.choose("#t-user", "alice")
        try await browser.type("#t-note", "Alice's laptop")
        try await browser.click("form[action='/console/enrollment'] button")
        let secret = try await browser.text("#secret")
        #expect(secret.count >= 20)
        var identity = DeviceIdentity()
        let enrolled = try await harness.call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": try identity.csr(), "name": "alice-laptop"])
        #expect(enrolled.status == 201, "\(enrolled.errorMessage)")
        identity.certificatePEM = enrolled.object["certificate"] as? String
        let device = try #require(enrolled.object["deviceID"] as? String)
        let laptop = try harness.deviceClient(identity)
        var status = CenterHarness.status
        status["updates"] = [["image": "debian@2", "state": "pulling", "bytesFetched": 3 << 20, "bytesToFetch": 12 << 20, "virtualSize": 8 << 30]]
        let checkIn = try await harness.call(.POST, "/api/v1/device/checkin", json: status, client: laptop)
        #expect(checkIn.status == 200)

        try await browser.click("nav a[href='/console']")
        let fleet = try await browser.text("#devices-h + table tbody")
        #expect(fleet.contains("alice-laptop") && fleet.contains("alice") && fleet.contains("online") && fleet.contains("14 days"), "\(fleet)")
        try await screenshot(browser, "fleet")
        try await browser.click("a[href='/console/devices/\(device)']")
        let inventory = try await browser.text("#inventory-h + dl")
        #expect(inventory.contains("2 × QEMU Virtual CPU") && inventory.contains("8.0 GiB") && inventory.contains("tcg"), "\(inventory)")
        #expect(try await browser.text("#vms-h + table tbody").contains("work running debian@1"))
        #expect(try await browser.text("#vms-h ~ ul").contains("debian@2: pulling, 3.0 MiB of 12.0 MiB"))

        // Diagnostics: asked here, collected by the device, read here.
        try await browser.click("form input[value=collectDiagnostics] + button")
        #expect(try await browser.text(".notice").hasPrefix("Command sent"))
        let delivered = try await harness.call(.POST, "/api/v1/device/checkin", json: status, client: laptop)
        let ask = try #require((delivered.object["commands"] as? [[String: Any]])?.first { $0["kind"] as? String == "collectDiagnostics" }?["id"] as? String)
        let bundle: [String: Any] = ["collected": "2026-11-21T10:00:00Z", "summary": "lease: valid until 2026-12-05",
                                     "files": [["path": "/var/lib/hearth/run/work/console.log", "size": 20, "text": "HEARTH-BOOT-MARKER\n"]]]
        #expect(try await harness.call(.PUT, "/api/v1/device/commands/\(ask)/diagnostics", json: bundle, client: laptop).status == 200)
        _ = try await harness.call(.POST, "/api/v1/device/commands/\(ask)", json: ["state": "completed", "result": "uploaded"], client: laptop)
        try await browser.go("\(base)/console/devices/\(device)")
        try await browser.click("a[href='/console/commands/\(ask)/diagnostics']")
        let diagnostics = try await browser.mainText
        #expect(diagnostics.contains("lease: valid until 2026-12-05") && diagnostics.contains("HEARTH-BOOT-MARKER"), "\(diagnostics)")
        try await browser.go("\(base)/console/devices/\(device)")

        // A wipe needs the device's name typed, then a second admin.
        try await browser.type("#confirm", "alice-laptop-typo")
        try await browser.click("form.danger button")
        #expect(try await browser.text("[role=alert]").contains("type the device's name (alice-laptop) exactly"))
        try await browser.type("#confirm", "alice-laptop")
        try await browser.click("form.danger button")
        #expect(try await browser.text(".notice").contains("a second admin must approve it"))
        #expect(try await browser.text("#history-h + table tbody").contains("wipe awaiting a second admin's approval"))
        try await screenshot(browser, "device")
        // Its issuer is not offered the approval.
        try await browser.click("nav a[href='/console/commands']")
        #expect(try await browser.elements("form[action$='/approve']") == 0)
        try await browser.click("header form.who button")
        #expect(try await browser.url.hasSuffix("/console/login"))

        try await logIn(browser, "approver", "approver-password-2")
        try await browser.click("nav a[href='/console/commands']")
        try await screenshot(browser, "commands")
        try await browser.click("form[action$='/approve'] button")
        #expect(try await browser.text(".notice").hasPrefix("Approved"))
        let wipe = try await harness.call(.GET, "/api/v1/devices/\(device)/commands", token: owner).array.first
        #expect(wipe?["state"] as? String == "pending" && wipe?["approvedBy"] as? String == "admin:approver")
        try await browser.go("\(base)/console/audit?action=command.approve")
        let audit = try await browser.text("main table tbody")
        #expect(audit.contains("admin:approver") && audit.contains("command.approve"), "\(audit)")
        #expect(try await browser.elements("main table tbody tr") == 1, "the filter shows only approvals")
        try await browser.go("\(base)/console/audit")
        try await screenshot(browser, "audit")

        // Images: a channel is promoted, then rolled back.
        _ = try await harness.call(.POST, "/api/v1/images/debian/versions", json: ["version": "2", "notes": "with vim"], token: owner)
        try await browser.click("nav a[href='/console/images']")
        try await browser.choose("#ver-debian", "2")
        try await browser.click("form[action='/console/images/debian/channel'] button")
        #expect(try await browser.mainText.contains("stable → 2"))
        try await browser.choose("#ver-debian", "1")
        try await browser.click("form[action='/console/images/debian/channel'] button")
        #expect(try await browser.mainText.contains("stable → 1"))
        try await screenshot(browser, "images")

        // What the device reports reaches the fleet's alerts: its kernel changed since its
        // measurements were first trusted.
        status["measurements"] = MeasurementTests.report([("engine", "engine 1.0"), ("kernel", "kernel 6.1")])
        _ = try await harness.call(.POST, "/api/v1/device/checkin", json: status, client: laptop)
        status["security"] = "tampered"
        status["measurements"] = MeasurementTests.report([("engine", "engine 1.0"), ("kernel", "kernel 6.2")])
        status["updates"] = [["image": "debian@2", "state": "failed", "bytesFetched": 0, "bytesToFetch": 12 << 20, "virtualSize": 8 << 30, "error": "disk full"]]
        _ = try await harness.call(.POST, "/api/v1/device/checkin", json: status, client: laptop)
        try await browser.click("nav a[href='/console']")
        let alerts = try await browser.text("#alerts-h + ul")
        #expect(alerts.contains("alice-laptop: tampered") && alerts.contains("changed: kernel") && alerts.contains("update to debian@2 failed: disk full"), "\(alerts)")
        // An operator who expects the new kernel approves it from the device's page.
        try await browser.go("\(base)/console/devices/\(device)")
        try await browser.click("form[action$='/measurements'] button")
        #expect(try await browser.text(".notice").hasPrefix("Measurements approved"))
        #expect(try await browser.elements("form[action$='/measurements']") == 0, "nothing left to approve")
        let signed = try await harness.call(.POST, "/api/v1/device/checkin", json: status, client: laptop)
        #expect(signed.object["securityPolicy"] != nil, "the next check-in is signed for the approved measurements")
        try await browser.click("header form.who button")

        // The auditor sees, and is offered no action.
        try await logIn(browser, "watcher", "watcher-password-2")
        try await browser.go("\(base)/console/devices/\(device)")
        #expect(try await browser.text("#inventory-h + dl").contains("QEMU Virtual CPU"))
        #expect(try await browser.elements("form[action$='/commands']") == 0, "no command forms for an auditor")
        try await browser.go("\(base)/console/directory")
        #expect(try await browser.elements("form[action='/console/groups']") == 0)
        // A form made by hand in the page (with the auditor's own CSRF token) is refused too.
        try await browser.run("""
            window.hearthOldPage = true;
            const form = document.createElement('form'); form.method = 'post'; form.action = '/console/groups';
            for (const [name, value] of [['csrf', document.querySelector('input[name=csrf]').value], ['name', 'auditors-were-here']]) {
              const input = document.createElement('input'); input.name = name; input.value = value; form.appendChild(input);
            }
            document.body.appendChild(form); form.submit();
            """)
        try await browser.waitForNewPage()
        #expect(try await browser.title == "Not done · Hearth Center")
        #expect(try await browser.text("[role=alert]").contains("The auditor role may not do this"))
        #expect(try await harness.call(.GET, "/api/v1/groups", token: owner).array.count == 1, "the auditor's group was not made")
    }

    static func logIn(_ browser: Browser, _ username: String, _ password: String) async throws {
        if try await !browser.url.contains("/console/login") { try await browser.go(try await browser.url.components(separatedBy: "/console")[0] + "/console/login") }
        try await browser.type("#username", username)
        try await browser.type("#password", password)
        try await browser.click("form button")
    }

    /// Saves the page for the README, and checks what a screen reader needs of it: landmarks,
    /// one h1, and a label for every field.
    static func screenshot(_ browser: Browser, _ name: String) async throws {
        try await browser.screenshot(to: "\(screenshots)/console-\(name).png")
        let unlabelled = try await browser.run("""
            return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.name)
            """) as? [Any] ?? ["?"]
        #expect(unlabelled.isEmpty, "fields without a label on \(name): \(unlabelled)")
        let mains = try await browser.elements("main"), headings = try await browser.elements("h1")
        #expect(mains == 1 && headings == 1, "landmarks on \(name)")
        if name != "login" { #expect(try await browser.elements("nav[aria-label]") == 1, "navigation landmark on \(name)") }
    }

    /// The session cookie cannot be read by scripts or sent by other sites, and a form without
    /// its CSRF token changes nothing (checked without a browser, as an attacker's page would send).
    @Test func theSessionCookieIsLockedDownAndFormsNeedTheirToken() async throws {
        try await CenterHarness.with(.sqlite) { harness in
            let owner = try await harness.ownerToken()
            // Redirects are looked at, not followed.
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(harness.caPEM.utf8), format: .pem)])
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls, redirectConfiguration: .disallow))
            defer { _ = client.shutdown() }
            var login = HTTPClientRequest(url: harness.base + "/console/login")
            login.method = .POST
            login.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            login.body = .bytes(ByteBuffer(string: "username=owner&password=owner-password-1"))
            let answer = try await client.execute(login, timeout: .seconds(30))
            #expect(answer.status == .seeOther && answer.headers["Location"].first == "/console")
            let cookie = try #require(answer.headers["Set-Cookie"].first)
            for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] { #expect(cookie.contains(flag), "\(cookie)") }
            let session = String(try #require(cookie.split(separator: ";").first))

            func post(_ body: String, origin: String? = nil) async throws -> (Int, String) {
                var request = HTTPClientRequest(url: harness.base + "/console/groups")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
                request.headers.add(name: "Cookie", value: session)
                if let origin { request.headers.add(name: "Origin", value: origin) }
                request.body = .bytes(ByteBuffer(string: body))
                let response = try await client.execute(request, timeout: .seconds(30))
                return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
            }
            let (status, page) = try await post("name=forged")
            #expect(status == 403 && page.contains("did not come from this console"))
            let (wrong, _) = try await post("name=forged&csrf=00")
            #expect(wrong == 403)
            let token = String(session.split(separator: "=", maxSplits: 1)[1])
            let (foreign, foreignPage) = try await post("name=forged&csrf=\(Console.csrf(for: token))", origin: "https://evil.example")
            #expect(foreign == 403 && foreignPage.contains("sent from another site"))
            #expect(try await harness.call(.GET, "/api/v1/groups", token: owner).array.isEmpty, "no forged group was made")
            let (made, _) = try await post("name=real&csrf=\(Console.csrf(for: token))")
            #expect(made == 303)
            #expect(try await harness.call(.GET, "/api/v1/groups", token: owner).array.count == 1)

            // A login posted from another site is refused; a next= pointing elsewhere is ignored.
            var forged = HTTPClientRequest(url: harness.base + "/console/login")
            forged.method = .POST
            forged.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            forged.headers.add(name: "Origin", value: "https://evil.example")
            forged.body = .bytes(ByteBuffer(string: "username=owner&password=owner-password-1"))
            let refused = try await client.execute(forged, timeout: .seconds(30))
            #expect(refused.status == .forbidden && refused.headers["Set-Cookie"].isEmpty)
            #expect(Console.safeNext("https://evil.example/") == "/console" && Console.safeNext("/console//evil.example") == "/console"
                    && Console.safeNext("/console/../api/v1/me") == "/console" && Console.safeNext("/console/audit") == "/console/audit")

            // A page escapes what admins typed: a user named like markup stays text.
            _ = try await harness.call(.POST, "/api/v1/users", json: ["username": "mallory", "displayName": "<script>alert(1)</script>"], token: owner)
            var directory = HTTPClientRequest(url: harness.base + "/console/directory")
            directory.headers.add(name: "Cookie", value: session)
            let html = String(buffer: try await client.execute(directory, timeout: .seconds(30)).body.collect(upTo: 1 << 20))
            #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>alert(1)"))
        }
    }
}
