import Crypto
import Foundation
import HearthCore
import HummingbirdBcrypt
import NIOPosix
import SQLKit

/// Admins, their passwords and their sessions.
extension Store {
    // MARK: Admins and sessions

    public func adminCount() async throws -> Int {
        try await database.read { db in
            try await db.raw("SELECT COUNT(*) AS n FROM admins").first()?.decode(column: "n", as: Int.self) ?? 0
        }
    }

    public func createAdmin(username: String, password: String, role: AdminRole, mustChangePassword: Bool, by actor: Actor) async throws -> Admin {
        try Validate.name(username, what: "an admin's username")
        try Validate.password(password)
        let hash = try await Self.hashPassword(password, cost: passwordCost)
        let admin = Admin(id: UUID().uuidString.lowercased(), username: username, role: role,
                          mustChangePassword: mustChangePassword, created: Date(timeIntervalSince1970: TimeInterval(seconds)), disabled: nil)
        return try await database.transaction { db in
            if try await db.raw("SELECT id FROM admins WHERE username = \(bind: username)").first() != nil {
                throw APIError.conflict("an admin named \(username) already exists")
            }
            try await db.raw("""
                INSERT INTO admins (id, username, password_hash, role, must_change_password, created)
                VALUES (\(bind: admin.id), \(bind: username), \(bind: hash), \(bind: role.rawValue), \(bind: mustChangePassword ? 1 : 0), \(bind: seconds))
                """).run()
            try await Self.audit(db, at: seconds, actor, "admin.create", "admin:\(username)", before: nil, after: ["role": role.rawValue])
            return admin
        }
    }

    public func admins() async throws -> [Admin] {
        try await database.read { db in
            try await db.raw("SELECT * FROM admins ORDER BY username").all().map(Self.admin)
        }
    }

    /// Changes an admin's role or disables (or re-enables) the account; disabling ends its
    /// sessions. The Center always keeps one enabled owner, and no admin disables or demotes
    /// themselves.
    public func updateAdmin(id: String, role: AdminRole?, disabled: Bool?, by actor: Actor, actorID: String) async throws -> Admin {
        let all = try await admins()
        guard let admin = all.first(where: { $0.id == id || $0.username == id }) else { throw APIError.notFound("no admin \(id)") }
        if admin.id == actorID, disabled == true || (role != nil && role != admin.role) {
            throw APIError.conflict("you cannot disable or change your own account; ask another owner")
        }
        let losesOwner = admin.role == .owner && admin.disabled == nil && (disabled == true || (role != nil && role != .owner))
        if losesOwner, all.filter({ $0.role == .owner && $0.disabled == nil }).count <= 1 {
            throw APIError.conflict("\(admin.username) is the last enabled owner; make another owner first")
        }
        let now = seconds
        try await database.transaction { db in
            if let role {
                try await db.raw("UPDATE admins SET role = \(bind: role.rawValue) WHERE id = \(bind: admin.id)").run()
            }
            if let disabled {
                if disabled {
                    try await db.raw("UPDATE admins SET disabled = \(bind: now) WHERE id = \(bind: admin.id)").run()
                    try await db.raw("DELETE FROM sessions WHERE admin_id = \(bind: admin.id)").run()
                } else {
                    try await db.raw("UPDATE admins SET disabled = NULL WHERE id = \(bind: admin.id)").run()
                }
            }
            try await Self.audit(db, at: now, actor, "admin.update", "admin:\(admin.username)",
                                 before: ["role": admin.role.rawValue, "disabled": admin.disabled == nil ? "no" : "yes"],
                                 after: ["role": (role ?? admin.role).rawValue, "disabled": (disabled ?? (admin.disabled != nil)) ? "yes" : "no"])
        }
        guard let updated = try await admins().first(where: { $0.id == admin.id }) else { throw APIError.notFound("no admin \(id)") }
        return updated
    }

    /// The admin whose username and password these are, or nil; takes as long either way.
    public func authenticate(username: String, password: String) async throws -> Admin? {
        let row = try await database.read { db in
            try await db.raw("SELECT * FROM admins WHERE username = \(bind: username)").first()
        }
        let stored = try row?.decode(column: "password_hash", as: String.self)
        // bcrypt off Swift's cooperative threads (the decoy is made there too, once).
        let good = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: stored ?? Self.decoyHash) }
        guard let row, good else { return nil }
        let admin = try Self.admin(row)
        return admin.disabled == nil ? admin : nil
    }

    public func changePassword(admin: Admin, to password: String, by actor: Actor) async throws {
        try Validate.password(password)
        let hash = try await Self.hashPassword(password, cost: passwordCost)
        try await database.transaction { db in
            try await db.raw("UPDATE admins SET password_hash = \(bind: hash), must_change_password = 0 WHERE id = \(bind: admin.id)").run()
            // Other sessions of this admin end with the old password.
            try await db.raw("DELETE FROM sessions WHERE admin_id = \(bind: admin.id)").run()
            try await Self.audit(db, at: seconds, actor, "admin.password", "admin:\(admin.username)", before: nil, after: nil)
        }
    }

    /// A new session; the token is returned once and only its hash is kept.
    public func createSession(for admin: Admin, address: String) async throws -> (token: String, expires: Date) {
        let token = Secrets.token()
        let expires = seconds + Int64(Self.sessionLifetime)
        try await database.transaction { db in
            try await db.raw("""
                INSERT INTO sessions (token_hash, admin_id, created, expires, address)
                VALUES (\(bind: Secrets.hash(token)), \(bind: admin.id), \(bind: seconds), \(bind: expires), \(bind: address))
                """).run()
            try await Self.audit(db, at: seconds, .admin(admin, address: address), "session.create", "admin:\(admin.username)", before: nil, after: nil)
        }
        return (token, Date(timeIntervalSince1970: TimeInterval(expires)))
    }

    /// The admin a session token belongs to, if it is known, unexpired and the admin enabled.
    public func session(token: String) async throws -> Admin? {
        let now = seconds
        return try await database.read { db in
            guard let row = try await db.raw("""
                SELECT admins.* FROM sessions JOIN admins ON admins.id = sessions.admin_id
                WHERE sessions.token_hash = \(bind: Secrets.hash(token)) AND sessions.expires > \(bind: now) AND admins.disabled IS NULL
                """).first() else { return nil }
            return try Self.admin(row)
        }
    }

    public func endSession(token: String, admin: Admin, address: String) async throws {
        try await database.transaction { db in
            try await db.raw("DELETE FROM sessions WHERE token_hash = \(bind: Secrets.hash(token))").run()
            try await Self.audit(db, at: seconds, .admin(admin, address: address), "session.end", "admin:\(admin.username)", before: nil, after: nil)
        }
    }
}
