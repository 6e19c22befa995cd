import AsyncHTTPClient
import Foundation
import HearthCenter
import NIOConcurrencyHelpers
import SQLKit
import Testing

/// The Center's API and storage, each test on SQLite and on PostgreSQL.
@Suite(.serialized) struct CenterAPITests {
    @Test(arguments: Backend.allCases)
    func theFirstStartMakesAnOwnerWhoMustChangeTheOneTimePassword(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let first = try await harness.call(.POST, "/api/v1/session", json: ["username": "owner", "password": harness.ownerPassword])
            #expect(first.status == 201)
            let token = try #require(first.object["token"] as? String)
            // Nothing but changing the password until it is changed.
            let blocked = try await harness.call(.GET, "/api/v1/users", token: token)
            #expect(blocked.status == 403 && blocked.errorMessage.contains("one-time password"))
            let owner = try await harness.ownerToken()
            #expect(try await harness.call(.GET, "/api/v1/users", token: owner).status == 200)
            // The one-time password is spent.
            let again = try await harness.call(.POST, "/api/v1/session", json: ["username": "owner", "password": harness.ownerPassword])
            #expect(again.status == 401)
            // The old session ended with the password change.
            #expect(try await harness.call(.GET, "/api/v1/me", token: token).status == 401)
        }
    }

    @Test(arguments: Backend.allCases)
    func aSecondStartKeepsItsCAItsDataAndPrintsNoPassword(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            _ = try await harness.call(.POST, "/api/v1/users", json: ["username": "alice"], token: owner)
            let fingerprint = harness.center.ca.fingerprint
            let database = backend == .postgres ? harness.center.store.database.location : nil
            await harness.running.shutdown()
            var configuration = CenterConfiguration(dataDirectory: harness.folder)
            configuration.port = 0
            configuration.database = database
            let (center, first) = try await Center.prepare(configuration, logger: .init(label: "test"))
            #expect(first.ownerPassword == nil && !first.createdCA)
            #expect(first.caFingerprint == fingerprint)
            #expect(try await center.store.users().map(\.username) == ["alice"])
            #expect(try await center.store.authenticate(username: "owner", password: "owner-password-1") != nil)
            await center.store.database.close()
        }
    }

    @Test(arguments: Backend.allCases)
    func usersAndGroupsAreKeptAndEveryChangeIsAudited(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            let alice = try await harness.call(.POST, "/api/v1/users", json: ["username": "alice", "displayName": "Alice A.", "email": "alice@example.org"], token: owner)
            #expect(alice.status == 201)
            #expect(try await harness.call(.POST, "/api/v1/users", json: ["username": "alice"], token: owner).status == 409)
            #expect(try await harness.call(.POST, "/api/v1/groups", json: ["name": "finance"], token: owner).status == 201)
            let joined = try await harness.call(.PUT, "/api/v1/groups/finance/members/alice", token: owner)
            #expect(joined.status == 200 && (joined.object["members"] as? [String]) == ["alice"])
            let user = try await harness.call(.GET, "/api/v1/users/alice", token: owner)
            #expect((user.object["groups"] as? [String]) == ["finance"])
            #expect(try await harness.call(.PUT, "/api/v1/groups/finance/members/bob", token: owner).status == 404)

            let audit = try await harness.call(.GET, "/api/v1/audit?actor=admin:owner&action=group.add", token: owner)
            #expect(audit.status == 200 && audit.array.count == 1)
            let entry = try #require(audit.array.first)
            #expect(entry["target"] as? String == "group:finance")
            #expect(entry["address"] as? String == "127.0.0.1")
            #expect((entry["after"] as? String)?.contains("alice") == true)
            #expect(try await harness.call(.DELETE, "/api/v1/users/alice", token: owner).status == 204)
            let deleted = try await harness.call(.GET, "/api/v1/audit?action=user.delete", token: owner)
            #expect((deleted.array.first?["before"] as? String)?.contains("alice@example.org") == true)
        }
    }

    @Test(arguments: Backend.allCases)
    func anOwnerDisablesAndPromotesAdminsButNeverLosesTheLastOwner(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            let operatorToken = try await harness.admin("operator", by: owner)
            let me = try await harness.call(.GET, "/api/v1/me", token: operatorToken)
            let operatorName = try #require(me.object["username"] as? String)
            // Disabled: its session ends and its password no longer logs in.
            let disabled = try await harness.call(.PATCH, "/api/v1/admins/\(operatorName)", json: ["disabled": true], token: owner)
            #expect(disabled.status == 200 && disabled.object["disabled"] != nil)
            #expect(try await harness.call(.GET, "/api/v1/me", token: operatorToken).status == 401)
            let refused = try await harness.call(.POST, "/api/v1/session", json: ["username": operatorName, "password": "second-password-2"])
            #expect(refused.status == 401)
            // Enabled again and made an owner.
            let promoted = try await harness.call(.PATCH, "/api/v1/admins/\(operatorName)", json: ["disabled": false, "role": "owner"], token: owner)
            #expect(promoted.object["role"] as? String == "owner" && promoted.object["disabled"] == nil)
            let second = try await harness.login(operatorName, "second-password-2")
            // Nobody changes their own account; the last enabled owner stays.
            let selfChange = try await harness.call(.PATCH, "/api/v1/admins/owner", json: ["disabled": true], token: owner)
            #expect(selfChange.status == 409)
            #expect(try await harness.call(.PATCH, "/api/v1/admins/owner", json: ["role": "auditor"], token: second).status == 200)
            let last = try await harness.call(.PATCH, "/api/v1/admins/\(operatorName)", json: ["role": "auditor"], token: owner)
            #expect(last.status == 403)
            let audit = try await harness.call(.GET, "/api/v1/audit?action=admin.update", token: second)
            #expect(audit.array.count == 3)
        }
    }

    @Test(arguments: Backend.allCases)
    func theAuditLogIsAppendOnlyInTheDatabaseItself(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            _ = try await harness.ownerToken()
            let database = harness.center.store.database
            let before = try await harness.center.store.audit(.init()).count
            #expect(before > 0)
            await #expect(throws: (any Error).self) {
                try await database.transaction { db in try await db.raw("UPDATE audit SET actor = 'someone else'").run() }
            }
            await #expect(throws: (any Error).self) {
                try await database.transaction { db in try await db.raw("DELETE FROM audit").run() }
            }
            #expect(try await harness.center.store.audit(.init()).count == before)
        }
    }

    @Test(arguments: Backend.allCases)
    func badInputGetsAClearFourHundredAndChangesNothing(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            let auditBefore = try await harness.center.store.audit(.init()).count

            let malformed = try await harness.call(.POST, "/api/v1/users", raw: "{\"username\": ", token: owner)
            #expect(malformed.status == 400 && malformed.errorMessage.contains("not valid JSON"))
            let wrongType = try await harness.call(.POST, "/api/v1/users", json: ["username": 42], token: owner)
            #expect(wrongType.status == 400 && wrongType.errorMessage.contains("username"))
            let missing = try await harness.call(.POST, "/api/v1/groups", json: [String: Any](), token: owner)
            #expect(missing.status == 400 && missing.errorMessage.contains("missing field 'name'"))
            let badName = try await harness.call(.POST, "/api/v1/users", json: ["username": "../etc"], token: owner)
            #expect(badName.status == 400)
            let badRole = try await harness.call(.POST, "/api/v1/admins", json: ["username": "x", "password": "long enough password", "role": "king"], token: owner)
            #expect(badRole.status == 400 && badRole.errorMessage.contains("role"))
            let oversized = try await harness.call(.POST, "/api/v1/users", raw: "{\"username\": \"" + String(repeating: "a", count: 300_000) + "\"}", token: owner)
            #expect(oversized.status == 413)
            let form = try await harness.call(.POST, "/api/v1/users", raw: "username=mallory", token: owner, contentType: "application/x-www-form-urlencoded")
            #expect(form.status == 415)
            let unknownRoute = try await harness.call(.GET, "/api/v1/nothing-here", token: owner)
            #expect(unknownRoute.status == 404 && unknownRoute.errorMessage.contains("no such route"))
            let nulInBody = try await harness.call(.POST, "/api/v1/users", raw: "{\"username\": \"a\\u0000b\"}", token: owner)
        #expect(nulInBody.status == 400 && nulInBody.errorMessage.contains("NUL"))
        let nulInQuery = try await harness.call(.GET, "/api/v1/audit?actor=a%00b", token: owner)
        #expect(nulInQuery.status == 400 && nulInQuery.errorMessage.contains("NUL"))
        let badQuery = try await harness.call(.GET, "/api/v1/audit?since=yesterday", token: owner)
            #expect(badQuery.status == 400 && badQuery.errorMessage.contains("ISO 8601"))
            for answer in [malformed, wrongType, missing, badName, badRole, oversized, form, unknownRoute, badQuery] {
                #expect(answer.object["error"] != nil, "every error is JSON: \(String(decoding: answer.body, as: UTF8.self).prefix(200))")
            }
            #expect(try await harness.call(.GET, "/api/v1/users", token: owner).array.isEmpty)
            #expect(try await harness.center.store.audit(.init()).count == auditBefore)
        }
    }

    @Test(arguments: Backend.allCases)
    func sessionsEndWhenTheyExpireOrAreClosed(backend: Backend) async throws {
        let clock = NIOLockedValueBox(Date())
        try await CenterHarness.with(backend, now: { clock.withLockedValue { $0 } }) { harness in
            let owner = try await harness.ownerToken()
            #expect(try await harness.call(.GET, "/api/v1/me", token: "not-a-token").status == 401)
            #expect(try await harness.call(.GET, "/api/v1/me").status == 401)
            let wrong = try await harness.call(.POST, "/api/v1/session", json: ["username": "owner", "password": "wrong password"])
            #expect(wrong.status == 401 && wrong.errorMessage == "wrong username or password")
            let nobody = try await harness.call(.POST, "/api/v1/session", json: ["username": "nobody", "password": "wrong password"])
            #expect(nobody.status == 401 && nobody.errorMessage == wrong.errorMessage)

            clock.withLockedValue { $0 = $0.addingTimeInterval(Store.sessionLifetime + 1) }
            let expired = try await harness.call(.GET, "/api/v1/me", token: owner)
            #expect(expired.status == 401 && expired.errorMessage.contains("expired"))
            let fresh = try await harness.login("owner", "owner-password-1")
            #expect(try await harness.call(.DELETE, "/api/v1/session", token: fresh).status == 204)
            #expect(try await harness.call(.GET, "/api/v1/me", token: fresh).status == 401)
        }
    }

    @Test(arguments: Backend.allCases)
    func aDeviceEnrollsOnceAndChecksInWithItsCertificate(backend: Backend) async throws {
        let clock = NIOLockedValueBox(Date())
        try await CenterHarness.with(backend, now: { clock.withLockedValue { $0 } }) { harness in
            let owner = try await harness.ownerToken()
            _ = try await harness.call(.POST, "/api/v1/users", json: ["username": "alice"], token: owner)
            let made = try await harness.call(.POST, "/api/v1/enrollment-tokens", json: ["user": "alice", "note": "Alice's laptop"], token: owner)
            #expect(made.status == 201)
            let secret = try #require(made.object["secret"] as? String)
            // The list never shows the secret.
            let listed = try await harness.call(.GET, "/api/v1/enrollment-tokens", token: owner)
            #expect(!String(decoding: listed.body, as: UTF8.self).contains(secret))

            var identity = DeviceIdentity()
            let enrolled = try await harness.call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": try identity.csr(), "name": "alice-laptop"])
            #expect(enrolled.status == 201)
            #expect(enrolled.object["caCertificate"] as? String == harness.caPEM)
            identity.certificatePEM = enrolled.object["certificate"] as? String
            let deviceID = try #require(enrolled.object["deviceID"] as? String)

            // One token, one device.
            let reused = try await harness.call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": try DeviceIdentity().csr(), "name": "other"])
            #expect(reused.status == 410 && reused.errorMessage.contains("already used"))
            // The same key again (its answer lost) before the first check-in: the same device,
            // a new certificate; the first one no longer works.
            let first = identity
            let resumed = try await harness.call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": try identity.csr(), "name": "alice-laptop"])
            #expect(resumed.status == 201 && resumed.object["deviceID"] as? String == deviceID)
            identity.certificatePEM = resumed.object["certificate"] as? String
            #expect(identity.certificatePEM != first.certificatePEM)
            let stale = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: try harness.deviceClient(first))
            #expect(stale.status == 403)
            let resumes = try await harness.call(.GET, "/api/v1/audit?action=device.enroll.resume", token: owner)
            #expect((resumes.json as? [[String: Any]])?.count == 1)
            #expect(try await harness.call(.POST, "/api/v1/enroll", json: ["token": "hte_forged", "csr": try DeviceIdentity().csr(), "name": "x"]).status == 401)

            let device = try harness.deviceClient(identity)
            let checkIn = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: device)
            #expect(checkIn.status == 200)
            #expect(checkIn.object["deviceID"] as? String == deviceID)
            #expect(checkIn.object["userID"] as? String == (try await harness.call(.GET, "/api/v1/users/alice", token: owner)).object["id"] as? String)
            let seen = try await harness.call(.GET, "/api/v1/devices/\(deviceID)", token: owner)
            #expect(seen.object["lastCheckIn"] != nil)
            #expect(((seen.object["status"] as? [String: Any])?["inventory"] as? [String: Any])?["cpus"] as? Int == 2)
            // Once the device has checked in, the token is spent for good, even for its own key.
            let afterCheckIn = try await harness.call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": try identity.csr(), "name": "alice-laptop"])
            #expect(afterCheckIn.status == 410)
            #expect(try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: device).status == 200)

            // Without the certificate, and after retirement, the device API refuses.
            let anonymous = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status)
            #expect(anonymous.status == 401 && anonymous.errorMessage.contains("client certificate"))
            #expect(try await harness.call(.POST, "/api/v1/devices/\(deviceID)/retire", token: owner).status == 200)
            let retired = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: device)
            #expect(retired.status == 403 && retired.errorMessage.contains("retired"))

            // An expired token.
            let late = try await harness.call(.POST, "/api/v1/enrollment-tokens", json: ["validHours": 1], token: owner)
            clock.withLockedValue { $0 = $0.addingTimeInterval(3601) }
            let expired = try await harness.call(.POST, "/api/v1/enroll", json: ["token": try #require(late.object["secret"] as? String), "csr": try DeviceIdentity().csr(), "name": "late"])
            #expect(expired.status == 410 && expired.errorMessage.contains("expired"))
        }
    }

    @Test(arguments: Backend.allCases)
    func aDeviceUploadsTheDiagnosticsItWasAskedForAndAnAdminReadsThem(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            let (identity, deviceID) = try await harness.enrollDevice(owner: owner)
            let (other, otherID) = try await harness.enrollDevice(owner: owner)
            let device = try harness.deviceClient(identity)
            let ask = try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "collectDiagnostics"], token: owner)
            let id = try #require(ask.object["id"] as? String)
            let lock = try #require(try await harness.call(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "lock"], token: owner).object["id"] as? String)
            let bundle: [String: Any] = ["collected": "2026-11-21T10:00:00Z", "summary": "lease: valid",
                                         "files": [["path": "/var/lib/hearth/run/work/console.log", "size": 12, "text": "booted\r\nok\n"]]]

            // Not before the command reached the device.
            #expect(try await harness.call(.PUT, "/api/v1/device/commands/\(id)/diagnostics", json: bundle, client: device).status == 409)
            _ = try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: device)
            let stored = try await harness.call(.PUT, "/api/v1/device/commands/\(id)/diagnostics", json: bundle, client: device)
            #expect(stored.status == 200 && (stored.object["size"] as? Int ?? 0) > 0, "\(stored.status) \(stored.errorMessage)")
            // Another device's command, a command of another kind, a bundle too large: refused.
            let otherClient = try harness.deviceClient(other)
            #expect(try await harness.call(.PUT, "/api/v1/device/commands/\(id)/diagnostics", json: bundle, client: otherClient).status == 404)
            #expect(try await harness.call(.PUT, "/api/v1/device/commands/\(lock)/diagnostics", json: bundle, client: device).status == 409)
            let huge: [String: Any] = ["collected": "2026-11-21T10:00:00Z", "summary": "",
                                       "files": [["path": "x", "size": 300_000, "text": String(repeating: "a", count: 300_000)]]]
            #expect(try await harness.call(.PUT, "/api/v1/device/commands/\(id)/diagnostics", json: huge, client: device).status == 413)
            _ = otherID

            // The admin reads what was uploaded, byte for byte; the upload is audited.
            let read = try await harness.call(.GET, "/api/v1/commands/\(id)/diagnostics", token: owner)
            #expect(read.status == 200 && read.object["deviceID"] as? String == deviceID)
            let files = (read.object["bundle"] as? [String: Any])?["files"] as? [[String: Any]]
            #expect(files?.first?["text"] as? String == "booted\r\nok\n")
            let audit = try await harness.call(.GET, "/api/v1/audit?action=diagnostics.upload", token: owner)
            #expect((audit.json as? [[String: Any]])?.count == 1)
            #expect(try await harness.call(.GET, "/api/v1/commands/\(lock)/diagnostics", token: owner).status == 404)

            // Once the command is completed, its bundle is final.
            _ = try await harness.call(.POST, "/api/v1/device/commands/\(id)", json: ["state": "completed", "result": "uploaded"], client: device)
            #expect(try await harness.call(.PUT, "/api/v1/device/commands/\(id)/diagnostics", json: bundle, client: device).status == 409)
        }
    }

    @Test(arguments: Backend.allCases)
    func aDeviceRenewsItsCertificateAndALostAnswerCostsNothing(backend: Backend) async throws {
        try await CenterHarness.with(backend) { harness in
            let owner = try await harness.ownerToken()
            let (original, deviceID) = try await harness.enrollDevice(owner: owner)
            func renew(_ identity: DeviceIdentity) async throws -> DeviceIdentity {
                let answer = try await harness.call(.POST, "/api/v1/device/certificate", json: ["csr": try identity.csr()], client: try harness.deviceClient(identity))
                guard answer.status == 200, let certificate = answer.object["certificate"] as? String else {
                    throw HarnessError("renew: \(answer.status) \(answer.errorMessage)")
                }
                var renewed = identity
                renewed.certificatePEM = certificate
                return renewed
            }
            func checkIn(_ identity: DeviceIdentity) async throws -> Int {
                try await harness.call(.POST, "/api/v1/device/checkin", json: CenterHarness.status, client: try harness.deviceClient(identity)).status
            }
            // Renewed: the new certificate works, and so does the one it was renewed with.
            let lost = try await renew(original)
            #expect(lost.certificatePEM != original.certificatePEM)
            #expect(try await checkIn(lost) == 200)
            #expect(try await checkIn(original) == 200)
            // That answer was lost: the device renews again with the certificate it kept. The
            // lost one stops working; the kept one still works until the device uses the new one.
            let renewed = try await renew(original)
            #expect(try await checkIn(renewed) == 200)
            #expect(try await checkIn(original) == 200)
            #expect(try await checkIn(lost) == 403)
            let audit = try await harness.call(.GET, "/api/v1/audit?action=device.certificate.renew", token: owner)
            #expect((audit.json as? [[String: Any]])?.count == 2)
            // Retired: no certificate of it works, and none is renewed.
            #expect(try await harness.call(.POST, "/api/v1/devices/\(deviceID)/retire", token: owner).status == 200)
            for identity in [original, renewed] {
                #expect(try await harness.call(.POST, "/api/v1/device/certificate", json: ["csr": try identity.csr()], client: try harness.deviceClient(identity)).status == 403)
            }
        }
    }

    @Test func aCertificateRequestNotSignedByItsKeyIsRefused() async throws {
        try await CenterHarness.with(.sqlite) { harness in
            let owner = try await harness.ownerToken()
            let made = try await harness.call(.POST, "/api/v1/enrollment-tokens", json: [String: Any](), token: owner)
            let secret = try #require(made.object["secret"] as? String)
            // Flip one character inside the signature part of a real CSR.
            var pem = Array(try DeviceIdentity().csr().utf8)
            let end = pem.count - 40
            pem[end] = pem[end] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            let tampered = try await harness.call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": String(decoding: pem, as: UTF8.self), "name": "x"])
            #expect(tampered.status == 400)
            let garbage = try await harness.call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": "hello", "name": "x"])
            #expect(garbage.status == 400 && garbage.errorMessage.contains("PEM"))
            // The token was not spent by the failed attempts.
            var identity = DeviceIdentity()
            let good = try await harness.call(.POST, "/api/v1/enroll", json: ["token": secret, "csr": try identity.csr(), "name": "x"])
            #expect(good.status == 201)
            identity.certificatePEM = good.object["certificate"] as? String
        }
    }
}

@Suite struct LoginThrottleTests {
    @Test func guessingPasswordsIsSlowedAndTheRightOneStillWorksLater() async throws {
        let clock = NIOLockedValueBox(Date())
        try await CenterHarness.with(.sqlite, now: { clock.withLockedValue { $0 } }) { harness in
            _ = try await harness.ownerToken()
            for attempt in 1...5 {
                let wrong = try await harness.call(.POST, "/api/v1/session", json: ["username": "owner", "password": "guess number \(attempt)"])
                #expect(wrong.status == 401)
            }
            // The sixth try is refused before the password is even checked — the right one too.
            let throttled = try await harness.call(.POST, "/api/v1/session", json: ["username": "owner", "password": "owner-password-1"])
            #expect(throttled.status == 429 && throttled.errorMessage.contains("try again in"))
            clock.withLockedValue { $0 = $0.addingTimeInterval(15 * 60 + 1) }
            #expect(try await harness.call(.POST, "/api/v1/session", json: ["username": "owner", "password": "owner-password-1"]).status == 201)
        }
    }
}
