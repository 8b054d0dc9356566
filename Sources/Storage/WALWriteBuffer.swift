#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import VaporCSQLite

/// SQLite's file layer ("VFS") as the system's `unix` one, except that a commit's WAL frames reach
/// the file in one `pwrite` instead of two per frame (issue 16).
///
/// SQLite appends a frame to the WAL as two writes, its 24-byte header and then the page. A group
/// commit of one ledger row changes about ten pages: twenty `pwrite` calls, each going through
/// ext4's per-page write path — at one connection 29 µs of the request's ~430 µs of CPU. This layer
/// keeps the frames a transaction appends in memory and writes them in one call when the commit
/// frame (the one whose header carries the database size) is complete, before `xWrite` returns.
///
/// Nothing is visible earlier or later than without it. SQLite publishes a commit to other
/// connections (the WAL index header) only after the commit frame's `xWrite` has returned, by
/// which time the frames are in the file: what a crash of the process leaves on disk is what
/// SQLite's own writes would have left. A failed write is the commit's `xWrite` error, so SQLite
/// rolls the transaction back as it would. Any other call on the WAL file (a read, sync, size,
/// truncation, file control, close) writes the buffered frames first; a write anywhere but the end
/// of the frames being appended (SQLite rewriting a frame it wrote earlier, or its checksums) is
/// written through after them, in order. Only frame appends are buffered: a sequence starts with
/// the WAL header written at offset 0, or right after a commit frame this connection wrote.
/// Database, journal and temporary files pass straight through to `unix`.
///
/// ``install()`` registers it as the process's default VFS, so both the writer connection and
/// SQLiteNIO's main connection use it.
enum WALWriteBuffer {
    static let vfsName = "llmaas-unix-walbuffer"

    /// Registers the VFS once per process (idempotent, thread-safe).
    static func install() { _ = registered }

    private static let registered: Bool = {
        guard let unix = sqlite_nio_sqlite3_vfs_find("unix") else { return false }
        base = unix
        let vfs = UnsafeMutablePointer<sqlite3_vfs>.allocate(capacity: 1)
        vfs.initialize(to: unix.pointee)
        vfs.pointee.pNext = nil
        vfs.pointee.szOsFile = Int32(headerSize) + unix.pointee.szOsFile
        vfs.pointee.zName = UnsafePointer(strdup(vfsName))
        vfs.pointee.xOpen = open
        return sqlite_nio_sqlite3_vfs_register(vfs, 1) == SQLITE_OK
    }()

    /// Frames buffered per WAL file before they are written anyway (a large transaction): 62
    /// frames of 1 KB pages. Under `unix`'s limit of one write call (it writes at most 128 KB − 1
    /// bytes per call and reports a larger one as a full disk).
    static let capacity = 64 * 1024

    /// Commits whose frames went to the file in one write, process-wide (tests, benchmarks).
    static let bufferedCommits = Atomic<Int>(0)
}

// MARK: - Layout of a file handle
//
// SQLite allocates `szOsFile` bytes per open file and passes them to `xOpen`. This layer's handle
// is: the `sqlite3_file` header SQLite reads (its methods pointer), the WAL state (nil for other
// files), then the `unix` file handle itself.

private let stateOffset = MemoryLayout<sqlite3_file>.stride
private let headerSize = stateOffset + MemoryLayout<UnsafeMutablePointer<WALState>?>.stride
nonisolated(unsafe) private var base: UnsafeMutablePointer<sqlite3_vfs>!

private struct WALState {
    var buffer: UnsafeMutableRawPointer
    var count = 0
    /// File offset of the buffer's first byte.
    var start: Int64 = 0
    /// Where the next appended frame starts, when a sequence of appends is known; -1 otherwise.
    var appendAt: Int64 = -1
    /// The last buffered write was a commit frame's header: its page completes the commit.
    var commitHeaderBuffered = false
    /// End of a commit frame's header written through, to recognise its page (and resume buffering).
    var commitHeaderWrittenTo: Int64 = -1
}

@inline(__always) private func inner(_ file: UnsafeMutablePointer<sqlite3_file>) -> UnsafeMutablePointer<sqlite3_file> {
    UnsafeMutableRawPointer(file).advanced(by: headerSize).assumingMemoryBound(to: sqlite3_file.self)
}

@inline(__always) private func methods(_ file: UnsafeMutablePointer<sqlite3_file>) -> sqlite3_io_methods {
    inner(file).pointee.pMethods.pointee
}

@inline(__always) private func walState(_ file: UnsafeMutablePointer<sqlite3_file>) -> UnsafeMutablePointer<WALState>? {
    UnsafeMutableRawPointer(file).load(fromByteOffset: stateOffset, as: UnsafeMutablePointer<WALState>?.self)
}

@inline(__always) private func setWALState(_ file: UnsafeMutablePointer<sqlite3_file>, _ state: UnsafeMutablePointer<WALState>?) {
    UnsafeMutableRawPointer(file).storeBytes(of: state, toByteOffset: stateOffset, as: UnsafeMutablePointer<WALState>?.self)
}

/// A WAL frame header's second word is the database size for a commit frame, 0 otherwise.
@inline(__always) private func isCommitFrameHeader(_ data: UnsafeRawPointer) -> Bool {
    data.loadUnaligned(fromByteOffset: 4, as: UInt32.self) != 0
}

/// Writes the buffered frames (if any) in one call.
private func flush(_ file: UnsafeMutablePointer<sqlite3_file>) -> Int32 {
    guard let state = walState(file), state.pointee.count > 0 else { return SQLITE_OK }
    let count = state.pointee.count
    state.pointee.count = 0
    let rc = methods(file).xWrite(inner(file), state.pointee.buffer, Int32(count), state.pointee.start)
    if rc != SQLITE_OK { state.pointee.appendAt = -1 }
    return rc
}

private let open: @convention(c) (UnsafeMutablePointer<sqlite3_vfs>?, UnsafePointer<CChar>?, UnsafeMutablePointer<sqlite3_file>?, Int32,
                                  UnsafeMutablePointer<Int32>?) -> Int32 = { _, name, file, flags, outFlags in
    guard let file else { return SQLITE_MISUSE }
    file.pointee.pMethods = nil
    setWALState(file, nil)
    let rc = base.pointee.xOpen(base, name, inner(file), flags, outFlags)
    guard let innerMethods = inner(file).pointee.pMethods else { return rc }
    if flags & SQLITE_OPEN_WAL != 0 {
        let state = UnsafeMutablePointer<WALState>.allocate(capacity: 1)
        state.initialize(to: WALState(buffer: UnsafeMutableRawPointer.allocate(byteCount: WALWriteBuffer.capacity, alignment: 16)))
        setWALState(file, state)
    }
    file.pointee.pMethods = ioMethods[Int(min(max(innerMethods.pointee.iVersion, 1), 3)) - 1]
    return rc
}

private let write: @convention(c) (UnsafeMutablePointer<sqlite3_file>?, UnsafeRawPointer?, Int32, sqlite3_int64) -> Int32 = { file, data, amount, offset in
    let file = file!, data = data!
    guard let state = walState(file) else { return methods(file).xWrite(inner(file), data, amount, offset) }
    let n = Int(amount)
    let walHeader = offset == 0 && n == 32
    if walHeader || (offset == state.pointee.appendAt && state.pointee.appendAt >= 0) {
        if walHeader || state.pointee.count + n > WALWriteBuffer.capacity {
            let rc = flush(file)
            if rc != SQLITE_OK { return rc }
        }
        if n <= WALWriteBuffer.capacity {
            if state.pointee.count == 0 { state.pointee.start = offset }
            (state.pointee.buffer + state.pointee.count).copyMemory(from: data, byteCount: n)
            state.pointee.count += n
            state.pointee.appendAt = offset + Int64(n)
            if n == 24 {
                state.pointee.commitHeaderBuffered = isCommitFrameHeader(data)
                return SQLITE_OK
            }
            if state.pointee.commitHeaderBuffered {
                state.pointee.commitHeaderBuffered = false
                WALWriteBuffer.bufferedCommits.add(1, ordering: .relaxed)
                return flush(file)
            }
            return SQLITE_OK
        }
    }
    // Not an append: what is buffered goes first, then this write, as SQLite asked.
    var rc = flush(file)
    if rc != SQLITE_OK { return rc }
    state.pointee.commitHeaderBuffered = false
    rc = methods(file).xWrite(inner(file), data, amount, offset)
    guard rc == SQLITE_OK else { state.pointee.appendAt = -1; return rc }
    if n == 24 {
        state.pointee.commitHeaderWrittenTo = isCommitFrameHeader(data) ? offset + 24 : -1
    } else {
        // A commit frame written through (this connection's first, or after another connection's
        // commits): the next transaction appends right after it.
        state.pointee.appendAt = offset == state.pointee.commitHeaderWrittenTo ? offset + Int64(n) : -1
        state.pointee.commitHeaderWrittenTo = -1
    }
    return rc
}

private let close: @convention(c) (UnsafeMutablePointer<sqlite3_file>?) -> Int32 = { file in
    let file = file!
    let flushed = flush(file)
    let rc = methods(file).xClose(inner(file))
    if let state = walState(file) {
        state.pointee.buffer.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
        setWALState(file, nil)
    }
    return flushed != SQLITE_OK ? flushed : rc
}

private func flushing(_ file: UnsafeMutablePointer<sqlite3_file>?, _ body: (UnsafeMutablePointer<sqlite3_file>, sqlite3_io_methods) -> Int32) -> Int32 {
    let file = file!
    let rc = flush(file)
    return rc != SQLITE_OK ? rc : body(inner(file), methods(file))
}

/// The methods of every file of this VFS, by `iVersion` (1–3) of the `unix` file's own: each one
/// writes the buffered WAL frames first (a no-op for other files), then calls the `unix` method.
nonisolated(unsafe) private let ioMethods: [UnsafePointer<sqlite3_io_methods>] = (1...3).map { version in
    var m = sqlite3_io_methods()
    m.iVersion = Int32(version)
    m.xClose = close
    m.xRead = { f, p, n, o in flushing(f) { $1.xRead($0, p, n, o) } }
    m.xWrite = write
    m.xTruncate = { f, size in
        if let s = f.flatMap(walState) { s.pointee.appendAt = -1 }
        return flushing(f) { $1.xTruncate($0, size) }
    }
    m.xSync = { f, flags in flushing(f) { $1.xSync($0, flags) } }
    m.xFileSize = { f, size in flushing(f) { $1.xFileSize($0, size) } }
    m.xLock = { f, lock in flushing(f) { $1.xLock($0, lock) } }
    m.xUnlock = { f, lock in flushing(f) { $1.xUnlock($0, lock) } }
    m.xCheckReservedLock = { f, out in flushing(f) { $1.xCheckReservedLock($0, out) } }
    m.xFileControl = { f, op, arg in flushing(f) { $1.xFileControl($0, op, arg) } }
    m.xSectorSize = { f in methods(f!).xSectorSize(inner(f!)) }
    m.xDeviceCharacteristics = { f in methods(f!).xDeviceCharacteristics(inner(f!)) }
    if version >= 2 {
        m.xShmMap = { f, page, size, extend, out in methods(f!).xShmMap(inner(f!), page, size, extend, out) }
        m.xShmLock = { f, offset, n, flags in methods(f!).xShmLock(inner(f!), offset, n, flags) }
        m.xShmBarrier = { f in methods(f!).xShmBarrier(inner(f!)) }
        m.xShmUnmap = { f, delete in methods(f!).xShmUnmap(inner(f!), delete) }
    }
    if version >= 3 {
        m.xFetch = { f, offset, n, out in flushing(f) { $1.xFetch($0, offset, n, out) } }
        m.xUnfetch = { f, offset, p in methods(f!).xUnfetch(inner(f!), offset, p) }
    }
    let pointer = UnsafeMutablePointer<sqlite3_io_methods>.allocate(capacity: 1)
    pointer.initialize(to: m)
    return UnsafePointer(pointer)
}
