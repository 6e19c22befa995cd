import Crypto
import Foundation
import HearthCore
import HummingbirdBcrypt
import NIOPosix
import SQLKit

/// Who made a change, and from where: written into the audit entry in the same transaction.
public struct Actor: Sendable {
    public var name: String
    public var address: String

    public static func admin(_ admin: Admin, address: String) -> Actor { Actor(name: "admin:\(admin.username)", address: address) }
    public static func device(_ id: String, address: String) -> Actor { Actor(name: "device:\(id)", address: address) }
    public static let center = Actor(name: "center", address: "local")
}

/// The Center's state and every change to it. Each change is one transaction that also appends
/// its audit entry, so the log and the state never disagree.
public struct Store: Sendable {
    public let database: CenterDatabase
    /// The clock; tests move it.
    public let now: @Sendable () -> Date
    /// bcrypt's cost for admin passwords.
    let passwordCost: UInt8
    /// What check-ins read, kept while the catalog version stays the same.
    let catalogCache = CatalogCache()

    public static let sessionLifetime: TimeInterval = 12 * 3600

    public init(database: CenterDatabase, now: @escaping @Sendable () -> Date = { Date() }, passwordCost: UInt8 = 12) {
        self.database = database
        self.now = now
        self.passwordCost = passwordCost
    }

    var seconds: Int64 { Int64(now().timeIntervalSince1970) }

    // MARK: Users and groups

    public func createUser(username: String, displayName: String, email: String, by actor: Actor) async throws -> User {
        try Validate.name(username, what: "a username")
        let user = User(id: UUID().uuidString.lowercased(), username: username, displayName: displayName, email: email,
                        created: Date(timeIntervalSince1970: TimeInterval(seconds)), groups: [])
        return try await database.transaction { db in
            if try await db.raw("SELECT id FROM users WHERE username = \(bind: username)").first() != nil {
                throw APIError.conflict("a user named \(username) already exists")
            }
            try await db.raw("""
                INSERT INTO users (id, username, display_name, email, created)
                VALUES (\(bind: user.id), \(bind: username), \(bind: displayName), \(bind: email), \(bind: seconds))
                """).run()
            try await Self.audit(db, at: seconds, actor, "user.create", "user:\(username)", before: nil, after: user)
            return user
        }
    }

    public func users() async throws -> [User] {
        try await database.read { db in
            let memberships = try await db.raw("SELECT group_members.user_id AS u, user_groups.name AS g FROM group_members JOIN user_groups ON user_groups.id = group_members.group_id").all()
            var groups: [String: [String]] = [:]
            for row in memberships { groups[try row.decode(column: "u", as: String.self), default: []].append(try row.decode(column: "g", as: String.self)) }
            return try await db.raw("SELECT * FROM users ORDER BY username").all().map { row in
                var user = try Self.user(row)
                user.groups = (groups[user.id] ?? []).sorted()
                return user
            }
        }
    }

    /// One user, by id or username, with the names of its groups.
    public func user(id: String) async throws -> User {
        let user = try await database.read { db -> User? in
            guard let row = try await db.raw("SELECT * FROM users WHERE id = \(bind: id) OR username = \(bind: id)").first() else { return nil }
            var user = try Self.user(row)
            user.groups = try await db.raw("""
                SELECT user_groups.name AS g FROM group_members JOIN user_groups ON user_groups.id = group_members.group_id
                WHERE group_members.user_id = \(bind: user.id) ORDER BY user_groups.name
                """).all().map { try $0.decode(column: "g", as: String.self) }
            return user
        }
        guard let user else { throw APIError.notFound("no user \(id)") }
        return user
    }

    public func deleteUser(id: String, by actor: Actor) async throws {
        let user = try await user(id: id)
        try await database.transaction { db in
            try await db.raw("DELETE FROM users WHERE id = \(bind: user.id)").run()
            try await Self.audit(db, at: seconds, actor, "user.delete", "user:\(user.username)", before: user, after: nil)
        }
    }

    public func createGroup(name: String, by actor: Actor) async throws -> Group {
        try Validate.name(name, what: "a group name")
        let group = Group(id: UUID().uuidString.lowercased(), name: name, created: Date(timeIntervalSince1970: TimeInterval(seconds)), members: [])
        return try await database.transaction { db in
            if try await db.raw("SELECT id FROM user_groups WHERE name = \(bind: name)").first() != nil {
                throw APIError.conflict("a group named \(name) already exists")
            }
            try await db.raw("INSERT INTO user_groups (id, name, created) VALUES (\(bind: group.id), \(bind: name), \(bind: seconds))").run()
            try await Self.audit(db, at: seconds, actor, "group.create", "group:\(name)", before: nil, after: group)
            return group
        }
    }

    public func groups() async throws -> [Group] {
        try await database.read { db in
            let members = try await db.raw("SELECT group_members.group_id AS g, users.username AS u FROM group_members JOIN users ON users.id = group_members.user_id").all()
            var byGroup: [String: [String]] = [:]
            for row in members { byGroup[try row.decode(column: "g", as: String.self), default: []].append(try row.decode(column: "u", as: String.self)) }
            return try await db.raw("SELECT * FROM user_groups ORDER BY name").all().map { row in
                let id = try row.decode(column: "id", as: String.self)
                return Group(id: id, name: try row.decode(column: "name", as: String.self),
                             created: Self.date(try row.decode(column: "created", as: Int64.self)), members: (byGroup[id] ?? []).sorted())
            }
        }
    }

    public func group(id: String) async throws -> Group {
        guard let group = try await groups().first(where: { $0.id == id || $0.name == id }) else {
            throw APIError.notFound("no group \(id)")
        }
        return group
    }

    public func setMembership(group groupID: String, user userID: String, member: Bool, by actor: Actor) async throws -> Group {
        let group = try await group(id: groupID)
        let user = try await user(id: userID)
        try await database.transaction { db in
            if member {
                if try await db.raw("SELECT user_id FROM group_members WHERE group_id = \(bind: group.id) AND user_id = \(bind: user.id)").first() == nil {
                    try await db.raw("INSERT INTO group_members (group_id, user_id) VALUES (\(bind: group.id), \(bind: user.id))").run()
                }
            } else {
                try await db.raw("DELETE FROM group_members WHERE group_id = \(bind: group.id) AND user_id = \(bind: user.id)").run()
            }
            try await Self.audit(db, at: seconds, actor, member ? "group.add" : "group.remove", "group:\(group.name)",
                                 before: group.members, after: ["user": user.username])
        }
        return try await self.group(id: group.id)
    }

    // MARK: Enrollment and devices

    /// A one-time token for enrolling one device; the secret is returned once.
    public func createEnrollmentToken(userID: String?, note: String, validFor: TimeInterval, by actor: Actor) async throws -> (EnrollmentToken, secret: String) {
        guard validFor >= 60, validFor <= 30 * 86400 else {
            throw APIError.badRequest("an enrollment token is valid for between 1 minute and 30 days (validHours)")
        }
        let user = try await userID.asyncMap { try await self.user(id: $0) }
        let secret = "hte_" + Secrets.token()
        let token = EnrollmentToken(id: UUID().uuidString.lowercased(), userID: user?.id, note: note, createdBy: actor.name,
                                    created: Date(timeIntervalSince1970: TimeInterval(seconds)),
                                    expires: Date(timeIntervalSince1970: TimeInterval(seconds + Int64(validFor))), used: nil, deviceID: nil)
        try await database.transaction { db in
            try await db.raw("""
                INSERT INTO enrollment_tokens (id, token_hash, user_id, note, created_by, created, expires)
                VALUES (\(bind: token.id), \(bind: Secrets.hash(secret)), \(bind: token.userID), \(bind: note), \(bind: actor.name),
                        \(bind: seconds), \(bind: seconds + Int64(validFor)))
                """).run()
            try await Self.audit(db, at: seconds, actor, "enrollment-token.create", "token:\(token.id)", before: nil, after: token)
        }
        return (token, secret)
    }

    public func enrollmentTokens() async throws -> [EnrollmentToken] {
        try await database.read { db in
            try await db.raw("SELECT * FROM enrollment_tokens ORDER BY created DESC").all().map { row in
                EnrollmentToken(id: try row.decode(column: "id", as: String.self), userID: try row.decode(column: "user_id", as: String?.self),
                                note: try row.decode(column: "note", as: String.self), createdBy: try row.decode(column: "created_by", as: String.self),
                                created: Self.date(try row.decode(column: "created", as: Int64.self)),
                                expires: Self.date(try row.decode(column: "expires", as: Int64.self)),
                                used: try row.decode(column: "used", as: Int64?.self).map(Self.date),
                                deviceID: try row.decode(column: "device_id", as: String?.self))
            }
        }
    }

    /// Spends `secret` and records the device `issue` certifies. The token is taken in the same
    /// transaction, so two devices racing with one token cannot both enroll. A device that
    /// spent the token but lost the answer resumes with the same key (see inside).
    public func enroll(secret: String, name: String, address: String,
                       issue: @Sendable (_ deviceID: String) throws -> (serial: String, publicKeySHA256: String, certificate: String)) async throws -> (Device, certificate: String) {
        try Validate.deviceName(name)
        let now = seconds
        return try await database.transaction { db in
            guard let row = try await db.raw("SELECT * FROM enrollment_tokens WHERE token_hash = \(bind: Secrets.hash(secret))").first() else {
                throw APIError.unauthorized("unknown enrollment token; ask your admin for a new one")
            }
            let tokenID = try row.decode(column: "id", as: String.self)
            if try row.decode(column: "used", as: Int64?.self) != nil {
                let spent = APIError.gone("this enrollment token was already used; each token enrolls one device — ask your admin for a new one")
                // The device that spent it may have lost the answer (cut off, or killed before it
                // kept it). The same key asking again, before the device ever checked in, gets
                // a new certificate for the same device: only the key's holder can use it.
                guard let deviceID = try row.decode(column: "device_id", as: String?.self),
                      let device = try await db.raw("SELECT * FROM devices WHERE id = \(bind: deviceID)").first(),
                      try device.decode(column: "retired", as: Int64?.self) == nil,
                      try device.decode(column: "last_checkin", as: Int64?.self) == nil else { throw spent }
                let issued = try issue(deviceID)
                guard issued.publicKeySHA256 == (try device.decode(column: "public_key_sha256", as: String.self)) else { throw spent }
                try await db.raw("UPDATE devices SET certificate_serial = \(bind: issued.serial), last_address = \(bind: address) WHERE id = \(bind: deviceID)").run()
                try await Self.audit(db, at: now, .device(deviceID, address: address), "device.enroll.resume", "device:\(deviceID)",
                                     before: ["serial": try device.decode(column: "certificate_serial", as: String.self)],
                                     after: ["token": tokenID, "serial": issued.serial])
                var resumed = try Self.device(device)
                resumed.certificateSerial = issued.serial
                resumed.lastAddress = address
                return (resumed, issued.certificate)
            }
            if try row.decode(column: "expires", as: Int64.self) <= now {
                throw APIError.gone("this enrollment token expired; ask your admin for a new one")
            }
            let deviceID = UUID().uuidString.lowercased()
            let issued = try issue(deviceID)
            let userID = try row.decode(column: "user_id", as: String?.self)
            try await db.raw("UPDATE enrollment_tokens SET used = \(bind: now), device_id = \(bind: deviceID) WHERE id = \(bind: tokenID) AND used IS NULL").run()
            try await db.raw("""
                INSERT INTO devices (id, user_id, name, certificate_serial, public_key_sha256, enrolled, last_address)
                VALUES (\(bind: deviceID), \(bind: userID), \(bind: name), \(bind: issued.serial), \(bind: issued.publicKeySHA256), \(bind: now), \(bind: address))
                """).run()
            let device = Device(id: deviceID, name: name, userID: userID, certificateSerial: issued.serial, enrolled: Self.date(now),
                                lastCheckIn: nil, lastAddress: address, retired: nil, status: nil)
            try await Self.audit(db, at: now, .device(deviceID, address: address), "device.enroll", "device:\(deviceID)",
                                 before: nil, after: ["name": name, "token": tokenID, "serial": issued.serial])
            return (device, issued.certificate)
        }
    }

    public func devices() async throws -> [Device] {
        try await database.read { db in try await db.raw("SELECT * FROM devices ORDER BY name, id").all().map(Self.device) }
    }

    public func device(id: String) async throws -> Device {
        let row = try await database.read { db in try await db.raw("SELECT * FROM devices WHERE id = \(bind: id)").first() }
        guard let row else { throw APIError.notFound("no device \(id)") }
        return try Self.device(row)
    }

    /// The device a client certificate belongs to, if it is enrolled and not retired: its
    /// current certificate, or the one before a renewal (until that one expires), so that a
    /// device that lost the renewal's answer can still call.
    public func device(certificateSerial serial: String) async throws -> Device? {
        let row = try await database.read { db in
            try await db.raw("SELECT * FROM devices WHERE (certificate_serial = \(bind: serial) OR previous_serial = \(bind: serial)) AND retired IS NULL").first()
        }
        return try row.map(Self.device)
    }

    /// Renews a device's certificate: `issue` certifies the key the device sends (its own or a
    /// new one). The certificate it called with stays valid until it expires; a renewal made
    /// with the previous certificate (the last answer lost) keeps that one as the previous.
    public func renewCertificate(device: Device, presentedSerial: String, address: String,
                                 issue: @Sendable (_ deviceID: String) throws -> (serial: String, publicKeySHA256: String, certificate: String)) async throws -> String {
        let issued = try issue(device.id)
        let now = seconds
        try await database.transaction { db in
            try await db.raw("""
                UPDATE devices SET certificate_serial = \(bind: issued.serial), previous_serial = \(bind: presentedSerial),
                    public_key_sha256 = \(bind: issued.publicKeySHA256), last_address = \(bind: address)
                WHERE id = \(bind: device.id) AND retired IS NULL
                """).run()
            try await Self.audit(db, at: now, .device(device.id, address: address), "device.certificate.renew", "device:\(device.id)",
                                 before: ["serial": device.certificateSerial, "presented": presentedSerial], after: ["serial": issued.serial])
        }
        return issued.certificate
    }

    public func retire(deviceID: String, by actor: Actor) async throws -> Device {
        let device = try await device(id: deviceID)
        guard device.retired == nil else { return device }
        try await database.transaction { db in
            try await db.raw("UPDATE devices SET retired = \(bind: seconds) WHERE id = \(bind: device.id)").run()
            try await Self.audit(db, at: seconds, actor, "device.retire", "device:\(device.id)",
                                 before: ["serial": device.certificateSerial], after: ["retired": "certificate revoked"])
        }
        return try await self.device(id: deviceID)
    }

    /// Approves the measurements the device last reported (an expected Engine, QEMU or kernel
    /// update): its next check-in gets a policy signed for them.
    public func approveMeasurements(deviceID: String, by actor: Actor) async throws -> Device {
        let device = try await device(id: deviceID)
        guard let report = device.status?.measurements else {
            throw APIError.conflict("device \(deviceID) has reported no measurements (it has no TPM, or has not checked in since it got one)")
        }
        let approved = String(decoding: try JSONEncoder().encode(report.components), as: UTF8.self)
        try await database.transaction { db in
            try await db.raw("""
                UPDATE devices SET approved_measurements = \(bind: approved), measurement_verdict = 'approved by an admin; signed at the next check-in'
                WHERE id = \(bind: device.id)
                """).run()
            try await Self.audit(db, at: seconds, actor, "device.measurements.approve", "device:\(device.id)",
                                 before: ["verdict": device.measurementVerdict ?? ""],
                                 after: Dictionary(report.components.map { ($0.component, $0.sha256) }, uniquingKeysWith: { $1 }))
        }
        return try await self.device(id: deviceID)
    }

    // MARK: Audit

    public struct AuditFilter: Sendable {
        public var actor: String?
        public var action: String?
        public var target: String?
        public var since: Date?
        public var until: Date?
        public var limit: Int = 200
        public init() {}
    }

    public func audit(_ filter: AuditFilter) async throws -> [AuditEntry] {
        try await database.read { db in
            var query = db.select().column("*").from("audit")
            if let actor = filter.actor { query = query.where("actor", .equal, actor) }
            if let action = filter.action { query = query.where("action", .equal, action) }
            if let target = filter.target { query = query.where("target", .equal, target) }
            if let since = filter.since { query = query.where("at", .greaterThanOrEqual, Int64(since.timeIntervalSince1970)) }
            if let until = filter.until { query = query.where("at", .lessThan, Int64(until.timeIntervalSince1970)) }
            return try await query.orderBy("seq", .descending).limit(max(1, min(filter.limit, 1000))).all().map { row in
                AuditEntry(seq: try row.decode(column: "seq", as: Int64.self), at: Self.date(try row.decode(column: "at", as: Int64.self)),
                           actor: try row.decode(column: "actor", as: String.self), action: try row.decode(column: "action", as: String.self),
                           target: try row.decode(column: "target", as: String.self), address: try row.decode(column: "address", as: String.self),
                           before: try row.decode(column: "before_state", as: String?.self), after: try row.decode(column: "after_state", as: String?.self))
            }
        }
    }

    static func audit(_ db: any SQLDatabase, at: Int64, _ actor: Actor, _ action: String, _ target: String,
                      before: (any Encodable)?, after: (any Encodable)?) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .iso8601
        let beforeJSON = try before.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        let afterJSON = try after.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        // Images, VM definitions, assignments and policies are what every check-in reads; a change
        // to any of them (each is audited, here) moves the catalog version so caches reload.
        if ["image.", "vm.", "policy."].contains(where: action.hasPrefix) {
            try await db.raw("UPDATE catalog_version SET version = version + 1 WHERE id = 1").run()
        }
        try await db.raw("""
            INSERT INTO audit (at, actor, action, target, address, before_state, after_state)
            VALUES (\(bind: at), \(bind: actor.name), \(bind: action), \(bind: target), \(bind: actor.address), \(bind: beforeJSON), \(bind: afterJSON))
            """).run()
    }

    // MARK: Rows

    static func date(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(seconds)) }

    static func admin(_ row: any SQLRow) throws -> Admin {
        let role = try row.decode(column: "role", as: String.self)
        return Admin(id: try row.decode(column: "id", as: String.self), username: try row.decode(column: "username", as: String.self),
                     role: AdminRole(rawValue: role) ?? .auditor,
                     mustChangePassword: try row.decode(column: "must_change_password", as: Int.self) != 0,
                     created: date(try row.decode(column: "created", as: Int64.self)),
                     disabled: try row.decode(column: "disabled", as: Int64?.self).map(date))
    }

    static func user(_ row: any SQLRow) throws -> User {
        User(id: try row.decode(column: "id", as: String.self), username: try row.decode(column: "username", as: String.self),
             displayName: try row.decode(column: "display_name", as: String.self), email: try row.decode(column: "email", as: String.self),
             created: date(try row.decode(column: "created", as: Int64.self)), groups: [])
    }

    static func device(_ row: any SQLRow) throws -> Device {
        let status = try row.decode(column: "status", as: String?.self).flatMap { try? JSONDecoder().decode(DeviceStatus.self, from: Data($0.utf8)) }
        return Device(id: try row.decode(column: "id", as: String.self), name: try row.decode(column: "name", as: String.self),
                      userID: try row.decode(column: "user_id", as: String?.self),
                      certificateSerial: try row.decode(column: "certificate_serial", as: String.self),
                      enrolled: date(try row.decode(column: "enrolled", as: Int64.self)),
                      lastCheckIn: try row.decode(column: "last_checkin", as: Int64?.self).map(date),
                      lastAddress: try row.decode(column: "last_address", as: String?.self),
                      retired: try row.decode(column: "retired", as: Int64?.self).map(date), status: status,
                      measurementVerdict: try? row.decode(column: "measurement_verdict", as: String?.self))
    }

    static func hashPassword(_ password: String, cost: UInt8) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    /// Verified against when a username is unknown, so that the answer takes as long.
    static let decoyHash = Bcrypt.hash("not a password", cost: 12)
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
