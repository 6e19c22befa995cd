import Foundation
import SQLKit

/// The schema, as numbered migrations applied in order, each in its own transaction and recorded
/// in `hearth_migrations`. A migration is never edited once released: changes are new numbers.
/// Times are Unix seconds (BIGINT); structured values are JSON text.
enum Migrations {
    struct Migration: Sendable {
        let number: Int
        let name: String
        /// Statements, given the dialect ("sqlite" or "postgres").
        let statements: @Sendable (CenterDatabase.Kind) -> [String]
    }

    static let all: [Migration] = [
        Migration(number: 1, name: "admins, sessions, users, groups, devices, enrollment, audit") { kind in
            let serial = kind == .postgres ? "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"
            var statements = [
                """
                CREATE TABLE admins (
                    id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
                    role TEXT NOT NULL, must_change_password INTEGER NOT NULL DEFAULT 0,
                    created BIGINT NOT NULL, disabled BIGINT)
                """,
                """
                CREATE TABLE sessions (
                    token_hash TEXT PRIMARY KEY, admin_id TEXT NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
                    created BIGINT NOT NULL, expires BIGINT NOT NULL, address TEXT NOT NULL)
                """,
                "CREATE INDEX sessions_admin ON sessions(admin_id)",
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
                    email TEXT NOT NULL, created BIGINT NOT NULL)
                """,
                "CREATE TABLE user_groups (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created BIGINT NOT NULL)",
                """
                CREATE TABLE group_members (
                    group_id TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    PRIMARY KEY (group_id, user_id))
                """,
                """
                CREATE TABLE devices (
                    id TEXT PRIMARY KEY, user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
                    name TEXT NOT NULL, certificate_serial TEXT NOT NULL UNIQUE, public_key_sha256 TEXT NOT NULL,
                    enrolled BIGINT NOT NULL, last_checkin BIGINT, last_address TEXT, status TEXT, retired BIGINT)
                """,
                """
                CREATE TABLE enrollment_tokens (
                    id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,
                    user_id TEXT REFERENCES users(id) ON DELETE CASCADE, note TEXT NOT NULL,
                    created_by TEXT NOT NULL, created BIGINT NOT NULL, expires BIGINT NOT NULL,
                    used BIGINT, device_id TEXT)
                """,
                """
                CREATE TABLE audit (
                    seq \(serial), at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                    target TEXT NOT NULL, address TEXT NOT NULL, before_state TEXT, after_state TEXT)
                """,
                "CREATE INDEX audit_at ON audit(at)",
            ]
            // The audit log is append-only in the database itself, not only by convention.
            switch kind {
            case .sqlite:
                statements += [
                    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
                    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
                ]
            case .postgres:
                statements += [
                    """
                    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$
                    """,
                    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
                ]
            }
            return statements
        },
        Migration(number: 2, name: "images, channels, VM definitions, assignments, policies, commands, settings") { _ in
            [
                "CREATE TABLE images (name TEXT PRIMARY KEY, created BIGINT NOT NULL)",
                """
                CREATE TABLE image_versions (
                    image TEXT NOT NULL REFERENCES images(name) ON DELETE CASCADE, version TEXT NOT NULL,
                    notes TEXT NOT NULL, published BIGINT NOT NULL, PRIMARY KEY (image, version))
                """,
                """
                CREATE TABLE image_channels (
                    image TEXT NOT NULL REFERENCES images(name) ON DELETE CASCADE, channel TEXT NOT NULL,
                    version TEXT NOT NULL, changed BIGINT NOT NULL, PRIMARY KEY (image, channel))
                """,
                """
                CREATE TABLE vm_definitions (
                    name TEXT PRIMARY KEY, role TEXT NOT NULL, image TEXT NOT NULL REFERENCES images(name),
                    channel TEXT NOT NULL, cpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL,
                    local_disk_bytes BIGINT NOT NULL, user_disk_bytes BIGINT NOT NULL, network TEXT NOT NULL,
                    backed_up TEXT NOT NULL, created BIGINT NOT NULL)
                """,
                """
                CREATE TABLE assignments (
                    vm TEXT NOT NULL REFERENCES vm_definitions(name) ON DELETE CASCADE,
                    kind TEXT NOT NULL, target TEXT NOT NULL, PRIMARY KEY (vm, kind, target))
                """,
                "CREATE TABLE policies (scope TEXT PRIMARY KEY, body TEXT NOT NULL, changed BIGINT NOT NULL)",
                """
                CREATE TABLE commands (
                    id TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    kind TEXT NOT NULL, vm TEXT, state TEXT NOT NULL, created_by TEXT NOT NULL, created BIGINT NOT NULL,
                    approved_by TEXT, delivered BIGINT, acknowledged BIGINT, finished BIGINT, result TEXT)
                """,
                "CREATE INDEX commands_device ON commands(device_id, state)",
                "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            ]
        },
        Migration(number: 3, name: "catalog version, for caching what check-ins read") { _ in
            [
                "CREATE TABLE catalog_version (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
                "INSERT INTO catalog_version (id, version) VALUES (1, 0)",
            ]
        },
        Migration(number: 4, name: "diagnostics bundles uploaded by devices") { _ in
            [
                """
                CREATE TABLE diagnostics (
                    command_id TEXT PRIMARY KEY REFERENCES commands(id) ON DELETE CASCADE,
                    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    uploaded BIGINT NOT NULL, size BIGINT NOT NULL, body TEXT NOT NULL)
                """,
            ]
        },
        Migration(number: 5, name: "a device's previous certificate, valid until it expires, for a renewal whose answer was lost") { _ in
            [
                "ALTER TABLE devices ADD COLUMN previous_serial TEXT",
                "CREATE INDEX devices_previous_serial ON devices(previous_serial)",
            ]
        },
        Migration(number: 6, name: "devices' approved measurements, the verdict on the last reported, work keys erased by a wipe") { _ in
            [
                "ALTER TABLE devices ADD COLUMN approved_measurements TEXT",
                "ALTER TABLE devices ADD COLUMN measurement_verdict TEXT",
                "ALTER TABLE devices ADD COLUMN erased_policy_refs TEXT",
            ]
        },
        Migration(number: 7, name: "devices' attestation key and the nonce of their next quote") { _ in
            [
                "ALTER TABLE devices ADD COLUMN attestation_key TEXT",
                "ALTER TABLE devices ADD COLUMN attestation_nonce TEXT",
            ]
        },
        Migration(number: 8, name: "a user's groups and devices found by index (every check-in reads the groups)") { _ in
            [
                "CREATE INDEX group_members_user ON group_members(user_id)",
                "CREATE INDEX devices_user ON devices(user_id)",
            ]
        },
    ]

    /// Applies every migration not yet applied; several Centers starting at once apply each once.
    static func run(on database: CenterDatabase) async throws(CenterError) -> [Int] {
        let kind = database.kind
        do {
            try await database.transaction { db in
                try await db.raw("CREATE TABLE IF NOT EXISTS hearth_migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied BIGINT NOT NULL)").run()
            }
            var applied: [Int] = []
            for migration in all {
                let done = try await database.transaction { db -> Bool in
                    if kind == .postgres {
                        // One Center at a time; the others wait here and then find it applied.
                        try await db.raw("SELECT pg_advisory_xact_lock(4242)").run()
                    }
                    let existing = try await db.raw("SELECT number FROM hearth_migrations WHERE number = \(bind: migration.number)").first()
                    if existing != nil { return false }
                    for statement in migration.statements(kind) {
                        try await db.raw(SQLQueryString(statement)).run()
                    }
                    try await db.raw("INSERT INTO hearth_migrations (number, name, applied) VALUES (\(bind: migration.number), \(bind: migration.name), \(bind: Int64(Date().timeIntervalSince1970)))").run()
                    return true
                }
                if done { applied.append(migration.number) }
            }
            // A database from a newer Center: refuse rather than misread it.
            let newest = try await database.read { db in
                try await db.raw("SELECT MAX(number) AS n FROM hearth_migrations").first()?.decode(column: "n", as: Int?.self)
            }
            if let newest, let known = all.last?.number, newest > known {
                throw CenterError.storage("the database has schema version \(newest), newer than this Center knows (\(known)); run the newer Center, or restore a backup taken before the upgrade")
            }
            return applied
        } catch let error as CenterError {
            throw error
        } catch {
            throw .storage("migrating the database failed: \(CenterDatabase.describe(error))")
        }
    }
}
