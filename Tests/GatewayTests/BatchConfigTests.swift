import Testing
@testable import Gateway

/// The `batch:` section (issue 17): defaults, values, and errors naming the field.
@Suite struct BatchConfigTests {
    @Test func defaultsAndValues() throws {
        let d = GatewayConfig()
        #expect(d.batch.maxFileBytes == 100 << 20 && d.batch.maxRequests == 50_000 && d.batch.retentionDays == 7)
        #expect(d.batch.workerConcurrency == 2 && d.batch.filesDir == nil)
        let c = try GatewayConfig.parse("""
        batch: { max_file_bytes: 1000, max_requests: 10, retention_days: 2, worker_concurrency: 4, poll_interval_ms: 100, files_dir: ./f }
        """, baseDir: "/base")
        #expect(c.batch.maxFileBytes == 1000 && c.batch.maxRequests == 10 && c.batch.retentionDays == 2)
        #expect(c.batch.workerConcurrency == 4 && c.batch.pollIntervalMs == 100 && c.batch.filesDir == "/base/f")
    }

    @Test(arguments: [
        ("batch: { max_file_bytes: 0 }", "batch.max_file_bytes"),
        ("batch: { max_file_bytes: 2147483648 }", "batch.max_file_bytes"),
        ("batch: { max_requests: 0 }", "batch.max_requests"),
        ("batch: { retention_days: 0 }", "batch.retention_days"),
        ("batch: { worker_concurrency: 1000 }", "batch.worker_concurrency"),
        ("batch: { poll_interval_ms: 1 }", "batch.poll_interval_ms"),
        ("batch: { files_dir: \"\" }", "batch.files_dir"),
        ("batch: { max_files: 3 }", "batch.max_files"),
    ])
    func errorsNameTheField(_ yaml: String, _ field: String) {
        expectConfigError(yaml, field: field)
    }
}
