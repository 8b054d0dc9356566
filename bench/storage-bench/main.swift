// Ledger insert throughput, SQLite vs PostgreSQL, in one run (issue 14).
//
//   swift build --product storage-bench
//   .build/debug/storage-bench --postgres postgres://user:pw@127.0.0.1:55432/llmaas [--rows 20000] [--batch 100]
//   .build/release/storage-bench --rollup 60000 [--postgres URL]   # the rollup pass over an hour of ledger rows
//
// Each driver gets a fresh database (a temporary SQLite file with the gateway's WAL settings; a
// scratch schema on PostgreSQL, dropped afterwards), migrated, then `rows` ledger rows are written
// with Storage.insertRequests in batches of `batch` (the ledger's group commit writes such batches),
// by 1 writer and by 4 concurrent writers (PostgreSQL: its pool; SQLite: the dedicated write
// connection, and for comparison the one SQLiteNIO connection it replaced on that path). Prints a
// markdown table: rows/s, the median and p99 time of one batch, and the process's CPU time (user +
// system, every thread) per batch.
import Foundation
import Storage

func argument(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let rows = Int(argument("--rows") ?? "") ?? 20_000
let batch = Int(argument("--batch") ?? "") ?? 100
let postgresURL = argument("--postgres") ?? ProcessInfo.processInfo.environment["LLMAAS_TEST_POSTGRES_URL"]

func record(_ i: Int, writer: Int) -> RequestRecord {
    RequestRecord(id: "req_\(writer)_\(i)", createdAt: 1_900_000_000_000 + Int64(i) * 7, tenantID: "t1", keyID: "k1", model: "sim-chat",
                  endpoint: "chat.completions", status: 200, outcome: "ok", promptTokens: 40 + i % 50, completionTokens: 100 + i % 300,
                  latencyMs: 120 + i % 80, ttftMs: 15 + i % 10, backend: "sim-1", systemTokens: 10, reasoningTokens: 0,
                  costNano: 12_345 + Int64(i % 1000), energyMicroWh: 77, estimated: 0)
}

struct Result { let label: String; let writers: Int; let rowsPerSecond: Double; let p50: Double; let p99: Double; let cpuPerBatch: Double }

/// User + system CPU time of this process so far, in µs (all threads: the callers' and SQLite's).
func processCPU() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(RUSAGE_SELF.rawValue, &usage)  // Glibc imports RUSAGE_SELF as an enum case
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}

func measure(_ label: String, writers: Int, open: () async throws -> Storage) async throws -> Result {
    let storage = try await open()
    try await storage.migrate(at: 1)
    try await storage.insertTenant(TenantRecord(id: "t1", name: "bench", createdAt: 1))
    // Warm-up: one batch.
    try await storage.insertRequests((0..<batch).map { record($0, writer: 99) })
    let perWriter = rows / writers
    let start = ContinuousClock.now
    let cpuStart = processCPU()
    let times = try await withThrowingTaskGroup(of: [Double].self) { group in
        for w in 0..<writers {
            group.addTask {
                var times: [Double] = []
                for b in stride(from: 0, to: perWriter, by: batch) {
                    let chunk = (b..<min(b + batch, perWriter)).map { record($0, writer: w) }
                    let t0 = ContinuousClock.now
                    try await storage.insertRequests(chunk)
                    let d = ContinuousClock.now - t0
                    times.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
                }
                return times
            }
        }
        return try await group.reduce(into: [Double]()) { $0 += $1 }
    }.sorted()
    let elapsed = ContinuousClock.now - start
    let cpu = processCPU() - cpuStart
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    await storage.shutdown()
    return Result(label: label, writers: writers, rowsPerSecond: Double(perWriter * writers) / seconds,
                  p50: times[times.count / 2], p99: times[min(times.count - 1, times.count * 99 / 100)], cpuPerBatch: cpu / Double(times.count))
}

/// `--rollup N`: N ledger rows spread over one hour (4 models × 5 keys × 2 backends, latencies
/// 50–5 000 ms, some without a TTFT, some 4xx/5xx), then one rollup pass over that hour: its wall
/// time and the process's CPU time, per ledger row. The pass runs on the gateway's event loops
/// every `rollups.interval_seconds`, so its cost per row is paid by every request under load.
if let n = argument("--rollup").flatMap(Int.init) {
    let hour: Int64 = 1_900_000_800_000 - 1_900_000_800_000 % 3_600_000
    func row(_ i: Int) -> RequestRecord {
        let status = i % 97 == 0 ? 503 : (i % 89 == 0 ? 429 : 200)
        return RequestRecord(id: "req_\(i)", createdAt: hour + Int64(i) * 3_600_000 / Int64(n), tenantID: "t1", keyID: "k\(i % 5)",
                             model: "m\(i % 4)", endpoint: "chat.completions", status: status, outcome: status == 200 ? "ok" : "upstream_error",
                             promptTokens: 40 + i % 50, completionTokens: status == 200 ? 100 + i % 300 : 0, latencyMs: 50 + (i * 7919) % 4950,
                             ttftMs: i % 3 == 0 ? nil : 15 + i % 40, backend: "b\(i % 2)", systemTokens: 10, reasoningTokens: i % 7,
                             costNano: status == 429 ? nil : 12_345 + Int64(i % 1000), energyMicroWh: 77, estimated: 0)
    }
    var drivers: [(String, () async throws -> Storage)] = []
    let dir = NSTemporaryDirectory() + "storage-bench-\(UUID().uuidString)"
    drivers.append(("SQLite (file, WAL, dedicated writer)", { try await Storage.openSQLite(path: dir + "/llmaas.sqlite", dedicatedWriter: true) }))
    if let postgresURL {
        drivers.append(("PostgreSQL (loopback, pool 8)", {
            let schema = "bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
            return try await Storage.openPostgres(PostgresSettings(url: postgresURL, poolSize: 8, schema: schema, dropSchemaAtShutdown: true))
        }))
    }
    print("ledger rows: \(n) over one hour\n")
    print("| driver | rollup rows written | pass s | CPU ms | CPU µs per ledger row |")
    print("|---|---:|---:|---:|---:|")
    for (label, open) in drivers {
        let storage = try await open()
        try await storage.migrate(at: 1)
        try await storage.insertTenant(TenantRecord(id: "t1", name: "bench", createdAt: 1))
        for b in stride(from: 0, to: n, by: 1000) { try await storage.insertRequests((b..<min(b + 1000, n)).map(row)) }
        let start = ContinuousClock.now, cpuStart = processCPU()
        let report = try await storage.rollUp(now: hour + 2 * 3_600_000, lagMs: 0, minuteRetentionMs: 48 * 3_600_000, hourRetentionMs: 400 * 86_400_000)
        let cpu = processCPU() - cpuStart, elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("| \(label) | \(report.rowsWritten) | \(String(format: "%.2f", seconds)) | \(Int(cpu / 1000)) | \(String(format: "%.1f", cpu / Double(n))) |")
        await storage.shutdown()
    }
    try? FileManager.default.removeItem(atPath: dir)
    exit(0)
}

var results: [Result] = []
for writers in [1, 4] {
    // The gateway's SQLite: the dedicated write connection (one transaction per batch, statements
    // kept prepared); then the same file through the one SQLiteNIO connection (the path before it).
    for dedicatedWriter in [true, false] {
        let dir = NSTemporaryDirectory() + "storage-bench-\(UUID().uuidString)"
        results.append(try await measure(dedicatedWriter ? "SQLite (file, WAL, synchronous=NORMAL, dedicated writer)" : "SQLite (same, one SQLiteNIO connection)",
                                         writers: writers) {
            try await Storage.openSQLite(path: dir + "/llmaas.sqlite", dedicatedWriter: dedicatedWriter)
        })
        try? FileManager.default.removeItem(atPath: dir)
    }
    if let postgresURL {
        results.append(try await measure("PostgreSQL (loopback, pool 8)", writers: writers) {
            let schema = "bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
            return try await Storage.openPostgres(PostgresSettings(url: postgresURL, poolSize: 8, schema: schema, dropSchemaAtShutdown: true))
        })
    }
}
print("rows: \(rows), batch: \(batch)\n")
print("| driver | writers | rows/s | batch p50 ms | batch p99 ms | CPU µs/batch |")
print("|---|---:|---:|---:|---:|---:|")
for r in results {
    print("| \(r.label) | \(r.writers) | \(Int(r.rowsPerSecond)) | \(String(format: "%.2f", r.p50)) | \(String(format: "%.2f", r.p99)) | \(Int(r.cpuPerBatch)) |")
}
