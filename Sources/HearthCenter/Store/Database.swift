import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresKit
import SQLKit
import SQLiteKit

/// Where the Center keeps its state: one SQLite file in the data directory (the default) or a
/// PostgreSQL server. Everything above this type speaks SQLKit and does not know which.
public final class CenterDatabase: Sendable {
    public enum Kind: String, Sendable { case sqlite, postgres }

    private enum Backend: Sendable {
        case sqlite(SQLiteConnection, AsyncMutex)
        case postgres(PostgresClient, Task<Void, Never>)
    }

    public let kind: Kind
    /// Where it is, with any password left out (for logs and `/health`).
    public let location: String
    private let backend: Backend
    private let logger: Logger

    /// Opens `url`: `sqlite:PATH` (or a plain path) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    /// A PostgreSQL password may also come from the environment (`PGPASSWORD`), so it need not be
    /// on a command line.
    public static func open(_ url: String, logger: Logger) async throws(CenterError) -> CenterDatabase {
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try await openPostgres(url, logger: logger)
        }
        let path = url.hasPrefix("sqlite:") ? String(url.dropFirst("sqlite:".count)) : url
        do {
            let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            let database = CenterDatabase(kind: .sqlite, location: "sqlite:\(path)",
                                          backend: .sqlite(connection, AsyncMutex()), logger: logger)
            // WAL lets readers go on while one writer commits; a busy timeout instead of an
            // immediate "database is locked" when two Centers share the file.
            try await database.read { db in
                try await db.raw("PRAGMA journal_mode=WAL").run()
                try await db.raw("PRAGMA busy_timeout=5000").run()
                try await db.raw("PRAGMA foreign_keys=ON").run()
                try await db.raw("PRAGMA synchronous=NORMAL").run()
            }
            return database
        } catch let error as CenterError {
            throw error
        } catch {
            throw .storage("cannot open the SQLite database \(path): \(error); check that the data directory is writable")
        }
    }

    private static func openPostgres(_ url: String, logger: Logger) async throws(CenterError) -> CenterDatabase {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            throw .invalid("--database \(redacted(url)) is not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE)")
        }
        let password = components.password ?? ProcessInfo.processInfo.environment["PGPASSWORD"]
        let name = String(components.path.dropFirst())
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "hearth",
            password: password, database: name.isEmpty ? "hearth" : name, tls: .disable)
        if let mode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value, mode != "disable" {
            configuration.tls = .require(.makeClientConfiguration())
        }
        configuration.options.maximumConnections = 16
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let runner = Task { await client.run() }
        let database = CenterDatabase(kind: .postgres, location: redacted(url), backend: .postgres(client, runner), logger: logger)
        do {
            try await database.read { db in try await db.raw("SELECT 1").run() }
        } catch {
            runner.cancel()
            throw .storage("cannot reach PostgreSQL at \(redacted(url)): \(describe(error)); check that it runs and that the user, password and database exist")
        }
        return database
    }

    private init(kind: Kind, location: String, backend: Backend, logger: Logger) {
        self.kind = kind
        self.location = location
        self.backend = backend
        self.logger = logger
    }

    /// Runs `body` with a connection, outside any transaction.
    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        switch backend {
        case let .sqlite(connection, mutex):
            return try await mutex.withLock { try await body(connection.sql(queryLogLevel: nil)) }
        case let .postgres(client, _):
            return try await client.withConnection { connection in
                try await body(connection.sql(queryLogLevel: nil))
            }
        }
    }

    /// Runs `body` with a connection for `FrequentStatement`s, outside any transaction.
    func frequent<T: Sendable>(_ body: @Sendable (FrequentConnection) async throws -> T) async throws -> T {
        switch backend {
        case let .sqlite(connection, mutex):
            return try await mutex.withLock(shared: true) { try await body(FrequentConnection(backend: .sqlite(connection))) }
        case let .postgres(client, _):
            let logger = logger
            return try await client.withConnection { connection in
                try await body(FrequentConnection(backend: .postgres(connection, logger)))
            }
        }
    }

    /// Runs `body` in one transaction: all of its changes land, or none.
    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        switch backend {
        case let .sqlite(connection, mutex):
            return try await mutex.withLock {
                let db = connection.sql(queryLogLevel: nil)
                try await db.raw("BEGIN IMMEDIATE").run()
                do {
                    let result = try await body(db)
                    try await db.raw("COMMIT").run()
                    return result
                } catch {
                    try? await db.raw("ROLLBACK").run()
                    throw error
                }
            }
        case let .postgres(client, _):
            do {
                return try await client.withTransaction(logger: logger) { connection in
                    try await body(connection.sql(queryLogLevel: nil))
                }
            } catch let error as PostgresTransactionError {
                // The caller's own error (an APIError, say) comes out as itself.
                if let inner = error.closureError { throw inner }
                throw error
            }
        }
    }

    public func close() async {
        switch backend {
        case let .sqlite(connection, mutex):
            await mutex.withLock { try? await connection.close() }
        case let .postgres(_, runner):
            runner.cancel()
            _ = await runner.value
        }
    }

    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "…"
        return components.string ?? url
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            return "\(error.code)"
        }
        return "\(error)"
    }
}

/// A statement the Center runs at every check-in. On PostgreSQL it is prepared once per
/// connection, so it is parsed and planned once instead of at every call: planning was a third
/// of PostgreSQL's time per check-in (docs/PERFORMANCE.md). On SQLite it goes straight to the
/// connection, without SQLKit's query building. Parameters are numbered: `$1`, `$2`, … for
/// PostgreSQL, `?1`, `?2`, … for SQLite, bound from `values` in order.
protocol FrequentStatement: PostgresPreparedStatement where Row == any SQLRow {
    /// The text for SQLite.
    static var sqliteSQL: String { get }
    var values: [FrequentValue] { get }
}

enum FrequentValue: Sendable {
    case text(String?)
    case integer(Int64)
}

extension FrequentStatement {
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        for value in values {
            switch value {
            case let .text(text): bindings.append(text)
            case let .integer(number): bindings.append(number)
            }
        }
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> any SQLRow { row.sql() }
}

/// A connection held for `FrequentStatement`s.
struct FrequentConnection: Sendable {
    enum Backend: Sendable {
        case sqlite(SQLiteConnection)
        case postgres(PostgresConnection, Logger)
    }

    let backend: Backend

    /// The rows `statement` returns (none for an UPDATE).
    func rows<S: FrequentStatement>(_ statement: S) async throws -> [any SQLRow] {
        switch backend {
        case let .sqlite(connection):
            let binds: [SQLiteData] = statement.values.map { value in
                switch value {
                case let .text(text): text.map(SQLiteData.text) ?? .null
                case let .integer(number): .integer(Int(number))
                }
            }
            let rows = NIOLockedValueBox<[any SQLRow]>([])
            try await connection.query(S.sqliteSQL, binds) { row in rows.withLockedValue { $0.append(row.sql()) } }
            return rows.withLockedValue { $0 }
        case let .postgres(connection, logger):
            var rows: [any SQLRow] = []
            for try await row in try await connection.execute(statement, logger: logger) { rows.append(row) }
            return rows
        }
    }
}

/// A lock for async code, held either exclusively or shared; waiters are resumed in order, so a
/// waiting exclusive holder is not starved by shared ones that come after it.
///
/// On SQLite, transactions and `read` bodies hold it exclusively. Single statements
/// (`FrequentStatement`s) share it: the connection is opened in serialized mode, so SQLite
/// orders them itself, and the only thing they must not do is land inside another caller's
/// transaction. Sharing lets a check-in's statement go to SQLite's thread while the previous
/// one's answer is still on its way back (docs/PERFORMANCE.md).
final class AsyncMutex: Sendable {
    private struct State {
        var exclusive = false
        var shared = 0
        var waiters: [(shared: Bool, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = NIOLockedValueBox(State())

    func withLock<T: Sendable>(shared: Bool = false, _ body: () async throws -> T) async rethrows -> T {
        await acquire(shared: shared)
        defer { release(shared: shared) }
        return try await body()
    }

    private func acquire(shared: Bool) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let proceed = state.withLockedValue { state -> Bool in
                let free = shared ? !state.exclusive && state.waiters.isEmpty : !state.exclusive && state.shared == 0
                guard free else {
                    state.waiters.append((shared, continuation))
                    return false
                }
                if shared { state.shared += 1 } else { state.exclusive = true }
                return true
            }
            if proceed { continuation.resume() }
        }
    }

    private func release(shared: Bool) {
        let next = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            if shared { state.shared -= 1 } else { state.exclusive = false }
            // Wake the first waiter if it can go now, and with a shared one every shared one
            // queued directly behind it.
            var woken: [CheckedContinuation<Void, Never>] = []
            while let first = state.waiters.first {
                if first.shared {
                    guard !state.exclusive else { break }
                    state.shared += 1
                } else {
                    guard !state.exclusive, state.shared == 0 else { break }
                    state.exclusive = true
                }
                woken.append(state.waiters.removeFirst().continuation)
                if state.exclusive { break }
            }
            return woken
        }
        for continuation in next { continuation.resume() }
    }
}
