import SQLKit

/// The two statements of a check-in. Both answer with the same columns: the enrolled,
/// unretired device a certificate serial names (its current certificate or the previous one,
/// until that expires), its user and the user's groups, the catalog version, and whether
/// commands wait for it.
enum CheckInStatements {
    /// The columns both statements return, for the device row `devices`; `aggregate` joins the
    /// group names with commas (names hold no comma: `Validate.name`).
    static func answer(aggregate: String) -> String {
        """
        devices.id, devices.user_id,
            (SELECT username FROM users WHERE users.id = devices.user_id) AS username,
            (SELECT \(aggregate) FROM group_members m JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = devices.user_id) AS group_names,
            (SELECT version FROM catalog_version WHERE id = 1) AS catalog_version,
            CASE WHEN EXISTS (SELECT 1 FROM commands c WHERE c.device_id = devices.id AND c.state IN ('pending', 'delivered')) THEN 1 ELSE 0 END AS waiting
        """
    }

    static let postgresAggregate = "string_agg(g.name, ',')"
    static let sqliteAggregate = "group_concat(g.name, ',')"
    static let device = "(certificate_serial = $1 OR previous_serial = $1) AND retired IS NULL"

    /// PostgreSQL's text with SQLite's numbered parameters (`?1` for `$1`; no other `$` occurs).
    static func sqlite(_ postgres: String) -> String { postgres.replacingOccurrences(of: "$", with: "?") }

    struct Found: Sendable {
        var deviceID: String
        var userID: String?
        var username: String?
        /// Sorted by name.
        var groups: [String]
        var catalogVersion: Int64
        var commandsWaiting: Bool

        /// Nil when no device has the serial (never enrolled, or retired).
        init?(_ rows: [any SQLRow]) throws {
            guard let row = rows.first else { return nil }
            deviceID = try row.decode(column: "id", as: String.self)
            userID = try row.decode(column: "user_id", as: String?.self)
            username = try row.decode(column: "username", as: String?.self)
            groups = (try row.decode(column: "group_names", as: String?.self) ?? "").split(separator: ",").map(String.init).sorted()
            catalogVersion = try row.decode(column: "catalog_version", as: Int64?.self) ?? -1
            commandsWaiting = try row.decode(column: "waiting", as: Int.self) != 0
        }
    }
}

/// Reads what a check-in needs without changing anything: for a device reporting measurements,
/// which are judged against the nonce this check-in replaces.
struct CheckInFind: FrequentStatement {
    typealias Row = any SQLRow
    static let name = "hearth_checkin_find"
    static let sql = "SELECT \(CheckInStatements.answer(aggregate: CheckInStatements.postgresAggregate)) FROM devices WHERE \(CheckInStatements.device)"
    static let sqliteSQL = CheckInStatements.sqlite("SELECT \(CheckInStatements.answer(aggregate: CheckInStatements.sqliteAggregate)) FROM devices WHERE \(CheckInStatements.device)")
    let serial: String
    var values: [FrequentValue] { [.text(serial)] }
}

/// Records a check-in (when, from where, the status as the device sent it, the nonce its next
/// TPM quote is made over) and answers with what it needs, in one statement.
struct CheckInRecord: FrequentStatement {
    typealias Row = any SQLRow
    static let name = "hearth_checkin_record"
    static let sql = text(aggregate: CheckInStatements.postgresAggregate)
    static let sqliteSQL = CheckInStatements.sqlite(text(aggregate: CheckInStatements.sqliteAggregate))
    static func text(aggregate: String) -> String {
        """
        UPDATE devices SET last_checkin = $2, last_address = $3, status = $4, attestation_nonce = $5
        WHERE \(CheckInStatements.device) RETURNING \(CheckInStatements.answer(aggregate: aggregate))
        """
    }
    let serial: String, now: Int64, address: String, status: String, nonce: String
    var values: [FrequentValue] { [.text(serial), .integer(now), .text(address), .text(status), .text(nonce)] }
}
