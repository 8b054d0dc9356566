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

/// The console's alerts page, request store pages and rollup-fed charts through the in-process
/// router: the forms (CSRF, validation errors shown on the page), the decrypted bodies (escaped),
/// the shred with its confirmation, and tenant isolation tried with another tenant's incident,
/// rule and request ids and filters.
@Suite(.serialized) struct ConsoleMonitoringTests {
    static func text(_ r: TestResponse) -> String { String(buffer: r.body) }

    /// Escaped as the templates escape (`{{ }}`).
    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&#39;")
    }

    static func page(_ client: any TestClientProtocol, _ uri: String, _ cookie: String) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: uri, method: .get, headers: [.cookie: cookie]) { r in (r.status, text(r)) }
    }

    static func post(_ client: any TestClientProtocol, _ uri: String, _ cookie: String, _ fields: [(String, String)]) async throws -> (HTTPResponse.Status, String) {
        var headers = ConsoleTests.formHeaders
        headers[.cookie] = cookie
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ConsoleTests.form(fields)) { r in (r.status, text(r)) }
    }

    static func between(_ html: String, _ start: String, _ end: String = "<") -> String? {
        guard let r = html.range(of: start) else { return nil }
        return String(html[r.upperBound...].prefix { String($0) != end })
    }

    // MARK: Alerts

    @Test func alertFormsCreateShowErrorsAndDeleteWithinTheSessionsTenant() async throws {
        try await ConsoleTests().withConsole { client, h in
            let (_, globexAdmin) = try await h.platform.administration.createAdminToken(name: "globex-admin", tenantName: "globex")
            let (acme, acmeCSRF) = try await ConsoleTests.login(client, token: h.acmeToken)
            let (globex, globexCSRF) = try await ConsoleTests.login(client, token: globexAdmin)
            let (op, opCSRF) = try await ConsoleTests.login(client, token: h.operatorToken)

            // A tenant admin: only the kinds the API allows it (no fleet kinds in the form).
            let (s0, form) = try await Self.page(client, "/console/alerts", acme)
            #expect(s0 == .ok && form.contains(#"value="error_rate""#) && !form.contains(#"value="backend_down""#))
            // Validation errors are the API's, shown on the page, nothing stored.
            let (s1, bad) = try await Self.post(client, "/console/alerts/rules", acme,
                                                [("csrf", acmeCSRF), ("kind", "latency_p95"), ("threshold", "0")])
            #expect(s1 == .badRequest)
            #expect(Self.between(bad, #"id="form-error">"#)?.contains("Invalid &#39;threshold&#39;: a number of milliseconds between 1 and 3600000") == true)
            let (s2, fleet) = try await Self.post(client, "/console/alerts/rules", acme, [("csrf", acmeCSRF), ("kind", "backend_down")])
            #expect(s2 == .forbidden && fleet.contains("Only an operator token may create backend_down rules"))
            #expect(try await h.platform.storage.alertRules().isEmpty)
            // Another tenant's id in the form: 404, nothing stored; a missing CSRF token: 403.
            let (s3, _) = try await Self.post(client, "/console/alerts/rules", acme,
                                              [("csrf", acmeCSRF), ("tenant", h.globex.id), ("kind", "error_rate"), ("threshold", "1")])
            #expect(s3 == .notFound)
            let (s4, _) = try await Self.post(client, "/console/alerts/rules", acme, [("kind", "error_rate"), ("threshold", "1")])
            #expect(s4 == .forbidden)
            #expect(try await h.platform.storage.alertRules().isEmpty)

            // Created: listed on the page, stored for acme.
            let (s5, created) = try await Self.post(client, "/console/alerts/rules", acme,
                                                    [("csrf", acmeCSRF), ("name", "acme <errors>"), ("kind", "error_rate"), ("model", "smollm2:135m"),
                                                     ("threshold", "10"), ("for_periods", "1")])
            #expect(s5 == .created)
            let rule = try #require(try await h.platform.storage.alertRules(tenantID: h.acme.id).first)
            #expect(rule.kind == "error_rate" && rule.threshold == 10 && rule.forPeriods == 1 && rule.model == "smollm2:135m")
            #expect(created.contains(#"data-rule="\#(rule.id)""#) && created.contains("acme &lt;errors&gt;"))
            // The operator's global rule (a fleet kind) and a rule for globex.
            let (s6, _) = try await Self.post(client, "/console/alerts/rules", op, [("csrf", opCSRF), ("tenant", ""), ("kind", "queue_saturated"), ("threshold", "5")])
            #expect(s6 == .created)
            let (s7, _) = try await Self.post(client, "/console/alerts/rules", op, [("csrf", opCSRF), ("tenant", h.globex.id), ("kind", "error_rate"), ("threshold", "10"), ("for_periods", "1")])
            #expect(s7 == .created)
            let globexRule = try #require(try await h.platform.storage.alertRules(tenantID: h.globex.id).first)
            let globalRule = try #require(try await h.platform.storage.alertRules().first { $0.tenantID == nil })

            // Incidents: 5xx answers for both tenants, one evaluation on the manual clock.
            let now = h.clock.now()
            try await h.platform.storage.insertRequests((0..<4).flatMap { i in
                [(h.acme, h.acmeKey, "a"), (h.globex, h.globexKey, "g")].map { t, k, p in
                    RequestRecord(id: "\(p)\(i)", createdAt: now - 10_000 + Int64(i), tenantID: t.id, keyID: k.id, model: "smollm2:135m",
                                  endpoint: "chat.completions", status: 502, outcome: "error", latencyMs: 10, backend: "b")
                }
            })
            let sent = await AlertEvaluator(platform: h.platform, notify: { _ in }).step()
            #expect(sent.count == 2)
            let acmeIncident = try #require(sent.first { $0.incident.tenantID == h.acme.id }?.incident)
            let globexIncident = try #require(sent.first { $0.incident.tenantID == h.globex.id }?.incident)

            // acme's page: its incident (active and in the history), its rule; nothing of globex nor the global rule.
            let (_, acmePage) = try await Self.page(client, "/console/alerts", acme)
            #expect(acmePage.contains(#"<tr data-incident="\#(acmeIncident.id)" class="bad">"#))
            #expect(acmePage.contains(#"<tr data-incident="\#(acmeIncident.id)" data-state="active">"#))
            for other in [globexIncident.id, globexRule.id, globalRule.id, "globex", "queue_saturated</td>"] { #expect(!acmePage.contains(other), "\(other)") }
            let (si, incidentPage) = try await Self.page(client, "/console/alerts/incidents/\(acmeIncident.id)", acme)
            #expect(si == .ok && incidentPage.contains(#"id="incident-state">active"#) && incidentPage.contains("5xx error rate of model smollm2:135m is 100 %"))
            // Another tenant's incident and rule ids: 404, no data, nothing deleted.
            let (sg, other) = try await Self.page(client, "/console/alerts/incidents/\(globexIncident.id)", acme)
            #expect(sg == .notFound && !other.contains("5xx error rate") && !other.contains("globex") && !other.contains("data-incident"))
            let (sgl, _) = try await Self.page(client, "/console/alerts/incidents/nope", acme)
            #expect(sgl == .notFound)
            for id in [globexRule.id, globalRule.id] {
                let (sd, body) = try await Self.post(client, "/console/alerts/rules/\(id)/delete", acme, [("csrf", acmeCSRF)])
                #expect(sd == .notFound && !body.contains("globex"))
            }
            let (sgt, _) = try await Self.page(client, "/console/alerts?tenant=\(h.globex.id)", acme)
            #expect(sgt == .notFound)
            #expect(try await h.platform.storage.alertRules().count == 3)
            // globex sees its own only.
            let (_, globexPage) = try await Self.page(client, "/console/alerts", globex)
            #expect(globexPage.contains(globexIncident.id) && !globexPage.contains(acmeIncident.id) && !globexPage.contains(rule.id))
            let (sgd, _) = try await Self.post(client, "/console/alerts/rules/\(rule.id)/delete", globex, [("csrf", globexCSRF)])
            #expect(sgd == .notFound)
            // The operator: everything by default (global and every tenant), one tenant with the picker.
            let (_, all) = try await Self.page(client, "/console/alerts", op)
            for id in [acmeIncident.id, globexIncident.id, rule.id, globexRule.id, globalRule.id] { #expect(all.contains(id), "\(id)") }
            #expect(all.contains(#"<option value="" selected>All tenants</option>"#))
            let (_, picked) = try await Self.page(client, "/console/alerts?tenant=\(h.acme.id)", op)
            #expect(picked.contains(acmeIncident.id) && !picked.contains(globexIncident.id) && !picked.contains(globalRule.id))
            let (_, opIncident) = try await Self.page(client, "/console/alerts/incidents/\(globexIncident.id)", op)
            #expect(opIncident.contains(#"id="incident-state">active"#))

            // acme deletes its rule: gone; at the next evaluation its incident resolves (history shows it).
            let (sdel, deleted) = try await Self.post(client, "/console/alerts/rules/\(rule.id)/delete", acme, [("csrf", acmeCSRF)])
            #expect(sdel == .ok && deleted.contains(#"id="notice">Alert rule \#(rule.id) is deleted"#) && !deleted.contains(#"data-rule="\#(rule.id)""#))
            h.clock.advance(byMs: 60_000)
            _ = await AlertEvaluator(platform: h.platform, notify: { _ in }).step()
            let (_, after) = try await Self.page(client, "/console/alerts", acme)
            #expect(after.contains(#"<tr data-incident="\#(acmeIncident.id)" data-state="resolved">"#) && after.contains(#"id="no-active""#))
            await h.platform.audit.flush()
            let actions = try await h.platform.storage.auditEntries(tenantID: h.acme.id, from: 0, to: Int64.max).map(\.action)
            #expect(actions.contains("alert.rule.create") && actions.contains("alert.rule.delete"))
        }
    }

    // MARK: Request store

    @Test func requestStorePagesShowEscapedBodiesShredAndIsolateTenants() async throws {
        try await RequestStoreRouterTests().withGateway { client, h in
            func token(_ f: HTTPFields) -> String { String(f[.authorization]!.dropFirst("Bearer ".count)) }
            let (acme, acmeCSRF) = try await ConsoleTests.login(client, token: token(h.acmeAdmin))
            let (globex, globexCSRF) = try await ConsoleTests.login(client, token: token(h.globexAdmin))
            let (op, _) = try await ConsoleTests.login(client, token: token(h.operatorAuth))

            // Off by default; the tenant's own admin opts in (the admin API's rules: a bad retention is shown).
            let (_, first) = try await Self.page(client, "/console/requests", acme)
            #expect(first.contains(#"id="store-bodies" name="store_bodies">"#), "unchecked")
            let (sb, bad) = try await Self.post(client, "/console/requests/settings", acme,
                                                [("csrf", acmeCSRF), ("tenant", h.acme.id), ("store_bodies", "on"), ("retention_days", "0")])
            #expect(sb == .badRequest && bad.contains("settings.store_retention_days") && bad.contains("between 1 and 3650"))
            #expect(try await h.platform.storage.tenant(id: h.acme.id)?.storeBodies ?? 0 == 0)
            let (sx, _) = try await Self.post(client, "/console/requests/settings", acme,
                                              [("csrf", acmeCSRF), ("tenant", h.globex.id), ("store_bodies", "on")])
            #expect(sx == .notFound)
            #expect(try await h.platform.storage.tenant(id: h.globex.id)?.storeBodies ?? 0 == 0)
            let (so, saved) = try await Self.post(client, "/console/requests/settings", acme,
                                                  [("csrf", acmeCSRF), ("tenant", h.acme.id), ("store_bodies", "on"), ("retention_days", "7")])
            #expect(so == .ok && saved.contains(#"id="store-bodies" name="store_bodies" checked>"#))
            let stored = try #require(try await h.platform.storage.tenant(id: h.acme.id))
            #expect(stored.storeBodies == 1 && stored.storeRetentionDays == 7)

            // Traffic: a prompt with markup, and globex's request.
            // "Earl Grey" cannot occur by chance in a page (ids are lowercase base32: one with "tea" in it
            // once made a page seem to show the prompt).
            let prompt = "<script>alert(1)</script> & 'Earl Grey'"
            let (id, answer) = try await RequestStoreRouterTests.send(client, key: h.auth(h.acmeKey), prompt)
            h.clock.advance(byMs: 1_000)
            let (id2, _) = try await RequestStoreRouterTests.send(client, key: h.auth(h.acmeKey), "second")
            h.clock.advance(byMs: 1_000)
            let (id3, _) = try await RequestStoreRouterTests.send(client, key: h.auth(h.acmeKey), "third")
            let (globexID, _) = try await RequestStoreRouterTests.send(client, key: h.auth(h.globexKey), "globex secret prompt")

            let (sl, list) = try await Self.page(client, "/console/requests", acme)
            #expect(sl == .ok)
            for r in [id, id2, id3] { #expect(list.contains(#"<tr data-request="\#(r)" data-status="200">"#)) }
            #expect(!list.contains(globexID))
            // Filters and cursor paging (newest first).
            let (_, byID) = try await Self.page(client, "/console/requests?request_id=\(id2)", acme)
            #expect(byID.contains(id2) && !byID.contains(#"data-request="\#(id)""#))
            let (_, p1) = try await Self.page(client, "/console/requests?limit=2&status=2xx", acme)
            #expect(p1.contains(#"data-request="\#(id3)""#) && p1.contains(#"data-request="\#(id2)""#) && !p1.contains(#"data-request="\#(id)""#))
            let paging = try #require(Self.between(p1, #"<p class="paging">"#, "\n"))
            let next = try #require(Self.between(paging, #"href=""#, "\"").map { $0.replacingOccurrences(of: "&amp;", with: "&") })
            #expect(next.contains("cursor=") && next.contains("status=2xx"))
            let (_, p2) = try await Self.page(client, next, acme)
            #expect(p2.contains(#"data-request="\#(id)""#) && !p2.contains(#"data-request="\#(id2)""#) && !p2.contains(#"id="next-page""#))
            let (_, none) = try await Self.page(client, "/console/requests?status=5xx", acme)
            #expect(none.contains(#"id="no-requests""#))
            let (sbad, badFilter) = try await Self.page(client, "/console/requests?status=abc", acme)
            #expect(sbad == .badRequest && badFilter.contains("status code (200) or a class"))

            // The detail: the decrypted prompt and answer, escaped; reading it is audited.
            let (sd, detail) = try await Self.page(client, "/console/requests/\(id)", acme)
            #expect(sd == .ok && detail.contains(#"id="body-state" class="state-available">available"#))
            #expect(detail.contains(Self.escaped(prompt)) && !detail.contains("<script>alert(1)"))
            #expect(!answer.isEmpty && detail.contains(Self.escaped(answer)))
            await h.platform.audit.flush()
            #expect(try await h.platform.storage.auditEntries(tenantID: h.acme.id, from: 0, to: Int64.max)
                .contains { $0.action == "request.body.read" && $0.target == id })
            // globex's request was not stored (not opted in).
            let (_, notStored) = try await Self.page(client, "/console/requests/\(globexID)", globex)
            #expect(notStored.contains(#"class="state-not_stored">not_stored"#) && !notStored.contains("globex secret prompt"))

            // Isolation: acme's ids and filters from globex: 404 or nothing.
            let (s404, other) = try await Self.page(client, "/console/requests/\(id)", globex)
            #expect(s404 == .notFound && !other.contains("Earl Grey") && !other.contains(answer))
            let (_, filtered) = try await Self.page(client, "/console/requests?request_id=\(id)", globex)
            #expect(!filtered.contains(#"data-request="\#(id)""#) && filtered.contains(#"id="no-requests""#))
            let (_, byKey) = try await Self.page(client, "/console/requests?key=\(h.acmeKeyID)", globex)
            #expect(byKey.contains(#"id="no-requests""#))
            let (st, _) = try await Self.page(client, "/console/requests?tenant=\(h.acme.id)", globex)
            #expect(st == .notFound)
            let (ss, _) = try await Self.post(client, "/console/requests/shred", globex, [("csrf", globexCSRF), ("tenant", h.acme.id), ("confirm", "yes")])
            #expect(ss == .notFound)
            let (sc, _) = try await Self.post(client, "/console/requests/shred", acme, [("tenant", h.acme.id), ("confirm", "yes")])
            #expect(sc == .forbidden)
            // The operator sees both tenants.
            let (_, all) = try await Self.page(client, "/console/requests", op)
            #expect(all.contains(id) && all.contains(globexID))

            // Shred: the button asks first (nothing shredded), the confirmation shreds; the ledger row stays.
            let (sq, confirm) = try await Self.post(client, "/console/requests/shred", acme, [("csrf", acmeCSRF), ("tenant", h.acme.id)])
            #expect(sq == .ok && confirm.contains(#"id="shred-confirm-submit""#) && confirm.contains(#"name="confirm" value="yes""#))
            let (_, still) = try await Self.page(client, "/console/requests/\(id)", acme)
            #expect(still.contains(">available</span>"))
            let (sy, shredded) = try await Self.post(client, "/console/requests/shred", acme, [("csrf", acmeCSRF), ("tenant", h.acme.id), ("confirm", "yes")])
            #expect(sy == .ok && shredded.contains("data keys destroyed"))
            let (sg, gone) = try await Self.page(client, "/console/requests/\(id)", acme)
            #expect(sg == .ok && gone.contains(#"class="state-shredded">shredded"#) && !gone.contains("Earl Grey") && gone.contains(#"id="request-status">200"#))
        }
    }

    // MARK: Charts from the rollups

    @Test func chartsReadTheRollupsAndTheMinutesNotRolledUpYet() async throws {
        try await ConsoleTests().withConsole { client, h in
            let p = h.platform
            let now = h.clock.now()
            func row(_ id: String, _ at: Int64, latency: Int, status: Int = 200) -> RequestRecord {
                RequestRecord(id: id, createdAt: at, tenantID: h.acme.id, keyID: h.acmeKey.id, model: "smollm2:135m", endpoint: "chat.completions",
                              status: status, outcome: "ok", completionTokens: 21, latencyMs: latency, ttftMs: 10, backend: "b")
            }
            try await p.storage.insertRequests((0..<6).map { row("r\($0)", now - Int64($0) * 60_000 - 1_000, latency: 100 + $0 * 10) }
                                               + [row("e", now - 2_000, latency: 5, status: 500),
                                                  row("g", now - 1_000, latency: 7)].map { var r = $0; if r.id == "g" { r.tenantID = h.globex.id }; return r })
            let source = RollupPerformanceSource(storage: p.storage, flush: {})
            let ledger = LedgerPerformanceSource { t, from, to in try await p.storage.ledger(tenantID: t, from: from, to: to) }
            func counts(_ s: any PerformanceSource, _ w: ChartWindow) async throws -> [Int] {
                let (from, to) = w.range(now: h.clock.now())
                return try await s.performance(tenantID: h.acme.id, from: from, to: to, bucketMs: w.bucketMs).first?.buckets.map(\.requests) ?? []
            }
            // Nothing rolled up yet: every minute comes from the ledger.
            #expect(try await p.storage.oldestUnrolledMinute() != nil)
            for w in ChartWindow.allCases {
                let (a, b) = (try await counts(source, w), try await counts(ledger, w))
                #expect(a == b, "\(w)")
            }
            // The rollup pass (lag 5 s by default) after two minutes: the minutes are final in the rollups.
            h.clock.advance(byMs: 120_000)
            #expect(await RollupService(platform: p).step() != nil)
            #expect(try await p.storage.oldestUnrolledMinute() == nil)
            for w in ChartWindow.allCases {
                let (c, l) = (try await counts(source, w), try await counts(ledger, w))
                #expect(c == l && c.reduce(0, +) == 7, "\(w)")
            }
            // The values are the rollups' (their histograms), not recomputed from the ledger.
            let (from, to) = ChartWindow.hour.range(now: h.clock.now())
            let stats = try await p.storage.rollupTotals(from: from, to: to, filter: RollupFilter(tenantID: h.acme.id), groupBy: .none)[""]
            let minuteOf0 = RollupResolution.minute.bucket(now - 1_000)
            let rolled = try await p.storage.rollupRows(resolution: .minute, from: minuteOf0, to: minuteOf0 + 60_000, filter: RollupFilter(tenantID: h.acme.id))
            let bucket = try #require(try await source.performance(tenantID: h.acme.id, from: from, to: to, bucketMs: 60_000).first?.buckets
                .first { $0.start == minuteOf0 })
            #expect(stats?.requests == 7 && bucket.requests == 2 && bucket.errors == 1)
            #expect(bucket.latencyP95 == rolled.first?.stats.latencyP95 && bucket.tokensPerSecond == rolled.first?.stats.tokensPerSecond)
            // A late ledger row for a rolled-up minute is charted at once (its minute is read from the ledger until the next pass).
            try await p.storage.insertRequests([row("late", now - 3 * 60_000 - 500, latency: 999)])
            #expect(try await counts(source, .hour).reduce(0, +) == 8)
            _ = await RollupService(platform: p).step()
            let hourCounts = try await counts(source, .hour), weekCounts = try await counts(source, .week)
            #expect(hourCounts.reduce(0, +) == 8 && weekCounts.reduce(0, +) == 8)
            // The page draws them (the console's default source is the rollups).
            let (cookie, _) = try await ConsoleTests.login(client, token: h.acmeToken)
            let (_, html) = try await Self.page(client, "/console/charts?window=1h", cookie)
            #expect(html.contains("<polyline class=\"line\"") && html.contains(#"<span class="sub">8 requests"#))
        }
    }
}
