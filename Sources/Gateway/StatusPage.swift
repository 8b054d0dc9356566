import Foundation
import HTTPTypes
import Hummingbird
import OpenAIWire
import Storage

/// The public status page (issue 13 item 6): `GET /status` (HTML rendered on the server, no
/// script) and `GET /status.json`. Per model served: availability (share of non-5xx answers),
/// time to first token and tokens/s over the last 24 h and 7 d from the rollups; the active global
/// incidents about models and the fleet. No tenant data (no tenant's rule, budget or credit, no
/// request counts), no authentication, cacheable for `maxAge` seconds.
public struct StatusPage: Sendable {
    public static let maxAge = 30
    public let platform: Platform

    public init(platform: Platform) { self.platform = platform }

    public struct ModelStatus: Sendable, Equatable {
        public var id: String
        public var day: RollupStats
        public var week: RollupStats
    }

    public struct Snapshot: Sendable {
        public var generatedAt: Int64
        public var models: [ModelStatus]
        public var incidents: [IncidentRecord]
    }

    /// What both renderings show, at the clock's now.
    public func snapshot() async throws -> Snapshot {
        let now = platform.now()
        let storage = platform.storage
        let day = try await storage.rollupTotals(from: now - RollupWindow.day.ms, to: now, groupBy: .model, resolution: .minute)
        let week = try await storage.rollupTotals(from: now - RollupWindow.week.ms, to: now, groupBy: .model, resolution: .hour)
        let catalog = Set(platform.catalog.current.entries.map(\.id))
        let ids = platform.fleet.servedModels.union(day.keys).union(week.keys).filter { catalog.contains($0) }.sorted()
        return Snapshot(generatedAt: now,
                        models: ids.map { ModelStatus(id: $0, day: day[$0] ?? RollupStats(), week: week[$0] ?? RollupStats()) },
                        incidents: try await Alerting(platform: platform).publicIncidents())
    }

    /// An incident as the public sees it: the model or "a backend", never a tenant or a backend's name.
    static func publicMessage(_ i: IncidentRecord) -> String {
        let model = i.model ?? "a model"
        switch AlertRule.Kind(rawValue: i.kind) {
        case .latencyP95: return "Slow responses for \(model) (p95 latency above \(AlertRule.number(i.threshold)) ms)"
        case .ttftP95: return "Slow first tokens for \(model) (p95 time to first token above \(AlertRule.number(i.threshold)) ms)"
        case .errorRate: return "Elevated error rate for \(model) (above \(AlertRule.number(i.threshold)) %)"
        case .backendDown: return "Reduced capacity: an inference backend is down"
        case .queueSaturated: return "High load: requests are waiting for capacity"
        default: return "Incident"
        }
    }

    static func windowJSON(_ s: RollupStats) -> JSONValue {
        func num(_ d: Double?, _ scale: Double = 10) -> JSONValue { d.map { .double(($0 * scale).rounded() / scale) } ?? .null }
        return .object([
            ("availability", num(s.availability, 100_000)), ("ttft_p50_ms", num(s.ttftP50)), ("ttft_p95_ms", num(s.ttftP95)),
            ("tokens_per_second", num(s.tokensPerSecond)),
        ])
    }

    public static func json(_ s: Snapshot) -> JSONValue {
        .object([
            ("object", "status"), ("generated_at", .int(Int(s.generatedAt))),
            ("status", .string(s.incidents.isEmpty ? "operational" : "degraded")),
            ("models", .array(s.models.map { m in
                .object([("id", .string(m.id)), ("windows", .object([("24h", windowJSON(m.day)), ("7d", windowJSON(m.week))]))])
            })),
            ("incidents", .array(s.incidents.map { i in
                .object([("id", .string(i.id)), ("kind", .string(i.kind)), ("model", i.model.map { .string($0) } ?? .null),
                         ("started_at", .int(Int(i.startedAt))), ("message", .string(publicMessage(i)))])
            })),
        ])
    }

    /// HTML text with `&`, `<`, `>`, `"` and `'` escaped.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    public static func html(_ s: Snapshot) -> String {
        func pct(_ d: Double?) -> String { d.map { String(format: "%.3f %%", $0 * 100) } ?? "no traffic" }
        func ms(_ d: Double?) -> String { d.map { String(format: "%.0f ms", $0) } ?? "–" }
        func tps(_ d: Double?) -> String { d.map { String(format: "%.1f", $0) } ?? "–" }
        var h = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>LLMaaS status</title>
        <style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
        table{border-collapse:collapse;width:100%}th,td{text-align:right;padding:.35rem .6rem;border-bottom:1px solid #ddd}
        th:first-child,td:first-child{text-align:left}.ok{color:#17632a}.bad{color:#a61b1b}</style></head><body>
        <h1>LLMaaS status</h1>

        """
        h += s.incidents.isEmpty
            ? "<p class=\"ok\" id=\"overall\">All systems operational.</p>\n"
            : "<p class=\"bad\" id=\"overall\">Degraded: \(s.incidents.count) active incident\(s.incidents.count == 1 ? "" : "s").</p>\n"
        h += "<h2>Current incidents</h2>\n"
        if s.incidents.isEmpty {
            h += "<p>None.</p>\n"
        } else {
            h += "<ul id=\"incidents\">\n"
            for i in s.incidents {
                h += "<li data-kind=\"\(escape(i.kind))\">\(escape(publicMessage(i))) — since <time datetime=\"\(iso(i.startedAt))\">\(iso(i.startedAt))</time></li>\n"
            }
            h += "</ul>\n"
        }
        h += """
        <h2>Models</h2>
        <table id="models"><thead><tr><th>Model</th><th>Availability 24 h</th><th>Availability 7 d</th>
        <th>TTFT p50 24 h</th><th>TTFT p95 24 h</th><th>TTFT p95 7 d</th><th>Tokens/s 24 h</th><th>Tokens/s 7 d</th></tr></thead><tbody>

        """
        for m in s.models {
            h += "<tr><td>\(escape(m.id))</td><td>\(pct(m.day.availability))</td><td>\(pct(m.week.availability))</td>"
            h += "<td>\(ms(m.day.ttftP50))</td><td>\(ms(m.day.ttftP95))</td><td>\(ms(m.week.ttftP95))</td>"
            h += "<td>\(tps(m.day.tokensPerSecond))</td><td>\(tps(m.week.tokensPerSecond))</td></tr>\n"
        }
        h += """
        </tbody></table>
        <p><small>Availability: share of requests not answered with a server error (5xx). Updated every minute;
        generated <time datetime="\(iso(s.generatedAt))">\(iso(s.generatedAt))</time>. Machine-readable: <a href="/status.json">/status.json</a>.</small></p>
        </body></html>

        """
        return h
    }
}

func addStatusRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    let page = StatusPage(platform: platform)
    let cache = "public, max-age=\(StatusPage.maxAge)"
    router.get("/status.json") { _, _ in
        jsonResponse(StatusPage.json(try await page.snapshot()), headers: [.cacheControl: cache])
    }
    router.get("/status") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: cache],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: StatusPage.html(try await page.snapshot()))))
    }
}
