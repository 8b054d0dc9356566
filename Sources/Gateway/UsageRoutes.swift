import Foundation
import HTTPTypes
import Hummingbird
import Metering
import Quotas
import OpenAIWire
import Storage
import Tenancy

/// Usage reports from the ledger: totals are computed from the same rows as the groups, so they
/// always equal the sum of the ledger rows. `requests` counts the billed (served) requests,
/// `rejected_requests` those answered with an error before anything was billed (unknown model,
/// rate limit, budget, an engine failing before the first token …). A model row exists only for a
/// catalog model: a rejection naming a model the catalog does not have counts in the totals only.
public enum UsageReport {
    public enum Grouping: String, Sendable, CaseIterable {
        case model, day, key, endpoint

        /// The choices, for error messages ("model, day, key or endpoint").
        public static var choices: String {
            let names = allCases.map(\.rawValue)
            return names.dropLast().joined(separator: ", ") + " or " + (names.last ?? "")
        }
    }

    /// Settled (priced) rows are billed; a 200 without a price can only be a row older than the ledger columns.
    static func isBilled(_ r: RequestRecord) -> Bool { r.costNano != nil || r.status == 200 }

    /// The sums of one group of ledger rows (or of all of them): what `/v1/usage` and the console show.
    public struct Totals: Sendable, Equatable {
        public var requests = 0, rejected = 0, input = 0, output = 0, reasoning = 0
        /// The part of `input` from system/developer messages (the console shows it; the JSON does not).
        public var system = 0
        public var cost: Int64 = 0, energy: Int64 = 0

        public init() {}

        mutating func add(_ r: RequestRecord) {
            if UsageReport.isBilled(r) { requests += 1 } else { rejected += 1 }
            input += r.promptTokens
            output += r.completionTokens
            reasoning += r.reasoningTokens ?? 0
            system += r.systemTokens ?? 0
            cost += r.costNano ?? 0
            energy += r.energyMicroWh ?? 0
        }

        func json(group: (String, String)? = nil) -> JSONValue {
            var m: [(String, JSONValue)] = []
            if let group { m.append((group.0, .string(group.1))) }
            m += [("requests", .int(requests)), ("rejected_requests", .int(rejected)), ("input_tokens", .int(input)), ("output_tokens", .int(output)),
                  ("reasoning_tokens", .int(reasoning)), ("cost_nano_eur", .number(String(cost))),
                  ("cost_eur", .string(Metering.Cost.euroString(cost))),
                  ("energy_wh", .number(Energy(microWattHours: energy).wattHoursString))]
            return .object(m)
        }
    }

    /// `catalogID` names a model's catalog id (aliases resolved), nil for a name the catalog does not know.
    public static func json(_ rows: [RequestRecord], groupBy: Grouping, catalogID: (String) -> String?) -> JSONValue {
        let (groups, totals) = self.groups(rows, groupBy: groupBy, catalogID: catalogID)
        let data = groups.map { $0.totals.json(group: (groupBy.rawValue, $0.key)) }
        return .object([("object", "list"), ("group_by", .string(groupBy.rawValue)), ("data", .array(data)), ("totals", totals.json())])
    }

    /// The groups (sorted by key) and the totals of `rows`: the one computation behind `json`,
    /// the table, the CSV and the console's pages.
    public static func groups(_ rows: [RequestRecord], groupBy: Grouping, catalogID: (String) -> String?) -> (groups: [(key: String, totals: Totals)], totals: Totals) {
        var groups: [String: Totals] = [:]
        var totals = Totals()
        for r in rows {
            let key: String
            switch groupBy {
            case .model:
                // A billed row was served, so its model was in the catalog then (it may have left it since).
                guard let id = catalogID(r.model) ?? (isBilled(r) ? r.model : nil) else {
                    totals.add(r)
                    continue
                }
                key = id
            case .day: key = UTCMonth.dayString(ms: r.createdAt)
            case .key: key = r.keyID ?? "-"
            case .endpoint: key = r.endpoint  // the endpoint's id (`chat.completions`)
            }
            groups[key, default: Totals()].add(r)
            totals.add(r)
        }
        return (groups.sorted { $0.key < $1.key }.map { (key: $0.key, totals: $0.value) }, totals)
    }

    public static func table(_ rows: [RequestRecord], groupBy: Grouping, catalogID: (String) -> String?) -> String {
        let j = json(rows, groupBy: groupBy, catalogID: catalogID)
        var out = "| \(groupBy.rawValue) | requests | rejected | input | output | reasoning | cost € | energy Wh |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for g in (j["data"]?.arrayValue ?? []) + [(j["totals"] ?? .object([])).setting(groupBy.rawValue, "TOTAL")] {
            let f = { (k: String) in g[k].map { $0.stringValue ?? $0.jsonString } ?? "" }
            out += "| \(f(groupBy.rawValue)) | \(f("requests")) | \(f("rejected_requests")) | \(f("input_tokens")) | \(f("output_tokens")) | \(f("reasoning_tokens")) | \(f("cost_eur")) | \(f("energy_wh")) |\n"
        }
        return out
    }

    public static func csv(_ rows: [RequestRecord], groupBy: Grouping, catalogID: (String) -> String?) -> String {
        let j = json(rows, groupBy: groupBy, catalogID: catalogID)
        var out = "\(groupBy.rawValue),requests,rejected_requests,input_tokens,output_tokens,reasoning_tokens,cost_nano_eur,cost_eur,energy_wh\r\n"
        for g in (j["data"]?.arrayValue ?? []) + [(j["totals"] ?? .object([])).setting(groupBy.rawValue, "TOTAL")] {
            out += [groupBy.rawValue, "requests", "rejected_requests", "input_tokens", "output_tokens", "reasoning_tokens", "cost_nano_eur", "cost_eur", "energy_wh"]
                .map { k in g[k].map { $0.stringValue ?? $0.jsonString } ?? "" }.joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// `from`/`to` as ms since the epoch or `YYYY-MM-DD` (UTC); defaults: the current month.
    static func range(_ q: (String) -> String?, now: Int64) throws(APIError) -> (Int64, Int64) {
        func parse(_ key: String) throws(APIError) -> Int64? {
            guard let v = q(key) else { return nil }
            if let ms = Int64(v) { return ms }
            let parts = v.split(separator: "-").compactMap { Int($0) }
            guard parts.count == 3, let d = DateComponents(calendar: Calendar(identifier: .gregorian), timeZone: TimeZone(identifier: "UTC"),
                                                             year: parts[0], month: parts[1], day: parts[2]).date else {
                throw APIError.invalidValue(key, "use milliseconds since the epoch or a date YYYY-MM-DD.")
            }
            return Int64(d.timeIntervalSince1970 * 1000)
        }
        let from = try parse("from") ?? UTCMonth.monthStartMs(containing: now)
        let to = try parse("to") ?? Int64.max
        guard from <= to else { throw APIError.invalidValue("to", "it must not be before 'from'.") }
        return (from, to)
    }
}

extension Platform {
    /// The ledger rows of one tenant in `[from, to]`, after the pending rows are written: what
    /// `/v1/usage`, the admin usage route and the console all read, so their numbers are equal.
    public func usageRows(tenantID: String, from: Int64, to: Int64) async throws -> [RequestRecord] {
        await requestLog.flush()
        return try await storage.ledger(tenantID: tenantID, from: from, to: to)
    }
}

func addUsageRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    @Sendable func grouping(_ request: Request) throws(APIError) -> UsageReport.Grouping {
        let g = request.uri.queryParameters.get("group_by", as: String.self) ?? "model"
        guard let grouping = UsageReport.Grouping(rawValue: g) else { throw APIError.invalidValue("group_by", "use \(UsageReport.Grouping.choices).") }
        return grouping
    }

    // A key sees its own tenant's usage only: the tenant comes from the key, never from the request.
    router.get("/v1/usage") { request, context in
        let principal = try await platform.authenticate(request, context)
        let (from, to) = try UsageReport.range({ request.uri.queryParameters.get($0, as: String.self) }, now: platform.now())
        let g = try grouping(request)
        let rows = try await platform.usageRows(tenantID: principal.tenantID, from: from, to: to)
        let catalog = platform.catalog.current
        var out = UsageReport.json(rows, groupBy: g, catalogID: { catalog.resolve($0)?.id })
        let budget = await platform.billing.budget(principal.tenantID)
        out.set("balance_eur", .string(Metering.Cost.euroString(budget.balance)))
        out.set("month_spend_eur", .string(Metering.Cost.euroString(budget.spentMonth)))
        return jsonResponse(out, headers: CompletionPipeline.keyHeaders(principal))
    }

    let api = AdminAPI(platform: platform)
    router.get("/admin/v1/tenants/{id}/usage") { request, context in
        let p = try await api.admin(request, context)
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        let (from, to) = try UsageReport.range({ request.uri.queryParameters.get($0, as: String.self) }, now: platform.now())
        let rows = try await platform.usageRows(tenantID: t.id, from: from, to: to)
        let catalog = platform.catalog.current
        return jsonResponse(UsageReport.json(rows, groupBy: try grouping(request), catalogID: { catalog.resolve($0)?.id }))
    }
    router.post("/admin/v1/tenants/{id}/credits") { request, context in
        let p = try await api.admin(request, context)
        try api.operatorOnly(p, "add credit")
        let t = try await api.tenant(context.parameters.get("id") ?? "", for: p, context)
        let json = try await api.body(request, context, allowed: ["amount_eur", "note"])
        if let note = json["note"], !note.isNull, note.stringValue == nil { throw APIError.invalidType("note", expected: "a string", got: note) }
        guard let text = json["amount_eur"].flatMap({ $0.stringValue ?? ($0.doubleValue != nil ? $0.jsonString : nil) }),
              let amount = Metering.Cost(euroString: text), amount.nanoEuros > 0 else {
            throw APIError.invalidValue("amount_eur", "a positive decimal number of euros, e.g. \"100.00\".")
        }
        let balance = try await platform.administration.addCredit(tenantID: t.id, amountNano: amount.nanoEuros, note: json["note"]?.stringValue)
        api.audit(p, context, "credit.add", tenant: t.id, target: amount.euroString)
        return jsonResponse(.object([("tenant_id", .string(t.id)), ("balance_eur", .string(Metering.Cost.euroString(balance)))]), status: .created)
    }
}
