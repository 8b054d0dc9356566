import Catalog
import Foundation
import Metering
import OpenAIWire
import Storage
import Tenancy

/// What a page's view-model function is given: the platform, the logged-in session, the tenant
/// the page shows (already checked against the session's scope) and the query.
public struct ConsoleRequest: Sendable {
    public let platform: Platform
    public let session: ConsoleSession
    /// The tenant the page is about; nil only for an operator on a platform without tenants.
    public let tenant: TenantRecord?
    public let query: [String: String]
    public let dependencies: ConsoleDependencies

    public var isOperator: Bool { session.tenantID == nil }
}

/// A console page: a template under `Resources/console/` and a function that builds its view
/// model. Adding a page = one `ConsolePage` in ``ConsolePages/all`` (or passed to
/// `addConsoleRoutes(extraPages:)`) + one `<template>.mustache` that starts with `{{> header}}`
/// and ends with `{{> footer}}`. Routing, login, tenant scoping, the tenant picker, the
/// navigation, security headers and live refresh come with it.
public struct ConsolePage: Sendable {
    /// Also the navigation's key (`active` in the header).
    public let id: String
    /// Under `/console` (`/console` itself for the overview).
    public let path: String
    public let title: String
    public let template: String
    /// Only operators see it (others get 404, and no link).
    public let operatorOnly: Bool
    /// Its `[data-live]` part is refreshed every few seconds by `console.js`.
    public let live: Bool
    /// Shows one tenant's data (its heading names the tenant); false for fleet- or catalog-wide pages.
    public let tenantScoped: Bool
    /// Returns the template's values (merged over the common ones: `title`, `tenant`, `csrf` …).
    /// Throw `APIError.notFound` for an id the session may not see.
    public let build: @Sendable (ConsoleRequest) async throws -> [String: Any]

    public init(id: String, path: String, title: String, template: String, operatorOnly: Bool = false, live: Bool = false,
                tenantScoped: Bool = true, build: @escaping @Sendable (ConsoleRequest) async throws -> [String: Any]) {
        self.id = id; self.path = path; self.title = title; self.template = template
        self.operatorOnly = operatorOnly; self.live = live; self.tenantScoped = tenantScoped; self.build = build
    }
}

/// Data the pages read that another part may replace after a merge (the rollups, for the charts).
public struct ConsoleDependencies: Sendable {
    public var performance: any PerformanceSource
    public init(performance: any PerformanceSource) { self.performance = performance }
}

/// Formatting shared by the pages (UTC, fixed formats: the browser tests compare exact text).
enum ConsoleFormat {
    static func time(_ ms: Int64?) -> String {
        guard let ms else { return "–" }
        let f = DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) + " UTC"
    }

    static func euros(_ nano: Int64) -> String { Metering.Cost.euroString(nano) }
    static func wattHours(_ microWh: Int64) -> String { Energy(microWattHours: microWh).wattHoursString }

    /// The values of one usage row (the same numbers `/v1/usage` gives, by the same code).
    static func totals(_ t: UsageReport.Totals, group: String = "") -> [String: Any] {
        ["group": group, "requests": t.requests, "rejected": t.rejected, "input": t.input, "output": t.output,
         "reasoning": t.reasoning, "system": t.system, "cost_eur": euros(t.cost), "energy_wh": wattHours(t.energy)]
    }
}

public enum ConsolePages {
    /// Every page, in navigation order.
    public static let all: [ConsolePage] = [overview, usage, charts, alerts, requests, keys, lifecycle, backends]

    /// Month to date (UTC) by default, or the query's `from`/`to` exactly as `/v1/usage` reads them.
    static func usageWindow(_ r: ConsoleRequest) throws -> (from: Int64, to: Int64, label: String) {
        let (from, to) = try UsageReport.range({ r.query[$0] }, now: r.platform.now())
        let label = r.query["from"] == nil && r.query["to"] == nil
            ? "month to date (since \(ConsoleFormat.time(from)))"
            : "\(ConsoleFormat.time(from)) – \(to == Int64.max ? "now" : ConsoleFormat.time(to))"
        return (from, to, label)
    }

    static let overview = ConsolePage(id: "overview", path: "/console", title: "Overview", template: "overview", live: true) { r in
        guard let t = r.tenant else { return ["no_tenant": true] }
        let p = r.platform
        let (from, to, label) = try usageWindow(r)
        let rows = try await p.usageRows(tenantID: t.id, from: from, to: to)
        let catalog = p.catalog.current
        let totals = UsageReport.groups(rows, groupBy: .model, catalogID: { catalog.resolve($0)?.id }).totals
        let budget = await p.billing.budget(t.id)
        let tier = p.billing.tier(t.tier)
        var out: [String: Any] = ["window": label, "totals": ConsoleFormat.totals(totals), "tier": tier.name,
                                  "month_spend_eur": ConsoleFormat.euros(budget.spentMonth),
                                  "balance_eur": ConsoleFormat.euros(budget.balance), "prepaid": tier.prepaid]
        if let cap = tier.monthlyCapNano, cap > 0 {
            let share = min(1, max(0, Double(budget.spentMonth) / Double(cap)))
            out["cap"] = ["cap_eur": ConsoleFormat.euros(cap), "percent": String(format: "%.1f", share * 100),
                          "bar_width": String(format: "%.1f", share * 300), "warn": share >= 0.8]
        }
        return out
    }

    static let usage = ConsolePage(id: "usage", path: "/console/usage", title: "Usage", template: "usage", live: true) { r in
        guard let t = r.tenant else { return ["no_tenant": true] }
        let p = r.platform
        let (from, to, label) = try usageWindow(r)
        let rows = try await p.usageRows(tenantID: t.id, from: from, to: to)
        let catalog = p.catalog.current
        let byModel = UsageReport.groups(rows, groupBy: .model, catalogID: { catalog.resolve($0)?.id })
        let byKey = UsageReport.groups(rows, groupBy: .key, catalogID: { catalog.resolve($0)?.id })
        let names = Dictionary(try await p.administration.keys(tenantID: t.id).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        return [
            "window": label,
            "models": byModel.groups.map { ConsoleFormat.totals($0.totals, group: $0.key) },
            "keys": byKey.groups.map { g -> [String: Any] in
                var row = ConsoleFormat.totals(g.totals, group: g.key)
                row["name"] = names[g.key] ?? ""
                return row
            },
            "totals": ConsoleFormat.totals(byModel.totals),
        ]
    }

    static let charts = ConsolePage(id: "charts", path: "/console/charts", title: "Performance", template: "charts", live: true) { r in
        guard let t = r.tenant else { return ["no_tenant": true] }
        let window = ChartWindow(rawValue: r.query["window"] ?? "1h") ?? .hour
        let (from, to) = window.range(now: r.platform.now())
        // Catalog models only (a rejection naming an unknown model has nothing to chart), as in the usage report.
        let catalog = r.platform.catalog.current
        let models = try await r.dependencies.performance.performance(tenantID: t.id, from: from, to: to, bucketMs: window.bucketMs)
            .filter { catalog.resolve($0.model) != nil }
        return [
            "window": window.rawValue,
            "windows": ChartWindow.allCases.map { ["id": $0.rawValue, "active": $0 == window] as [String: Any] },
            "models": models.map { m -> [String: Any] in
                func line(_ name: String, _ value: (PerformanceBucket) -> Double?) -> LineChart.Series {
                    LineChart.Series(name: name, points: m.buckets.map { ($0.start, value($0)) })
                }
                return [
                    "model": m.model,
                    "requests": m.buckets.reduce(0) { $0 + $1.requests },
                    "errors": m.buckets.reduce(0) { $0 + $1.errors },
                    "charts": [
                        LineChart(title: "\(m.model) latency (\(window.rawValue))", unit: "ms", from: from, to: to,
                                  series: [line("p50", \.latencyP50), line("p95", \.latencyP95)]).view,
                        LineChart(title: "\(m.model) time to first token (\(window.rawValue))", unit: "ms", from: from, to: to,
                                  series: [line("p50", \.ttftP50), line("p95", \.ttftP95)]).view,
                        LineChart(title: "\(m.model) throughput (\(window.rawValue))", unit: "tokens/s", from: from, to: to,
                                  series: [line("output tokens/s", \.tokensPerSecond)]).view,
                    ],
                ]
            },
        ]
    }

    static let keys = ConsolePage(id: "keys", path: "/console/keys", title: "API keys", template: "keys") { r in
        guard let t = r.tenant else { return ["no_tenant": true] }
        return try await keysView(r, tenant: t)
    }

    static func keysView(_ r: ConsoleRequest, tenant t: TenantRecord) async throws -> [String: Any] {
        let now = r.platform.now()
        let keys = try await r.platform.administration.keys(tenantID: t.id)
        return [
            "keys": keys.map { k -> [String: Any] in
                let g = Grants.decode(k.grants)
                let state = AdminJSON.keyState(k, now: now)
                var row: [String: Any] = ["id": k.id, "name": k.name, "prefix": APIKeyToken.prefix + k.id, "state": state,
                        "created": ConsoleFormat.time(k.createdAt), "expires": ConsoleFormat.time(k.expiresAt),
                        "last_used": ConsoleFormat.time(k.lastUsedAt),
                        "models": g.models.isEmpty ? "all" : g.models.joined(separator: ", "),
                        "endpoints": g.endpoints.isEmpty ? "all" : g.endpoints.joined(separator: ", "),
                        "usable": state == "active"]
                if let s = k.successorID { row["successor"] = s }  // absent, not "": an empty string is truthy in Mustache
                return row
            },
            "endpoint_choices": Endpoint.grantNames.map { ["name": $0] },
            "model_choices": r.platform.catalog.current.entries.map { ["id": $0.id] },
        ]
    }

    static let lifecycle = ConsolePage(id: "lifecycle", path: "/console/lifecycle", title: "Model lifecycle", template: "lifecycle",
                                       tenantScoped: false) { r in
        let report = LifecycleReport(catalog: r.platform.catalog.current, on: r.platform.clock.today)
        return [
            "date": report.day.description,
            "models": report.rows.map { row -> [String: Any] in
                ["id": row.id, "developer": row.developer, "phase": row.phase.rawValue, "status": row.state.name,
                 "end_of_support": row.endOfSupport.description, "retires": row.removal.description,
                 "days_left": row.daysLeft == 0 ? "retired" : String(row.daysLeft), "successor": row.successor ?? "–"]
            },
        ]
    }

    static let backends = ConsolePage(id: "backends", path: "/console/backends", title: "Backends", template: "backends",
                                      operatorOnly: true, live: true, tenantScoped: false) { r in
        let report = r.platform.fleet.backendsReport()
        return [
            "policy": report["policy"]?.stringValue ?? "",
            "queued": report["queued"]?.intValue ?? 0,
            "backends": (report["data"]?.arrayValue ?? []).map { b -> [String: Any] in
                let probe = b["last_probe_ok"]?.boolValue
                return ["name": b["name"]?.stringValue ?? "", "kind": b["kind"]?.stringValue ?? "",
                        "state": b["state"]?.stringValue ?? "",
                        "health": probe == nil ? "not probed yet" : (probe! ? "healthy" : "failing"),
                        "healthy": probe == true,
                        "in_flight": b["in_flight"]?.intValue ?? 0, "capacity": b["capacity"]?.intValue ?? 0,
                        "load": String(format: "%.0f %%", (b["load"]?.doubleValue ?? 0) * 100),
                        "requests": b["requests"]?.intValue ?? 0, "failures": b["failures"]?.intValue ?? 0,
                        "models": (b["models"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", "),
                        "last_error": b["recent_errors"]?.arrayValue?.first?["message"]?.stringValue ?? ""]
            },
        ]
    }
}
