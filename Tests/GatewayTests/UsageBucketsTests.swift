import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import OpenAIWire
import Storage
import Testing
@testable import Gateway

/// `/v1/usage?bucket_width=` (issue 13 item 2): time buckets from the rollups plus the ledger rows
/// of the minutes not rolled up yet, on the manual clock. The buckets' sums equal the ledger totals
/// of the same window before and after a rollup pass, a late row counts once, and bad input is a
/// clear 400.
@Suite(.serialized) struct UsageBucketsTests {
    static let day = ConsoleTests.day

    static func get(_ client: any TestClientProtocol, _ uri: String, _ token: String) async throws -> (HTTPResponse.Status, JSONValue) {
        try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(token)"]) { r in
            (r.status, try JSONValue.parse(Array(r.body.readableBytesView)))
        }
    }

    /// The buckets' results summed, in the totals' fields.
    static func sums(_ usage: JSONValue) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for b in usage["buckets"]?.arrayValue ?? [] {
            for r in b["results"]?.arrayValue ?? [] {
                for k in ["requests", "rejected_requests", "input_tokens", "output_tokens", "reasoning_tokens", "cost_nano_eur"] {
                    out[k, default: 0] += Int64(r[k]?.jsonString ?? "") ?? -1_000_000
                }
                out["energy_uwh", default: 0] += Int64(((Double(r["energy_wh"]?.jsonString ?? "") ?? -1e9) * 1_000_000).rounded())
            }
        }
        return out
    }

    static func totals(_ usage: JSONValue) -> [String: Int64] {
        let t = usage["totals"] ?? .object([])
        func n(_ k: String) -> Int64 { Int64(t[k]?.jsonString ?? "") ?? -1 }
        return ["requests": n("requests"), "rejected_requests": n("rejected_requests"), "input_tokens": n("input_tokens"), "output_tokens": n("output_tokens"),
                "reasoning_tokens": n("reasoning_tokens"), "cost_nano_eur": n("cost_nano_eur"),
                "energy_uwh": Int64(((Double(t["energy_wh"]?.jsonString ?? "") ?? -1e9) * 1_000_000).rounded())]
    }

    @Test func bucketSumsEqualTheLedgerTotalsBeforeAndAfterARollupPass() async throws {
        try await ConsoleTests().withConsole { client, h in
            let p = h.platform
            var n = 0
            func row(_ at: Int64, key: String? = nil, tenant: String? = nil, status: Int = 200, model: String = "smollm2:135m") -> RequestRecord {
                n += 1
                let billed = status == 200
                return RequestRecord(id: "u\(n)", createdAt: at, tenantID: tenant ?? h.acme.id, keyID: key ?? h.acmeKey.id, model: model,
                                     endpoint: "chat.completions", status: status, outcome: billed ? "ok" : "rejected",
                                     promptTokens: billed ? 100 + n : 0, completionTokens: billed ? 20 + n : 0, latencyMs: 50 + n, ttftMs: 10,
                                     backend: "b", systemTokens: billed ? 7 : nil, reasoningTokens: billed ? n : nil,
                                     costNano: billed ? 1_000_003 * Int64(n) : nil, energyMicroWh: billed ? 12_345 * Int64(n) : nil)
            }
            let d = Self.day
            let (acmeKey2, _) = try await p.administration.createKey(tenant: h.acme, name: "acme-key-2")
            try await p.storage.insertRequests([
                row(d + 1_000), row(d + 61_000), row(d + 61_500, key: acmeKey2.id), row(d + 125_000, status: 429),
                row(d + 30 * 60_000), row(d + 59 * 60_000 + 59_000),
                row(d + 2_000, key: h.globexKey.id, tenant: h.globex.id),  // another tenant: never in acme's buckets
            ])
            let window = "from=\(d)&to=\(d + 3_600_000)"
            func check(_ label: String) async throws {
                for (width, count) in [("1m", 60), ("1h", 1), ("1d", 1)] {
                    for g in ["model", "key"] {
                        let (s, u) = try await Self.get(client, "/v1/usage?\(window)&group_by=\(g)&bucket_width=\(width)", h.acmeAPIKey)
                        #expect(s == .ok, "\(label) \(width)")
                        let buckets = u["buckets"]?.arrayValue ?? []
                        #expect(buckets.count == count && u["bucket_width"]?.stringValue == width, "\(label) \(width)")
                        #expect(buckets.first?["start"]?.jsonString == String(d), "\(label) \(width)")
                        #expect(Self.sums(u) == Self.totals(u), "\(label) \(width) \(g)")
                        #expect(Self.totals(u)["requests"] == 5 && Self.totals(u)["rejected_requests"] == 1, "\(label)")
                        // The other tenant's key never shows.
                        #expect(!u.jsonString.contains(h.globexKey.id), "\(label)")
                        if g == "key" { #expect(u.jsonString.contains(acmeKey2.id), "\(label)") }
                    }
                }
                // Empty minutes are there, with no results; the busy ones carry their rows.
                let (_, m) = try await Self.get(client, "/v1/usage?\(window)&group_by=key&bucket_width=1m", h.acmeAPIKey)
                let b = m["buckets"]?.arrayValue ?? []
                #expect(b.count == 60 && b[3]["results"]?.arrayValue?.isEmpty == true && b[3]["end"]?.jsonString == String(d + 240_000))
                let minute1 = b[1]["results"]?.arrayValue ?? []
                #expect(minute1.count == 2 && minute1.allSatisfy { $0["requests"]?.intValue == 1 }, "\(label)")
                let minute2 = b[2]["results"]?.arrayValue?.first
                #expect(minute2?["errors_4xx"]?.intValue == 1 && minute2?["requests"]?.intValue == 0 && minute2?["rejected_requests"]?.intValue == 1, "\(label)")
            }
            // Nothing rolled up yet: the buckets come from the ledger.
            #expect(try await p.storage.oldestUnrolledMinute() != nil)
            try await check("before the pass")
            // After the pass, from the rollups (minute rows; hour rows for 1h and 1d).
            h.clock.advance(byMs: 120_000)
            #expect(await RollupService(platform: p).step() != nil)
            #expect(try await p.storage.oldestUnrolledMinute() == nil)
            try await check("after the pass")

            // A late row in a minute already rolled up: counted once, before and after the next pass.
            try await p.storage.insertRequests([row(d + 1_500)])
            #expect(try await p.storage.oldestUnrolledMinute() == d)
            func requests() async throws -> (Int64?, Int64?) {
                let (_, u) = try await Self.get(client, "/v1/usage?\(window)&bucket_width=1h", h.acmeAPIKey)
                #expect(Self.sums(u) == Self.totals(u))
                return (Self.sums(u)["requests"], Self.totals(u)["requests"])
            }
            #expect(try await requests() == (6, 6))
            h.clock.advance(byMs: 60_000)
            #expect(await RollupService(platform: p).step() != nil)
            #expect(try await p.storage.oldestUnrolledMinute() == nil)
            #expect(try await requests() == (6, 6))

            // The admin usage route answers the same buckets for the tenant.
            let (_, mine) = try await Self.get(client, "/v1/usage?\(window)&bucket_width=1m", h.acmeAPIKey)
            let (sa, admin) = try await Self.get(client, "/admin/v1/tenants/\(h.acme.id)/usage?\(window)&bucket_width=1m", h.operatorToken)
            #expect(sa == .ok && admin["buckets"] == mine["buckets"] && admin["buckets"] != nil)
            // Without bucket_width, no buckets (the answer is as before).
            let (_, plain) = try await Self.get(client, "/v1/usage?\(window)", h.acmeAPIKey)
            #expect(plain["buckets"] == nil && plain["bucket_width"] == nil)
        }
    }

    @Test func badBucketWidthEndpointGroupingAndTooManyBucketsAreClear400s() async throws {
        try await ConsoleTests().withConsole { client, h in
            let d = Self.day
            let cases: [(String, String, String)] = [
                ("bucket_width=2h", "bucket_width", "use 1m, 1h or 1d"),
                ("bucket_width=", "bucket_width", "use 1m, 1h or 1d"),
                ("bucket_width=1h&group_by=endpoint", "group_by", "buckets group by model or key only"),
                ("bucket_width=1d&group_by=day", "group_by", "buckets group by model or key only"),
                ("bucket_width=1m&from=\(d - 86_400_000)&to=\(d + 3_600_000)", "bucket_width", "1500 buckets"),
            ]
            for (query, param, message) in cases {
                let (s, e) = try await Self.get(client, "/v1/usage?\(query)", h.acmeAPIKey)
                #expect(s == .badRequest, "\(query)")
                #expect(e["error"]?["param"]?.stringValue == param, "\(query)")
                #expect(e["error"]?["type"]?.stringValue == "invalid_request_error", "\(query)")
                #expect(e["error"]?["message"]?.stringValue?.contains(message) == true, "\(query): \(e.jsonString)")
            }
            // 1 000 buckets exactly is fine; the open `to` ends at now.
            let (s1, ok) = try await Self.get(client, "/v1/usage?bucket_width=1m&from=\(d + 3_600_000 - 1_000 * 60_000)&to=\(d + 3_600_000)", h.acmeAPIKey)
            #expect(s1 == .ok && ok["buckets"]?.arrayValue?.count == 1_000)
            let (s2, open) = try await Self.get(client, "/v1/usage?bucket_width=1h&from=\(d)", h.acmeAPIKey)
            #expect(s2 == .ok && open["buckets"]?.arrayValue?.count == 1)
        }
    }
}
