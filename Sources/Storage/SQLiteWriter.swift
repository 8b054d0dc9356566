import NIOPosix
import Synchronization
import VaporCSQLite

/// The SQLite write path of the group commit (issue 16): a second connection to the database file,
/// opened through SQLite's C API (the library SQLiteNIO bundles, `VaporCSQLite`, so there is one
/// SQLite in the process), owned by one thread of its own.
///
/// Through SQLiteNIO every statement of a group commit was prepared, run and finalized in its own
/// trip to the thread pool; here the whole commit — ledger rows, rollup marks, audit entries with
/// the chain's tip check — is one closure run on the writer's thread, in one transaction, with the
/// statements prepared once (`SQLITE_PREPARE_PERSISTENT`) and kept: each use rebinds and resets.
///
/// The database is in WAL mode, so readers (the SQLiteNIO connection) never wait for this writer;
/// another writer (an admin path through SQLiteNIO, the CLI, another process) is waited for up to
/// ``busyTimeoutMs`` by both sides. Only the group commit's statements go through here.
///
/// WAL checkpoints are not run inside a commit (SQLite's auto-checkpoint, off on this connection,
/// copied the WAL into the database file, with its `fsync`s, at the end of every commit that found
/// the WAL past 1 000 pages — inside a request's commit). A WAL hook notes the WAL's size after each
/// commit; when it has reached ``checkpointPages``, a PASSIVE checkpoint is queued on the writer's
/// thread as a job of its own, after the commit has returned (so the request that made the commit
/// is answered first). A checkpoint that could not copy everything (a reader was on an older
/// snapshot) is tried again after the next commit, as SQLite's auto-checkpoint would: the WAL is
/// bounded as before. ``close()`` checkpoints too.
///
/// A commit runs on the caller's thread when it can start at once (``runHere(_:)``): the
/// connection is free (no checkpoint running on the writer's thread) and the database's write lock
/// is free (no other connection writing). The group commit is then one step of the event loop that
/// ran the request, instead of a wake-up of the writer's thread and one of the event loop to hand
/// the result back (issue 16: at one connection the request's two thread switches of four). When
/// either is taken it goes to the writer's thread (``run(_:)``), which waits, up to the busy timeout,
/// where an event loop must not. The connection is used by one thread at a time, under ``lock``.
final class SQLiteWriter: Sendable {
    /// How long a write waits for another connection's write to finish before failing.
    static let busyTimeoutMs: Int32 = 5000
    /// The WAL size (pages) from which the writer checkpoints after a commit: SQLite's default
    /// auto-checkpoint threshold.
    static let defaultCheckpointPages: Int32 = 1000

    private let pool: NIOThreadPool
    private let connection: WriterConnection
    /// Held while a thread uses ``connection``.
    private let lock = Mutex(())
    /// Bodies run on the writer's thread rather than the caller's (tests).
    private let handedOver = Atomic<Int>(0)

    private init(pool: NIOThreadPool, connection: WriterConnection) {
        self.pool = pool
        self.connection = connection
    }

    var handedOverCount: Int { handedOver.load(ordering: .relaxed) }

    /// Opens the writer's connection to the database file at `path` (which must exist and already
    /// be in WAL mode: the storage's main connection set it up) on a thread of its own.
    static func open(path: String, checkpointPages: Int32 = defaultCheckpointPages) async throws -> SQLiteWriter {
        let (pool, connection) = try await NIOThreadPool.ownThread { pool in
            try await pool.runIfActive { try WriterConnection(path: path, checkpointPages: checkpointPages) }
        }
        return SQLiteWriter(pool: pool, connection: connection)
    }

    /// Runs `body` on the writer's thread with its connection (one trip for the whole body). When
    /// `body` committed and the WAL has reached ``checkpointPages``, a checkpoint is queued behind it.
    func run<T: Sendable>(_ body: @escaping @Sendable (WriterConnection) throws -> T) async throws -> T {
        handedOver.add(1, ordering: .relaxed)
        return try await pool.runIfActive { [self] in
            try lock.withLock { _ in try committing(body) }
        }
    }

    /// Runs `body` on the calling thread, inside a transaction begun for it (`BEGIN IMMEDIATE`),
    /// when that takes no waiting: the connection is free and so is the database's write lock.
    /// Nil when either was taken (nothing was done): the caller then hands the work to ``run(_:)``.
    func runHere<T: Sendable>(_ body: (WriterConnection) throws -> T) throws -> T? {
        let done = try lock.withLockIfAvailable { _ -> T? in
            guard try connection.beginWithoutWaiting() else { return nil }
            return try committing(body)
        }
        return done ?? nil
    }

    /// `body`, then a checkpoint queued on the writer's thread when the WAL has reached
    /// ``checkpointPages`` (a job of its own: this one's result is handed back first). Under ``lock``.
    private func committing<T>(_ body: (WriterConnection) throws -> T) rethrows -> T {
        defer {
            if connection.takeCheckpointDue() {
                pool.submit { [self] state in
                    guard case .active = state else { return }
                    lock.withLock { _ in connection.checkpoint() }
                }
            }
        }
        return try body(connection)
    }

    /// Checkpoints, finalizes the statements, closes the connection and stops the thread.
    func close() async {
        _ = try? await pool.runIfActive { [self] in
            lock.withLock { _ in
                connection.checkpoint()
                connection.close()
            }
        }
        try? await pool.shutdownGracefully()
    }
}

extension NIOThreadPool {
    /// A started pool of one thread (a connection's own), with what `open` made on it; the pool is
    /// shut down again when `open` throws.
    static func ownThread<T>(_ open: (NIOThreadPool) async throws -> T) async throws -> (NIOThreadPool, T) {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        do {
            return (pool, try await open(pool))
        } catch {
            try? await pool.shutdownGracefully()
            throw error
        }
    }
}

/// Why a statement on the writer's connection failed: SQLite's extended result code and message
/// (never the bound values).
public struct SQLiteWriteError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let message: String

    public var description: String { "SQLite error \(code): \(message)" }
}

/// The statements the writer keeps prepared.
enum WriterStatement {
    case begin, commit, rollback
    case savepoint, release, rollbackToSavepoint
    /// A ledger row of one shape (bit 0 `batch`, bit 1 `reranked_tokens`, bit 2 `audio_ms`).
    case request(shape: Int)
    case markMinute
    case auditTip, auditAnchor, auditInsert

    /// Where the writer keeps this statement: an array read by index costs less than a dictionary's
    /// hashing, and a group commit looks up eight statements (issue 16).
    var slot: Int {
        switch self {
        case .begin: 0
        case .commit: 1
        case .rollback: 2
        case .savepoint: 3
        case .release: 4
        case .rollbackToSavepoint: 5
        case .markMinute: 6
        case .auditTip: 7
        case .auditAnchor: 8
        case .auditInsert: 9
        case .request(let shape): 10 + shape
        }
    }

    static let slots = 10 + 8
}

/// The writer's sqlite3 connection and its prepared statements. Not thread-safe by itself: it is
/// only ever touched under the writer's lock, by one thread at a time (``SQLiteWriter/run(_:)``,
/// ``SQLiteWriter/runHere(_:)``), hence `@unchecked`.
final class WriterConnection: @unchecked Sendable {
    private var db: OpaquePointer?
    /// By ``WriterStatement/slot``.
    private var statements = [OpaquePointer?](repeating: nil, count: WriterStatement.slots)
    /// From this WAL size (pages) on, a checkpoint follows the commit.
    let checkpointPages: Int32
    /// The WAL's size in pages after this connection's last commit (set by the WAL hook).
    private(set) var walPages: Int32 = 0
    /// A checkpoint job is queued and has not run yet.
    private var checkpointQueued = false
    /// Checkpoints run, and the pages they copied to the database file (tests, benchmarks).
    private(set) var checkpoints = 0
    private(set) var checkpointedPages = 0

    init(path: String, checkpointPages: Int32 = SQLiteWriter.defaultCheckpointPages) throws {
        self.checkpointPages = checkpointPages
        // As SQLiteNIO opens the file (same flags, so a path is read the same way), except that this
        // connection is only used from one thread (no mutex of its own needed).
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI | SQLITE_OPEN_EXRESCODE
        var handle: OpaquePointer?
        let rc = sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite_nio_sqlite3_close_v2(handle)
            throw SQLiteWriteError(code: rc, message: "\(message) (opening the write connection)")
        }
        db = handle
        do {
            // The settings every connection of the storage has (Storage.configure), and the WAL
            // durability of the main connection: a committed write survives a crash of the process.
            sqlite_nio_sqlite3_busy_timeout(handle, SQLiteWriter.busyTimeoutMs)
            try exec("PRAGMA foreign_keys=ON")
            try exec("PRAGMA synchronous=NORMAL")
            // No checkpoint inside a commit: the writer checkpoints between commits (see SQLiteWriter).
            // The hook replaces the auto-checkpoint's own; the pragma says so explicitly.
            try exec("PRAGMA wal_autocheckpoint=0")
            sqlite_nio_sqlite3_wal_hook(handle, walHook, Unmanaged.passUnretained(self).toOpaque())
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Runs `sql` (no binds, no result rows wanted) without keeping it prepared.
    private func exec(_ sql: String) throws {
        guard let db else { throw closed }
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite_nio_sqlite3_exec(db, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "failed"
            sqlite_nio_sqlite3_free(message)
            throw SQLiteWriteError(code: rc, message: text)
        }
    }

    private var closed: SQLiteWriteError { SQLiteWriteError(code: SQLITE_MISUSE, message: "the write connection is closed") }

    func error(_ rc: Int32) -> SQLiteWriteError {
        guard let db else { return closed }
        return SQLiteWriteError(code: sqlite_nio_sqlite3_extended_errcode(db), message: String(cString: sqlite_nio_sqlite3_errmsg(db)))
    }

    /// The prepared statement `key`, prepared from `sql` on first use and kept.
    func statement(_ key: WriterStatement, _ sql: @autoclosure () -> String) throws -> PreparedStatement {
        if let s = statements[key.slot] { return PreparedStatement(handle: s, connection: self) }
        guard let db else { throw closed }
        var handle: OpaquePointer?
        let text = sql()
        let rc = sqlite_nio_sqlite3_prepare_v3(db, text, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard rc == SQLITE_OK, let handle else {
            let e = error(rc)
            sqlite_nio_sqlite3_finalize(handle)
            throw e
        }
        statements[key.slot] = handle
        return PreparedStatement(handle: handle, connection: self)
    }

    /// `BEGIN IMMEDIATE` without waiting for another connection's write: true when the transaction
    /// is begun, false when the write lock was taken (nothing begun; the busy timeout is back).
    func beginWithoutWaiting() throws -> Bool {
        guard let db else { return false }
        sqlite_nio_sqlite3_busy_timeout(db, 0)
        defer { sqlite_nio_sqlite3_busy_timeout(db, SQLiteWriter.busyTimeoutMs) }
        do {
            try execute(.begin, "BEGIN IMMEDIATE")
            return true
        } catch let e as SQLiteWriteError where e.code & 0xff == SQLITE_BUSY {
            return false
        }
    }

    /// Runs the statement `key` (no binds) to completion.
    func execute(_ key: WriterStatement, _ sql: @autoclosure () -> String) throws {
        let s = try statement(key, sql())
        defer { s.reset() }
        try s.run()
    }

    /// Called by the WAL hook after each commit of this connection with the WAL's size.
    fileprivate func committed(walPages pages: Int32) { walPages = pages }

    /// True (once) when the last commit left the WAL at ``checkpointPages`` or more and no
    /// checkpoint is queued yet: the caller queues one.
    func takeCheckpointDue() -> Bool {
        guard db != nil, !checkpointQueued, walPages >= checkpointPages else { return false }
        checkpointQueued = true
        return true
    }

    /// A PASSIVE checkpoint: copies what it can of the WAL into the database file without waiting
    /// for readers or writers (a busy database is simply tried again after a later commit). The
    /// next write starts the WAL over once everything in it was copied.
    func checkpoint() {
        checkpointQueued = false
        guard let db else { return }
        var logPages: Int32 = 0, copied: Int32 = 0
        let rc = sqlite_nio_sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &logPages, &copied)
        if rc == SQLITE_OK {
            checkpoints += 1
            checkpointedPages += Int(max(copied, 0))
            walPages = 0
        }
    }

    /// True while a transaction is open on this connection.
    var inTransaction: Bool { db.map { sqlite_nio_sqlite3_get_autocommit($0) == 0 } ?? false }

    func close() {
        for case let s? in statements { sqlite_nio_sqlite3_finalize(s) }
        statements = [OpaquePointer?](repeating: nil, count: WriterStatement.slots)
        if let db { sqlite_nio_sqlite3_close_v2(db) }
        db = nil
    }
}

/// The WAL hook: SQLite calls it on the writer's thread after each commit of the writer's
/// connection, with the WAL's size in pages. It only notes the size (no checkpoint here: that would
/// be inside the commit).
private let walHook: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = { context, _, _, pages in
    if let context { Unmanaged<WriterConnection>.fromOpaque(context).takeUnretainedValue().committed(walPages: pages) }
    return SQLITE_OK
}

/// `SQLITE_TRANSIENT`: SQLite copies the bound bytes (the macro is not imported into Swift).
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One use of a kept statement: bind, step, then ``reset()`` (which also clears the binds).
struct PreparedStatement {
    let handle: OpaquePointer
    unowned let connection: WriterConnection

    /// Binds `value` to the parameter `index` (from 1).
    func bind(_ value: Int64, at index: Int32) throws {
        let rc = sqlite_nio_sqlite3_bind_int64(handle, index, value)
        guard rc == SQLITE_OK else { throw connection.error(rc) }
    }

    /// Binds `cells` to the parameters 1…n.
    func bind(_ cells: ArraySlice<Cell>) throws {
        var i: Int32 = 1
        for cell in cells {
            let rc: Int32
            switch cell {
            case .int(let v): rc = sqlite_nio_sqlite3_bind_int64(handle, i, v)
            case .nullInt, .nullText: rc = sqlite_nio_sqlite3_bind_null(handle, i)
            case .text(var s):
                // Explicit length: the text is stored whole, as SQLiteNIO binds it (even with a NUL).
                rc = s.withUTF8 { bytes in
                    bytes.withMemoryRebound(to: CChar.self) { chars in
                        sqlite_nio_sqlite3_bind_text64(handle, i, chars.baseAddress ?? emptyCString, UInt64(chars.count), transient,
                                                       UInt8(SQLITE_UTF8))
                    }
                }
            }
            guard rc == SQLITE_OK else { throw connection.error(rc) }
            i += 1
        }
    }

    /// Steps once: true when a row is there to read, false when the statement is done.
    func step() throws -> Bool {
        let rc = sqlite_nio_sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw connection.error(rc)
    }

    /// Steps until done (rows, if any, are skipped).
    func run() throws {
        while try step() {}
    }

    func int64(_ column: Int32) -> Int64 { sqlite_nio_sqlite3_column_int64(handle, column) }

    func text(_ column: Int32) -> String {
        guard let p = sqlite_nio_sqlite3_column_text(handle, column) else { return "" }
        let n = Int(sqlite_nio_sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// Whether the text in `column` is `string`'s bytes (NULL reads as empty, as ``text(_:)`` does),
    /// without making a string of it.
    func text(_ column: Int32, equals string: String) -> Bool {
        guard let p = sqlite_nio_sqlite3_column_text(handle, column) else { return string.isEmpty }
        let n = Int(sqlite_nio_sqlite3_column_bytes(handle, column))
        var string = string
        return string.withUTF8 { $0.elementsEqual(UnsafeBufferPointer(start: p, count: n)) }
    }

    func reset() {
        sqlite_nio_sqlite3_reset(handle)
        sqlite_nio_sqlite3_clear_bindings(handle)
    }
}

/// A valid pointer for an empty text (a nil pointer would bind NULL).
private let emptyCString: UnsafePointer<CChar> = {
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    p.initialize(to: 0)
    return UnsafePointer(p)
}()
