import Catalog
import Clocks
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import OpenAIWire
import Storage
import Tenancy
import Testing
@testable import Gateway

/// The web console through the in-process router: login, the session cookie, CSRF, idle expiry
/// on a manual clock, and tenant isolation (every page and form tried with another tenant's ids).
@Suite(.serialized) struct ConsoleTests {
    static let day: Int64 = 1_796_428_800_000  // 2026-12-05 00:00 UTC

    struct Harness: Sendable {
        let platform: Platform
        let clock: ManualClock
        let operatorToken: String
        /// Admin token of tenant acme, and acme's and globex's ids and one key each.
        let acmeToken: String
        let acme: TenantRecord, globex: TenantRecord
        let acmeKey: APIKeyRecord, globexKey: APIKeyRecord
        let acmeAPIKey: String
    }

    func withConsole(_ configure: (inout GatewayConfig) -> Void = { _ in },
                     _ body: @Sendable (any TestClientProtocol, Harness) async throws -> Void) async throws {
        var config = GatewayConfig()
        config.host = "127.0.0.1"
        config.port = 0
        config.dataDir = NSTemporaryDirectory() + "llmaas-console-\(UUID().uuidString)"
        config.catalogPath = AdministrationTests.repo + "/deploy/catalog.yaml"
        config.authFailuresPerMinute = 3
        configure(&config)
        let clock = ManualClock(nowMs: Self.day + 3_600_000)
        let platform = try await Platform.open(config: config, logger: Logger(label: "console-test"), clock: clock,
                                               catalog: try CatalogFile.load(path: config.catalogPath),
                                               secret: ServerSecret(bytes: Array(repeating: 7, count: 32)))
        do {
            let acme = try await platform.administration.createTenant(name: "acme", tier: "monthly")
            let globex = try await platform.administration.createTenant(name: "globex", tier: "monthly")
            let (acmeKey, acmeToken) = try await platform.administration.createKey(tenant: acme, name: "acme-key")
            let (globexKey, _) = try await platform.administration.createKey(tenant: globex, name: "globex-key")
            let (_, op) = try await platform.administration.createAdminToken(name: "op", tenantName: nil)
            let (_, tenantAdmin) = try await platform.administration.createAdminToken(name: "acme-admin", tenantName: "acme")
            let h = Harness(platform: platform, clock: clock, operatorToken: op, acmeToken: tenantAdmin, acme: acme, globex: globex,
                            acmeKey: acmeKey, globexKey: globexKey, acmeAPIKey: acmeToken.text)
            try await GatewayServer.application(platform).test(.router) { client in try await body(client, h) }
        } catch {
            await platform.shutdown()
            throw error
        }
        await platform.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDir)
    }

    static func text(_ r: TestResponse) -> String { String(buffer: r.body) }

    static func form(_ fields: [(String, String)]) -> ByteBuffer {
        ByteBuffer(string: fields.map { k, v in
            "\(k)=\(v.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        }.joined(separator: "&"))
    }

    static let formHeaders: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    /// Logs in; returns the cookie header value and the page's CSRF token.
    static func login(_ client: any TestClientProtocol, token: String) async throws -> (cookie: String, csrf: String) {
        let setCookie = try await client.execute(uri: "/console/login", method: .post, headers: formHeaders, body: form([("token", token)])) { r in
            #expect(r.status == .seeOther)
            #expect(r.headers[.location] == "/console")
            return try #require(r.headers[.setCookie])
        }
        let cookie = String(setCookie.split(separator: ";")[0])
        let csrf = try await client.execute(uri: "/console/keys", method: .get, headers: [.cookie: cookie]) { r in
            #expect(r.status == .ok)
            return try #require(csrfToken(text(r)))
        }
        return (cookie, csrf)
    }

    static func csrfToken(_ html: String) -> String? {
        guard let r = html.range(of: #"name="csrf" value=""#) else { return nil }
        return String(html[r.upperBound...].prefix { $0 != "\"" })
    }

    @Test func loginGivesAStrictHttpOnlyCookieAndOnlyItsHashIsKept() async throws {
        try await withConsole { client, h in
            // Not logged in: every page sends the browser to the login form.
            try await client.execute(uri: "/console/usage", method: .get) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.location] == "/console/login")
            }
            try await client.execute(uri: "/console/login", method: .get) { r in
                #expect(r.status == .ok)
                #expect(Self.text(r).contains(#"name="token""#))
                #expect(r.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
                #expect(r.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                #expect(r.headers[HTTPField.Name("Referrer-Policy")!] == "same-origin")
                #expect(r.headers[.cacheControl] == "no-store")
            }
            let setCookie = try await client.execute(uri: "/console/login", method: .post, headers: Self.formHeaders,
                                                     body: Self.form([("token", h.operatorToken)])) { r in
                try #require(r.headers[.setCookie])
            }
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Path=/console"))
            #expect(!setCookie.contains("Secure"), "plain HTTP without secure_cookies: no Secure flag")
            let id = String(setCookie.split(separator: ";")[0].split(separator: "=", maxSplits: 1)[1])
            #expect(id.count >= 43)
            // The table holds the SHA-256 of the id, never the id.
            #expect(!h.platform.consoleSessions.storedKeys.contains(id))
            #expect(h.platform.consoleSessions.storedKeys.contains(ConsoleSessions.digest(id)))
            try await client.execute(uri: "/console", method: .get, headers: [.cookie: "llmaas_console=\(id)"]) { r in
                #expect(r.status == .ok)
                #expect(Self.text(r).contains("Overview"))
                #expect(r.headers[.cacheControl] == "no-store")
            }
            // Behind a TLS proxy the cookie is Secure.
            var tls = Self.formHeaders
            tls[HTTPField.Name("X-Forwarded-Proto")!] = "https"
            try await client.execute(uri: "/console/login", method: .post, headers: tls, body: Self.form([("token", h.operatorToken)])) { r in
                #expect(r.headers[.setCookie]?.contains("; Secure") == true)
            }
        }
    }

    @Test func secureCookiesFromTheConfig() async throws {
        try await withConsole({ $0.console.secureCookies = true }) { client, h in
            try await client.execute(uri: "/console/login", method: .post, headers: Self.formHeaders, body: Self.form([("token", h.acmeToken)])) { r in
                #expect(r.headers[.setCookie]?.contains("; Secure") == true)
            }
        }
    }

    @Test func wrongTokensAre401AndCountedByTheAuthThrottle() async throws {
        try await withConsole { client, h in
            for bad in ["adm-nothere000000-xyz", h.acmeAPIKey, ""] {
                try await client.execute(uri: "/console/login", method: .post, headers: Self.formHeaders, body: Self.form([("token", bad)])) { r in
                    #expect(r.status == .unauthorized)
                    #expect(r.headers[.setCookie] == nil)
                    #expect(Self.text(r).contains("Invalid admin token"))
                }
            }
            // The limit (3 a minute here) is reached: even the right token gets 429 now, from this address.
            try await client.execute(uri: "/console/login", method: .post, headers: Self.formHeaders, body: Self.form([("token", h.operatorToken)])) { r in
                #expect(r.status == .tooManyRequests)
                #expect(r.headers[.setCookie] == nil)
            }
            // The same throttle as the admin API: it refuses this address too.
            try await client.execute(uri: "/admin/v1/tenants", method: .get, headers: [.authorization: "Bearer \(h.operatorToken)"]) { r in
                #expect(r.status == .tooManyRequests)
            }
            h.clock.advance(byMs: 61_000)
            try await client.execute(uri: "/console/login", method: .post, headers: Self.formHeaders, body: Self.form([("token", h.operatorToken)])) { r in
                #expect(r.status == .seeOther)
            }
        }
    }

    @Test func everyPostNeedsTheSessionsCSRFToken() async throws {
        try await withConsole { client, h in
            let (cookie, csrf) = try await Self.login(client, token: h.acmeToken)
            var headers = Self.formHeaders
            headers[.cookie] = cookie
            for fields in [[("csrf", "")], [("csrf", String(csrf.dropLast()) + "x")], []] {
                try await client.execute(uri: "/console/keys/\(h.acmeKey.id)/revoke", method: .post, headers: headers, body: Self.form(fields)) { r in
                    #expect(r.status == .forbidden)
                }
                try await client.execute(uri: "/console/keys/create", method: .post, headers: headers,
                                         body: Self.form(fields + [("name", "x"), ("tenant", h.acme.id)])) { r in
                    #expect(r.status == .forbidden)
                }
                try await client.execute(uri: "/console/logout", method: .post, headers: headers, body: Self.form(fields)) { r in
                    #expect(r.status == .forbidden)
                }
            }
            #expect(try await h.platform.storage.key(id: h.acmeKey.id)?.revokedAt == nil)
            #expect(try await h.platform.storage.keys(tenantID: h.acme.id).count == 1)
            // Another session's token does not work either.
            let (_, otherCSRF) = try await Self.login(client, token: h.acmeToken)
            try await client.execute(uri: "/console/keys/\(h.acmeKey.id)/revoke", method: .post, headers: headers, body: Self.form([("csrf", otherCSRF)])) { r in
                #expect(r.status == .forbidden)
            }
            // The right one.
            try await client.execute(uri: "/console/keys/\(h.acmeKey.id)/revoke", method: .post, headers: headers, body: Self.form([("csrf", csrf)])) { r in
                #expect(r.status == .ok)
                #expect(Self.text(r).contains("is revoked"))
            }
            #expect(try await h.platform.storage.key(id: h.acmeKey.id)?.revokedAt != nil)
        }
    }

    @Test func postsFromAnotherSiteAreRefused() async throws {
        try await withConsole { client, h in
            var foreign = Self.formHeaders
            foreign[.origin] = "https://evil.example"
            // Login CSRF: another site cannot log the browser into its own account.
            try await client.execute(uri: "/console/login", method: .post, headers: foreign, body: Self.form([("token", h.operatorToken)])) { r in
                #expect(r.status == .forbidden)
                #expect(r.headers[.setCookie] == nil)
            }
            let (cookie, csrf) = try await Self.login(client, token: h.acmeToken)
            foreign[.cookie] = cookie
            try await client.execute(uri: "/console/keys/\(h.acmeKey.id)/revoke", method: .post, headers: foreign, body: Self.form([("csrf", csrf)])) { r in
                #expect(r.status == .forbidden)
            }
            #expect(try await h.platform.storage.key(id: h.acmeKey.id)?.revokedAt == nil)
        }
    }

    @Test func backgroundRefreshesAreNotActivity() async throws {
        try await withConsole({ $0.console.idleMinutes = 10 }) { client, h in
            let (cookie, _) = try await Self.login(client, token: h.acmeToken)
            // A page left open polls every few seconds; that alone does not keep the session alive.
            for _ in 0..<3 {
                h.clock.advance(byMs: 4 * 60_000)
                try await client.execute(uri: "/console", method: .get, headers: [.cookie: cookie, HTTPField.Name("X-Console-Poll")!: "1"]) { r in
                    if h.clock.now() - (Self.day + 3_600_000) < 10 * 60_000 { #expect(r.status == .ok) } else { #expect(r.status == .seeOther) }
                }
            }
        }
    }

    @Test func idleSessionsExpireOnThePlatformClockAndLogoutEndsThem() async throws {
        try await withConsole({ $0.console.idleMinutes = 10 }) { client, h in
            let (cookie, csrf) = try await Self.login(client, token: h.operatorToken)
            // Used every 9 minutes, it stays alive.
            for _ in 0..<3 {
                h.clock.advance(byMs: 9 * 60_000)
                try await client.execute(uri: "/console", method: .get, headers: [.cookie: cookie]) { r in #expect(r.status == .ok) }
            }
            h.clock.advance(byMs: 10 * 60_000)
            try await client.execute(uri: "/console", method: .get, headers: [.cookie: cookie]) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.location] == "/console/login")
            }
            #expect(h.platform.consoleSessions.count == 0)
            // Logout.
            let (cookie2, csrf2) = try await Self.login(client, token: h.operatorToken)
            var headers = Self.formHeaders
            headers[.cookie] = cookie2
            try await client.execute(uri: "/console/logout", method: .post, headers: headers, body: Self.form([("csrf", csrf2)])) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.setCookie]?.contains("Max-Age=0") == true)
            }
            try await client.execute(uri: "/console/keys", method: .get, headers: [.cookie: cookie2]) { r in #expect(r.status == .seeOther) }
            _ = (csrf, cookie)
        }
    }

    /// A tenant admin tries every page and every form with the other tenant's ids: 404 each time,
    /// never a byte of the other tenant's data, nothing changed.
    @Test func aTenantAdminNeverReachesAnotherTenant() async throws {
        try await withConsole { client, h in
            try await h.platform.storage.insertRequests([
                RequestRecord(id: "r-globex", createdAt: Self.day + 60_000, tenantID: h.globex.id, keyID: h.globexKey.id, model: "smollm2:135m",
                              endpoint: "chat.completions", status: 200, outcome: "ok", promptTokens: 777_001, completionTokens: 5, latencyMs: 40,
                              ttftMs: 5, backend: "b", costNano: 123_456_789),
            ])
            let (cookie, csrf) = try await Self.login(client, token: h.acmeToken)
            var headers = Self.formHeaders
            headers[.cookie] = cookie
            for page in ConsolePages.all {
                try await client.execute(uri: "\(page.path)?tenant=\(h.globex.id)", method: .get, headers: [.cookie: cookie]) { r in
                    // The lifecycle table is the catalog's (no tenant data), yet another tenant's id is still 404.
                    #expect(r.status == .notFound, "\(page.path)")
                    let body = Self.text(r)
                    #expect(!body.contains("globex") && !body.contains("777001") && !body.contains(h.globexKey.id), "\(page.path)")
                }
                // Its own tenant: fine (backends: operators only, 404).
                try await client.execute(uri: page.path, method: .get, headers: [.cookie: cookie]) { r in
                    #expect(r.status == (page.operatorOnly ? .notFound : .ok), "\(page.path)")
                    #expect(!Self.text(r).contains("globex"), "\(page.path)")
                    #expect(!Self.text(r).contains(h.globexKey.id), "\(page.path)")
                }
            }
            try await client.execute(uri: "/console/keys/\(h.globexKey.id)/revoke", method: .post, headers: headers, body: Self.form([("csrf", csrf)])) { r in
                #expect(r.status == .notFound)
            }
            try await client.execute(uri: "/console/keys/\(h.globexKey.id)/rotate", method: .post, headers: headers, body: Self.form([("csrf", csrf)])) { r in
                #expect(r.status == .notFound)
                #expect(!Self.text(r).contains("sk-llm-"))
            }
            try await client.execute(uri: "/console/keys/create", method: .post, headers: headers,
                                     body: Self.form([("csrf", csrf), ("tenant", h.globex.id), ("name", "intruder")])) { r in
                #expect(r.status == .notFound)
                #expect(!Self.text(r).contains("sk-llm-"))
            }
            let globexKeys = try await h.platform.storage.keys(tenantID: h.globex.id)
            #expect(globexKeys.count == 1 && globexKeys[0].revokedAt == nil && globexKeys[0].successorID == nil)
            // The operator sees globex (the picker lists both tenants).
            let (opCookie, _) = try await Self.login(client, token: h.operatorToken)
            try await client.execute(uri: "/console/usage?tenant=\(h.globex.id)", method: .get, headers: [.cookie: opCookie]) { r in
                #expect(r.status == .ok)
                #expect(Self.text(r).contains("777001"))
                #expect(Self.text(r).contains("acme") && Self.text(r).contains("globex"))
            }
            try await client.execute(uri: "/console/backends", method: .get, headers: [.cookie: opCookie]) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/console/usage?tenant=nope", method: .get, headers: [.cookie: opCookie]) { r in #expect(r.status == .notFound) }
        }
    }

    /// The overview and usage pages show the numbers `/v1/usage` gives for the same tenant and window.
    @Test func overviewAndUsageEqualV1Usage() async throws {
        try await withConsole { client, h in
            try await h.platform.storage.insertRequests([
                RequestRecord(id: "r1", createdAt: Self.day + 1_000, tenantID: h.acme.id, keyID: h.acmeKey.id, model: "smollm2:135m",
                              endpoint: "chat.completions", status: 200, outcome: "ok", promptTokens: 1200, completionTokens: 345, latencyMs: 900,
                              ttftMs: 80, backend: "b", systemTokens: 200, reasoningTokens: 45, costNano: 1_234_567, energyMicroWh: 9_876_543),
                RequestRecord(id: "r2", createdAt: Self.day + 2_000, tenantID: h.acme.id, keyID: h.acmeKey.id, model: "smollm2:135m",
                              endpoint: "chat.completions", status: 429, outcome: "rejected", latencyMs: 1),
            ])
            let usage = try await client.execute(uri: "/v1/usage", method: .get, headers: [.authorization: "Bearer \(h.acmeAPIKey)"]) { r in
                try JSONValue.parse(Array(r.body.readableBytesView))
            }
            let totals = try #require(usage["totals"])
            let (cookie, _) = try await Self.login(client, token: h.acmeToken)
            let html = try await client.execute(uri: "/console", method: .get, headers: [.cookie: cookie]) { r in Self.text(r) }
            func cell(_ id: String) -> String? {
                guard let r = html.range(of: "id=\"\(id)\">") else { return nil }
                return String(html[r.upperBound...].prefix { $0 != "<" })
            }
            #expect(cell("requests") == totals["requests"]?.jsonString)
            #expect(cell("rejected") == totals["rejected_requests"]?.jsonString)
            #expect(cell("input-tokens") == totals["input_tokens"]?.jsonString)
            #expect(cell("output-tokens") == totals["output_tokens"]?.jsonString)
            #expect(cell("reasoning-tokens") == totals["reasoning_tokens"]?.jsonString)
            #expect(cell("system-tokens") == "200")
            #expect(cell("cost") == totals["cost_eur"]?.stringValue)
            #expect(cell("energy") == totals["energy_wh"]?.jsonString)
            #expect(cell("balance") == usage["balance_eur"]?.stringValue)
            #expect(cell("month-spend") == usage["month_spend_eur"]?.stringValue)
        }
    }

    @Test func keyFormsCreateRotateAndShowSecretsOnce() async throws {
        try await withConsole { client, h in
            let (cookie, csrf) = try await Self.login(client, token: h.acmeToken)
            var headers = Self.formHeaders
            headers[.cookie] = cookie
            let created = try await client.execute(uri: "/console/keys/create", method: .post, headers: headers,
                                                   body: ByteBuffer(string: "csrf=\(csrf)&tenant=\(h.acme.id)&name=ci%20%3Cb%3E&models=smollm2%3A135m&endpoints=chat")) { r in
                #expect(r.status == .created)
                return Self.text(r)
            }
            #expect(created.contains("ci &lt;b&gt;"), "the name is HTML-escaped")
            #expect(!created.contains("ci <b>"))
            let secret = try #require(created.range(of: #"id="new-secret">"#).map { String(created[$0.upperBound...].prefix { $0 != "<" }) })
            #expect(secret.hasPrefix("sk-llm-"))
            let principal = try await h.platform.authority.authenticate(authorization: "Bearer \(secret)")
            #expect(principal.grants.models == ["smollm2:135m"] && principal.grants.endpoints == ["chat"])
            // The keys page does not show it again.
            try await client.execute(uri: "/console/keys", method: .get, headers: [.cookie: cookie]) { r in
                #expect(!Self.text(r).contains(secret))
            }
            // A bad grant is a 400 page that says what to fix.
            try await client.execute(uri: "/console/keys/create", method: .post, headers: headers,
                                     body: ByteBuffer(string: "csrf=\(csrf)&tenant=\(h.acme.id)&name=x&endpoints=nonsense")) { r in
                #expect(r.status == .badRequest)
            }
            let rotated = try await client.execute(uri: "/console/keys/\(principal.keyID)/rotate", method: .post, headers: headers,
                                                   body: Self.form([("csrf", csrf), ("grace_days", "1")])) { r in
                #expect(r.status == .ok)
                return Self.text(r)
            }
            let successor = try #require(rotated.range(of: #"id="new-secret">"#).map { String(rotated[$0.upperBound...].prefix { $0 != "<" }) })
            #expect(successor.hasPrefix("sk-llm-") && successor != secret)
            _ = try await h.platform.authority.authenticate(authorization: "Bearer \(successor)")
            // The successor's secret was taken: the API cannot hand it out a second time.
            await #expect(throws: (any Error).self) { try await h.platform.administration.takeSuccessorSecret(keyID: principal.keyID) }
        }
    }

    @Test func chartsBucketTheLedger() {
        let from = Self.day, bucket: Int64 = 60_000
        func row(_ at: Int64, latency: Int, ttft: Int, tokens: Int, status: Int = 200) -> RequestRecord {
            RequestRecord(id: UUID().uuidString, createdAt: from + at, tenantID: "t", keyID: "k", model: "m", endpoint: "chat.completions",
                          status: status, outcome: "ok", completionTokens: tokens, latencyMs: latency, ttftMs: ttft)
        }
        let rows = [row(0, latency: 100, ttft: 10, tokens: 10), row(1000, latency: 300, ttft: 20, tokens: 29),
                    row(2000, latency: 200, ttft: 30, tokens: 1), row(3000, latency: 5, ttft: 5, tokens: 0, status: 500),
                    row(2 * bucket, latency: 50, ttft: 5, tokens: 10)]
        let perf = LedgerPerformanceSource.buckets(rows, from: from, to: from + 3 * bucket, bucketMs: bucket)
        #expect(perf.count == 1 && perf[0].buckets.count == 3)
        let b0 = perf[0].buckets[0]
        #expect(b0.requests == 4 && b0.errors == 1)
        #expect(b0.latencyP50 == 200 && b0.latencyP95 == 300 && b0.ttftP50 == 20 && b0.ttftP95 == 30)
        // 9 tokens in 0.09 s and 28 in 0.28 s: 100 tokens/s each (a 1-token answer has no speed).
        #expect(abs((b0.tokensPerSecond ?? 0) - 100) < 1e-6)
        #expect(perf[0].buckets[1].requests == 0 && perf[0].buckets[1].latencyP50 == nil)
        #expect(perf[0].buckets[2].latencyP50 == 50)
        // The SVG view: a gap splits the line, the title names the chart.
        let chart = LineChart(title: "m latency", unit: "ms", from: from, to: from + 3 * bucket,
                              series: [.init(name: "p50", points: perf[0].buckets.map { ($0.start, $0.latencyP50) })]).view
        #expect(chart.lines[0].segments.count == 2)
        #expect(chart.yTicks.last?.label == "200")
        #expect(!chart.empty)
    }

    @Test func chartPageRendersSVGWithTitles() async throws {
        try await withConsole { client, h in
            try await h.platform.storage.insertRequests((0..<5).map { i in
                RequestRecord(id: "c\(i)", createdAt: h.clock.now() - Int64(i) * 60_000, tenantID: h.acme.id, keyID: h.acmeKey.id,
                              model: "smollm2:135m", endpoint: "chat.completions", status: 200, outcome: "ok", completionTokens: 20,
                              latencyMs: 100 + i * 10, ttftMs: 10, backend: "b")
            })
            let (cookie, _) = try await Self.login(client, token: h.acmeToken)
            for window in ["1h", "24h", "7d"] {
                try await client.execute(uri: "/console/charts?window=\(window)", method: .get, headers: [.cookie: cookie]) { r in
                    let html = Self.text(r)
                    #expect(r.status == .ok)
                    #expect(html.components(separatedBy: "<svg").count - 1 == 3)
                    #expect(html.contains("<title id=\"chart-smollm2-135m-latency--\(window)--t\">smollm2:135m latency (\(window))</title>"))
                    #expect(html.contains("<polyline class=\"line\""))
                    #expect(!html.contains("<script>"), "no inline script")
                }
            }
        }
    }

    @Test func consoleConfigIsValidated() throws {
        let c = try GatewayConfig.parse("console:\n  idle_minutes: 15\n  secure_cookies: true\n  refresh_seconds: 3\n")
        #expect(c.console.idleMinutes == 15 && c.console.secureCookies && c.console.refreshSeconds == 3 && c.console.enabled)
        #expect(throws: ConfigError.self) { try GatewayConfig.parse("console:\n  idle_minutes: 0\n") }
        #expect(throws: ConfigError.self) { try GatewayConfig.parse("console:\n  idle_minuts: 5\n") }
        #expect(throws: ConfigError.self) { try GatewayConfig.parse("console:\n  secure_cookies: maybe\n") }
    }
}
