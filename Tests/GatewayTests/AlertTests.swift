import Clocks
import EngineSim
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import OpenAIWire
import Quotas
import Storage
import Synchronization
import Tenancy
import StorageTesting
import Testing
@testable import Gateway

/// Alerts on the injected clock: hysteresis (fires once, resolves once, no re-fire while still
/// bad), persistence across a restart, tenant rules, signatures, config, the admin API's tenant
/// isolation, and the public status page.
@Suite(.serialized) struct AlertTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let t0: Int64 = 1_900_000_000_000

    /// Notifications the evaluator sent, in order.
    final class Inbox: Sendable {
        let list = Mutex<[AlertNotification]>([])
        var all: [AlertNotification] { list.withLock { $0 } }
        func add(_ n: AlertNotification) { list.withLock { $0.append(n) } }
    }

    func withPlatform(_ driver: TestDatabase, _ yaml: String = "", _ body: (Platform, ManualClock) async throws -> Void) async throws {
        var config = try GatewayConfig.parse(yaml.isEmpty ? "{}" : yaml)
        config.dataDir = NSTemporaryDirectory() + "llmaas-alerts-\(UUID().uuidString)"
        config.catalogPath = Self.repo + "/deploy/catalog.yaml"
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        let storage = try await driver.open()
        try await storage.migrate(at: Self.t0)
        let clock = ManualClock(nowMs: Self.t0)
        let platform = try Platform(config: config, storage: storage, logger: Logger(label: "alert-test"), clock: clock)
        do { try await body(platform, clock) } catch {
            await platform.shutdown()
            throw error
        }
        await platform.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDir)
    }

    /// `n` ledger rows of `model` with this latency, in the minute before the clock's now.
    func traffic(_ platform: Platform, model: String = "m1", tenant: String? = nil, latency: Int, n: Int = 20, status: Int = 200) async throws {
        let now = platform.now()
        try await platform.storage.insertRequests((0..<n).map { i in
            RequestRecord(id: UUID().uuidString, createdAt: now - 1000 - Int64(i), tenantID: tenant, keyID: nil, model: model, endpoint: "chat.completions",
                          status: status, outcome: "ok", latencyMs: latency, ttftMs: latency / 4)
        })
    }

    // MARK: Hysteresis

    @Test func trackerFiresOnceAndResolvesOnce() {
        var t = AlertTracker()
        let k = AlertTracker.Key(rule: "r", subject: "model:m")
        #expect(t.observe(k, .bad, periods: 3) == nil)
        #expect(t.observe(k, .bad, periods: 3) == nil)
        #expect(t.observe(k, .good, periods: 3) == nil)  // broken streak
        #expect(t.observe(k, .bad, periods: 3) == nil)
        #expect(t.observe(k, .bad, periods: 3) == nil)
        #expect(t.observe(k, .bad, periods: 3) == .fire)
        for _ in 0..<10 { #expect(t.observe(k, .bad, periods: 3) == nil) }  // still bad: no re-fire
        #expect(t.observe(k, .good, periods: 3) == nil)
        #expect(t.observe(k, .neutral, periods: 3) == nil)  // between the thresholds: restarts the count
        #expect(t.observe(k, .good, periods: 3) == nil)
        #expect(t.observe(k, .good, periods: 3) == nil)
        #expect(t.observe(k, .good, periods: 3) == .resolve)
        for _ in 0..<10 { #expect(t.observe(k, .good, periods: 3) == nil) }
        #expect(t.active.isEmpty && t.tracked.isEmpty)
    }

    @Test func resolveThresholdMakesABand() throws {
        let r = try AlertRule.make(id: "r", tenantID: nil, name: nil, kindText: "latency_p95", model: nil, backend: nil, threshold: 500,
                                   resolveThreshold: 300, forPeriods: 1, createdAt: 0)
        #expect(r.isBad(501) && !r.isBad(500))
        #expect(r.isGood(300) && !r.isGood(400) && !r.isBad(400))
        let c = try AlertRule.make(id: "c", tenantID: "t", name: nil, kindText: "credit_low", model: nil, backend: nil, threshold: 10,
                                   resolveThreshold: 20, forPeriods: nil, createdAt: 0)
        #expect(c.isBad(9.99) && !c.isBad(10) && c.isGood(20) && !c.isGood(15))
        #expect(throws: AlertRule.Invalid.self) {
            try AlertRule.make(id: "x", tenantID: nil, name: nil, kindText: "latency_p95", model: nil, backend: nil, threshold: 500,
                               resolveThreshold: 600, forPeriods: 1, createdAt: 0)
        }
        #expect(throws: AlertRule.Invalid(param: "tenant", message: "backend_down watches the fleet: only global (operator) rules may use it")) {
            try AlertRule.make(id: "x", tenantID: "t", name: nil, kindText: "backend_down", model: nil, backend: nil, threshold: nil,
                               resolveThreshold: nil, forPeriods: 1, createdAt: 0)
        }
        #expect(throws: AlertRule.Invalid.self) {
            try AlertRule.make(id: "x", tenantID: nil, name: nil, kindText: "p99", model: nil, backend: nil, threshold: 1,
                               resolveThreshold: nil, forPeriods: 1, createdAt: 0)
        }
    }

    // MARK: The evaluator on a ManualClock

    static let slowRule = """
    alerts:
      evaluation_interval_seconds: 60
      window_seconds: 60
      rules:
        - { name: slow-m1, kind: latency_p95, model: m1, threshold: 400, resolve_threshold: 300, for_periods: 2 }
    """

    @Test(arguments: TestDatabase.all) func aSlowModelFiresOnceThenResolvesOnce(_ driver: TestDatabase) async throws {
        try await withPlatform(driver, Self.slowRule) { platform, clock in
            let inbox = Inbox()
            let evaluator = AlertEvaluator(platform: platform) { inbox.add($0) }
            // Fast: nothing.
            try await traffic(platform, latency: 100)
            #expect(await evaluator.step().isEmpty)
            // Slow for one period: not yet (for_periods 2).
            clock.advance(byMs: 60_000)
            try await traffic(platform, latency: 900)
            #expect(await evaluator.step().isEmpty)
            clock.advance(byMs: 60_000)
            try await traffic(platform, latency: 900)
            let fired = await evaluator.step()
            #expect(fired.map(\.event) == [.fired])
            let incident = try #require(fired.first?.incident)
            #expect(incident.subject == "model:m1" && incident.model == "m1" && incident.tenantID == nil && incident.value == 900)
            #expect(incident.message.contains("p95 latency of model m1 is 900 ms"))
            // Still slow, slower: no second notification; the peak follows.
            for _ in 0..<3 {
                clock.advance(byMs: 60_000)
                try await traffic(platform, latency: 1500)
                #expect(await evaluator.step().isEmpty)
            }
            #expect(try await platform.storage.incident(id: incident.id)?.peak == 1500)
            // Between the thresholds (350 ms): stays active.
            clock.advance(byMs: 60_000)
            try await traffic(platform, latency: 350)
            #expect(await evaluator.step().isEmpty)
            // Fast again for two periods: resolved, once.
            clock.advance(byMs: 60_000)
            try await traffic(platform, latency: 50)
            #expect(await evaluator.step().isEmpty)
            clock.advance(byMs: 60_000)
            try await traffic(platform, latency: 50)
            let resolved = await evaluator.step()
            #expect(resolved.map(\.event) == [.resolved])
            #expect(resolved.first?.incident.id == incident.id && resolved.first?.incident.resolvedAt == platform.now())
            for _ in 0..<3 {
                clock.advance(byMs: 60_000)
                try await traffic(platform, latency: 50)
                #expect(await evaluator.step().isEmpty)
            }
            #expect(inbox.all.map(\.event) == [.fired, .resolved])
            let history = try await Alerting(platform: platform).history()
            #expect(history.count == 1 && history[0].resolvedAt != nil && history[0].peak == 1500)
            // Written to the audit log.
            await platform.audit.flush()
            let audit = try await platform.storage.auditEntries(tenantID: nil, from: 0, to: .max).filter { $0.action.hasPrefix("alert.") }
            #expect(audit.map(\.action) == ["alert.fired", "alert.resolved"])
            #expect(audit.allSatisfy { $0.target == incident.id })
        }
    }

    @Test(arguments: TestDatabase.all) func anActiveIncidentSurvivesARestartWithoutFiringAgain(_ driver: TestDatabase) async throws {
        try await withPlatform(driver, Self.slowRule) { platform, clock in
            let first = AlertEvaluator(platform: platform) { _ in }
            for _ in 0..<2 {
                clock.advance(byMs: 60_000)
                try await traffic(platform, latency: 900)
                await first.step()
            }
            #expect(try await platform.storage.activeIncidents().count == 1)
            // A new evaluator (the gateway restarted) sees the active incident: still slow, no new one.
            let inbox = Inbox()
            let second = AlertEvaluator(platform: platform) { inbox.add($0) }
            for _ in 0..<3 {
                clock.advance(byMs: 60_000)
                try await traffic(platform, latency: 900)
                await second.step()
            }
            #expect(inbox.all.isEmpty)
            // No traffic at all counts as good: it resolves after two periods.
            clock.advance(byMs: 120_000)
            await second.step()
            clock.advance(byMs: 60_000)
            await second.step()
            #expect(inbox.all.map(\.event) == [.resolved])
            #expect(try await platform.storage.activeIncidents().isEmpty)
        }
    }

    @Test(arguments: TestDatabase.all) func tenantRulesSeeOnlyTheirTenantAndDeletedRulesResolve(_ driver: TestDatabase) async throws {
        try await withPlatform(driver) { platform, clock in
            let a = try await platform.administration.createTenant(name: "acme")
            let b = try await platform.administration.createTenant(name: "beta")
            let alerting = Alerting(platform: platform)
            let rule = try AlertRule.make(id: "alr_a", tenantID: a.id, name: "errors", kindText: "error_rate", model: nil, backend: nil,
                                          threshold: 10, resolveThreshold: nil, forPeriods: 1, createdAt: platform.now())
            try await alerting.create(rule)
            let inbox = Inbox()
            let evaluator = AlertEvaluator(platform: platform) { inbox.add($0) }
            // beta's errors do not concern acme's rule.
            try await traffic(platform, model: "m1", tenant: b.id, latency: 10, status: 502)
            #expect(await evaluator.step().isEmpty)
            clock.advance(byMs: 60_000)
            try await traffic(platform, model: "m1", tenant: a.id, latency: 10, n: 8)
            try await traffic(platform, model: "m1", tenant: a.id, latency: 10, n: 2, status: 503)
            let fired = await evaluator.step()
            #expect(fired.count == 1 && fired[0].incident.tenantID == a.id && fired[0].incident.value == 20)
            #expect(try await alerting.activeIncidents(tenantID: b.id).isEmpty)
            #expect(try await alerting.activeIncidents(tenantID: a.id).count == 1)
            // Deleting the rule resolves its incident at the next evaluation.
            try await alerting.delete(id: rule.id)
            clock.advance(byMs: 60_000)
            #expect(await evaluator.step().map(\.event) == [.resolved])
            #expect(inbox.all.count == 2)
        }
    }

    @Test(arguments: TestDatabase.all) func aTenantMayCreateAtMostItsShareOfRules(_ driver: TestDatabase) async throws {
        try await withPlatform(driver) { platform, _ in
            let a = try await platform.administration.createTenant(name: "acme")
            let alerting = Alerting(platform: platform)
            for i in 0..<Alerting.maxRulesPerTenant {
                try await alerting.create(try AlertRule.make(id: "alr_\(i)", tenantID: a.id, name: nil, kindText: "budget", model: nil, backend: nil,
                                                             threshold: 80, resolveThreshold: nil, forPeriods: nil, createdAt: 0))
            }
            await #expect(throws: TenancyError.self) {
                try await alerting.create(try AlertRule.make(id: "alr_over", tenantID: a.id, name: nil, kindText: "budget", model: nil, backend: nil,
                                                             threshold: 80, resolveThreshold: nil, forPeriods: nil, createdAt: 0))
            }
            // Global rules are counted apart.
            try await alerting.create(try AlertRule.make(id: "alr_g", tenantID: nil, name: nil, kindText: "budget", model: nil, backend: nil,
                                                         threshold: 80, resolveThreshold: nil, forPeriods: nil, createdAt: 0))
            #expect(try await alerting.rules(tenantID: a.id).count == Alerting.maxRulesPerTenant)
        }
    }

    @Test(arguments: TestDatabase.all) func budgetAndCreditRulesWatchEachTenant(_ driver: TestDatabase) async throws {
        let yaml = """
        tiers:
          capped: { monthly_cap_eur: "1" }
          prepaid: { upfront_credit_eur: "1" }
        alerts:
          rules:
            - { name: budget80, kind: budget, threshold: 80 }
            - { name: credit, kind: credit_low, threshold: 0.5 }
        """
        try await withPlatform(driver, yaml) { platform, clock in
            let capped = try await platform.administration.createTenant(name: "capped", tier: "capped")
            let prepaid = try await platform.administration.createTenant(name: "prepaid", tier: "prepaid")
            let evaluator = AlertEvaluator(platform: platform) { _ in }
            #expect(await evaluator.step().isEmpty)
            // 0.85 € spent by each.
            for t in [capped, prepaid] {
                try await platform.storage.insertRequests([RequestRecord(id: UUID().uuidString, createdAt: platform.now(), tenantID: t.id, keyID: nil,
                                                                         model: "m", endpoint: "chat.completions", status: 200, outcome: "ok",
                                                                         latencyMs: 1, costNano: 850_000_000)])
            }
            clock.advance(byMs: 60_000)
            let fired = await evaluator.step()
            #expect(Set(fired.map { "\($0.incident.kind) \($0.incident.subject)" }) == ["budget tenant:\(capped.id)", "credit_low tenant:\(prepaid.id)"])
            #expect(fired.allSatisfy { $0.incident.tenantID == nil })  // global rules: the operator's
            #expect(try await Alerting(platform: platform).publicIncidents().isEmpty)  // never on the status page
        }
    }

    // MARK: Signatures

    @Test func signaturesVerifyAndRefuseTampering() throws {
        let body = Array(#"{"event":"alert.fired"}"#.utf8)
        let header = WebhookSignature.sign(body: body, secret: "whsec_test", unixSeconds: 1_900_000_000)
        #expect(header.hasPrefix("t=1900000000,v1="))
        try WebhookSignature.verify(header: header, body: body, secret: "whsec_test", nowSeconds: 1_900_000_100)
        #expect(throws: WebhookSignature.Failure.mismatch) {
            try WebhookSignature.verify(header: header, body: body + [0x20], secret: "whsec_test", nowSeconds: 1_900_000_000)
        }
        #expect(throws: WebhookSignature.Failure.mismatch) {
            try WebhookSignature.verify(header: header, body: body, secret: "whsec_other", nowSeconds: 1_900_000_000)
        }
        #expect(throws: WebhookSignature.Failure.stale) {
            try WebhookSignature.verify(header: header, body: body, secret: "whsec_test", nowSeconds: 1_900_001_000)
        }
        #expect(throws: WebhookSignature.Failure.malformed) {
            try WebhookSignature.verify(header: "v1=abc", body: body, secret: "whsec_test", nowSeconds: 1_900_000_000)
        }
        // The HMAC is over "<t>.<body>" (what receivers recompute), in lowercase hex.
        let hex = String(header.split(separator: "=").last!)
        #expect(hex.count == 64 && hex == WebhookSignature.hex(body: body, secret: "whsec_test", unixSeconds: 1_900_000_000))
        #expect(WebhookSignature.generateSecret() != WebhookSignature.generateSecret())
    }

    @Test(arguments: TestDatabase.all) func tenantSigningSecretIsSealedCreatedOnceAndRotated(_ driver: TestDatabase) async throws {
        try await withPlatform(driver) { platform, _ in
            let t = try await platform.administration.createTenant(name: "acme")
            let first = try await Webhooks.tenantSecret(platform, tenantID: t.id)
            #expect(try await Webhooks.tenantSecret(platform, tenantID: t.id) == first)
            let sealed = try #require(try await platform.storage.webhookSecret(tenantID: t.id))
            #expect(!sealed.contains(first))
            let rotated = try await Webhooks.rotateTenantSecret(platform, tenantID: t.id)
            #expect(rotated != first && rotated.hasPrefix("whsec_"))
            #expect(try await Webhooks.tenantSecret(platform, tenantID: t.id) == rotated)
        }
    }

    @Test(arguments: TestDatabase.all) func deliveryRetriesWithBackoffOnThePlatformClock(_ driver: TestDatabase) async throws {
        // A real HTTP receiver that refuses the notice (EngineSim answers 404 to a chat body without
        // a known model, and counts every request it received).
        let sims = SimFleet(configs: [SimConfig(port: 0)])
        let port = try await sims.start()[0]
        try await withPlatform(driver, "alerts: { webhook_attempts: 3 }") { platform, clock in
            let start = platform.now()
            let delivery = Task {
                await Webhooks.deliver(platform, target: "http://127.0.0.1:\(port)/v1/chat/completions", host: nil,
                                       body: .object([("event", "alert.fired")]), event: "alert.fired", secret: "whsec_x")
            }
            // Each retry waits on the clock: 1 s, then 2 s. Nothing moves until the test advances it.
            for (attempt, backoff) in [(1, Int64(1000)), (2, Int64(2000))] {
                while clock.sleepers == 0 { await Task.yield() }
                #expect(sims.machine(0).currentStats.requests == attempt)
                #expect(clock.now() == start + (attempt == 1 ? 0 : 1000))
                clock.advance(byMs: backoff)
            }
            #expect(await delivery.value == false)
            #expect(sims.machine(0).currentStats.requests == 3)
            #expect(clock.sleepers == 0)
        }
        await sims.stopAndWait(0)
    }

    @Test(arguments: TestDatabase.all) func aBackendWhoseBreakerIsOpenFiresBackendDown(_ driver: TestDatabase) async throws {
        let yaml = """
        routing: { breaker_threshold: 1 }
        backends:
          - { name: gone, kind: openai, url: "http://127.0.0.1:9", models: { "qwen3:8b": "q" }, timeouts: { connect_ms: 200 } }
        alerts:
          rules:
            - { name: down, kind: backend_down }
        """
        try await withPlatform(driver, yaml) { platform, clock in
            let inbox = Inbox()
            let evaluator = AlertEvaluator(platform: platform) { inbox.add($0) }
            #expect(await evaluator.step().isEmpty)  // not probed yet: healthy
            await platform.fleet.probeAll()  // nothing listens on port 9: the breaker opens
            #expect(platform.fleet.backendStates["gone"] == "open")
            #expect(await evaluator.step().isEmpty)  // for_periods 2 by default
            clock.advance(byMs: 1000)
            let fired = await evaluator.step()
            #expect(fired.map(\.incident.subject) == ["backend:gone"])
            #expect(fired.first?.incident.backend == "gone" && fired.first?.incident.tenantID == nil)
            // On the status page without the backend's name.
            let public_ = try await Alerting(platform: platform).publicIncidents()
            #expect(public_.count == 1 && !StatusPage.publicMessage(public_[0]).contains("gone"))
        }
    }

    // MARK: Config

    @Test func configSectionsParseAndRefuseMistakes() throws {
        let c = try GatewayConfig.parse("""
        rollups: { interval_seconds: 2, lag_seconds: 1, minute_retention_hours: 24, retention_days: 30 }
        alerts:
          evaluation_interval_seconds: 1
          window_seconds: 3
          operator_webhook_url: https://ops.example.com/hook
          operator_webhook_secret: "0123456789abcdef"
          rules:
            - { name: slow, kind: ttft_p95, threshold: 800 }
            - { name: down, kind: backend_down, backend: gpu-1 }
            - { name: acme-budget, kind: budget, tenant: acme, threshold: 100 }
        """)
        #expect(c.rollups.intervalSeconds == 2 && c.rollups.retentionDays == 30)
        #expect(c.alerts.windowSeconds == 3 && c.alerts.operatorWebhookURL == "https://ops.example.com/hook")
        #expect(c.alerts.rules.map(\.id) == ["cfg-slow", "cfg-down", "cfg-acme-budget"])
        #expect(c.alerts.rules[0].forPeriods == 3 && c.alerts.rules[2].tenantName == "acme")
        func refused(_ yaml: String) -> String? {
            do { _ = try GatewayConfig.parse(yaml); return nil } catch let e as ConfigError { return e.field } catch { return "?" }
        }
        #expect(refused("alerts: { operator_webhook_url: https://x.example }") == "alerts.operator_webhook_secret")
        #expect(refused("alerts: { rules: [ { name: a, kind: latency_p95 } ] }") == "alerts.rules[0].threshold")
        #expect(refused("alerts: { rules: [ { name: a, kind: latency_p99, threshold: 1 } ] }") == "alerts.rules[0].kind")
        #expect(refused("alerts: { rules: [ { name: a, kind: queue_saturated, threshold: 5, tenant: acme } ] }") == "alerts.rules[0].tenant")
        #expect(refused("alerts: { rules: [ { name: a, kind: budget, threshold: 80 }, { name: a, kind: budget, threshold: 100 } ] }") == "alerts.rules[1].name")
        #expect(refused("alerts: { rules: [ { name: a, kind: budget, threshold: 80, colour: red } ] }") == "alerts.rules[0].colour")
        #expect(refused("rollups: { interval_seconds: 0 }") == "rollups.interval_seconds")
        #expect(refused("rollups: { minute_retention_hours: 100, retention_days: 1 }") == "rollups.retention_days")
    }

    // MARK: Admin API and status page

    func withRouter(_ yaml: String = "", _ body: @Sendable (any TestClientProtocol, Platform) async throws -> Void) async throws {
        var config = try GatewayConfig.parse(yaml.isEmpty ? "{}" : yaml)
        config.dataDir = NSTemporaryDirectory() + "llmaas-alert-router-\(UUID().uuidString)"
        config.catalogPath = Self.repo + "/deploy/catalog.yaml"
        let platform = try await Platform.open(config: config, logger: Logger(label: "alert-router-test"))
        let app = Application(router: buildRouter(platform))
        do { try await app.test(.router) { client in try await body(client, platform) } } catch {
            await platform.shutdown()
            throw error
        }
        await platform.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDir)
    }

    static func json(_ r: TestResponse) throws -> JSONValue { try JSONValue.parse(Array(r.body.readableBytesView)) }

    @Test func adminAPITenantTokensSeeOnlyTheirRulesAndIncidents() async throws {
        try await withRouter("alerts: { rules: [ { name: fleet, kind: backend_down } ] }") { client, platform in
            let a = try await platform.administration.createTenant(name: "acme")
            let b = try await platform.administration.createTenant(name: "beta")
            let (_, op) = try await platform.administration.createAdminToken(name: "op", tenantName: nil)
            let (_, ta) = try await platform.administration.createAdminToken(name: "a", tenantName: "acme")
            let (_, tb) = try await platform.administration.createAdminToken(name: "b", tenantName: "beta")
            func call(_ token: String, _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil) async throws -> (HTTPResponse.Status, JSONValue) {
                try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
                                         body: body.map { ByteBuffer(string: $0) }) { r in (r.status, try Self.json(r)) }
            }
            // acme creates a rule for itself (the tenant comes from the token).
            let (s1, made) = try await call(ta, .post, "/admin/v1/alerts/rules", #"{"kind":"latency_p95","threshold":500,"model":"m1","for_periods":2}"#)
            #expect(s1 == .created)
            #expect(made["tenant_id"]?.stringValue == a.id && made["source"]?.stringValue == "api")
            let id = try #require(made["id"]?.stringValue)
            // beta cannot see, read or delete it, nor create one for acme.
            #expect(try await call(tb, .get, "/admin/v1/alerts/rules").1["data"]?.arrayValue?.isEmpty == true)
            #expect(try await call(tb, .get, "/admin/v1/alerts/rules/\(id)").0 == .notFound)
            #expect(try await call(tb, .delete, "/admin/v1/alerts/rules/\(id)").0 == .notFound)
            #expect(try await call(tb, .post, "/admin/v1/alerts/rules", #"{"kind":"budget","threshold":80,"tenant_id":"\#(a.id)"}"#).0 == .notFound)
            #expect(try await call(tb, .get, "/admin/v1/alerts/incidents?tenant=\(a.id)").0 == .notFound)
            #expect(try await call(tb, .post, "/admin/v1/tenants/\(a.id)/webhook-secret").0 == .notFound)
            // Fleet rules are the operator's.
            #expect(try await call(tb, .post, "/admin/v1/alerts/rules", #"{"kind":"queue_saturated","threshold":5}"#).0 == .forbidden)
            // Bad input: a clear error naming the field.
            let (s2, e2) = try await call(ta, .post, "/admin/v1/alerts/rules", #"{"kind":"latency_p95","threshold":-1}"#)
            #expect(s2 == .badRequest && e2["error"]?["param"]?.stringValue == "threshold")
            let (s3, e3) = try await call(ta, .post, "/admin/v1/alerts/rules", #"{"kind":"latency_p95","threshold":5,"colour":"red"}"#)
            #expect(s3 == .badRequest && e3["error"]?["param"]?.stringValue == "colour")
            // The operator sees both rules (config and API) and may not delete a config rule.
            let all = try await call(op, .get, "/admin/v1/alerts/rules").1["data"]?.arrayValue ?? []
            #expect(Set(all.compactMap { $0["id"]?.stringValue }) == ["cfg-fleet", id])
            #expect(try await call(op, .delete, "/admin/v1/alerts/rules/cfg-fleet").0 == .conflict)
            // Incidents: a tenant sees its own only.
            try await platform.storage.insertIncident(IncidentRecord(id: "inc_a", ruleID: id, tenantID: a.id, kind: "latency_p95", subject: "model:m1",
                                                                     model: "m1", backend: nil, threshold: 500, value: 900, peak: 900, message: "slow", startedAt: 1))
            try await platform.storage.insertIncident(IncidentRecord(id: "inc_b", ruleID: "x", tenantID: b.id, kind: "budget", subject: "tenant:\(b.id)",
                                                                     model: nil, backend: nil, threshold: 80, value: 90, peak: 90, message: "budget", startedAt: 2))
            let seenA = try await call(ta, .get, "/admin/v1/alerts/incidents?state=active").1["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
            #expect(seenA == ["inc_a"])
            let seenOp = try await call(op, .get, "/admin/v1/alerts/incidents").1["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
            #expect(Set(seenOp ?? []) == ["inc_a", "inc_b"])
            #expect(try await call(op, .get, "/admin/v1/alerts/incidents?state=open").0 == .badRequest)
            // The signing secret is shown once per rotation.
            let (s4, secret) = try await call(ta, .post, "/admin/v1/tenants/\(a.id)/webhook-secret")
            #expect(s4 == .ok && secret["secret"]?.stringValue?.hasPrefix("whsec_") == true)
            #expect(try await call(ta, .delete, "/admin/v1/alerts/rules/\(id)").0 == .ok)
            #expect(try await call(ta, .get, "/admin/v1/alerts/rules").1["data"]?.arrayValue?.isEmpty == true)
        }
    }

    @Test func statusPageIsPublicCacheableAndHasNoTenantData() async throws {
        try await withRouter { client, platform in
            let t = try await platform.administration.createTenant(name: "secret-tenant")
            let now = platform.now()
            try await platform.storage.insertRequests((0..<10).map { i in
                RequestRecord(id: "r\(i)", createdAt: now - 10 * 60_000, tenantID: t.id, keyID: "k", model: "qwen3:8b", endpoint: "chat.completions",
                              status: i == 0 ? 502 : 200, outcome: "ok", completionTokens: 100, latencyMs: 1100, ttftMs: 100)
            })
            _ = await RollupService(platform: platform).step()
            try await platform.storage.insertIncident(IncidentRecord(id: "inc_g", ruleID: "cfg-x", tenantID: nil, kind: "latency_p95", subject: "model:qwen3:8b",
                                                                     model: "qwen3:8b", backend: nil, threshold: 500, value: 900, peak: 900,
                                                                     message: "p95 latency of model qwen3:8b is 900 ms", startedAt: now))
            try await platform.storage.insertIncident(IncidentRecord(id: "inc_t", ruleID: "alr_x", tenantID: t.id, kind: "latency_p95", subject: "model:qwen3:8b",
                                                                     model: "qwen3:8b", backend: nil, threshold: 100, value: 900, peak: 900, message: "tenant's", startedAt: now))
            try await client.execute(uri: "/status.json", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.cacheControl] == "public, max-age=\(StatusPage.maxAge)")
                let json = try Self.json(r)
                let model = try #require(json["models"]?.arrayValue?.first { $0["id"]?.stringValue == "qwen3:8b" })
                #expect(model["windows"]?["24h"]?["availability"]?.doubleValue == 0.9)
                #expect(model["windows"]?["24h"]?["tokens_per_second"]?.doubleValue == 100)
                #expect(json["incidents"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["inc_g"])
                #expect(json["status"]?.stringValue == "degraded")
                let text = String(buffer: r.body)
                #expect(!text.contains(t.id) && !text.contains("secret-tenant") && !text.contains("tenant's"))
            }
            try await client.execute(uri: "/status", method: .get) { r in
                let html = String(buffer: r.body)
                #expect(r.status == .ok && r.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(html.contains("<td>qwen3:8b</td><td>90.000 %</td>"))
                #expect(html.contains("Slow responses for qwen3:8b") && !html.contains(t.id))
            }
        }
        #expect(StatusPage.escape("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
    }
}
