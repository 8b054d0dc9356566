import OpenAIWire

extension Prices {
    /// n€/token as €/M tokens in decimal text, exact (900 → "0.9", 4000 → "4", 1 → "0.001").
    public static func eurPerMTok(nanoPerToken n: Int) -> String {
        let whole = n / 1000, fraction = n % 1000
        guard fraction != 0 else { return String(whole) }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 3 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    /// Prices as `/v1/models` shows them: €/M tokens as decimal strings (no float rounding) and
    /// the integer n€/token the ledger uses.
    public var json: JSONValue {
        .object([
            ("currency", "EUR"),
            ("input_eur_per_mtok", .string(Prices.eurPerMTok(nanoPerToken: inputNanoPerToken))),
            ("output_eur_per_mtok", .string(Prices.eurPerMTok(nanoPerToken: outputNanoPerToken))),
            ("reasoning_eur_per_mtok", .string(Prices.eurPerMTok(nanoPerToken: reasoningNanoPerToken))),
            ("input_nano_eur_per_token", .int(inputNanoPerToken)),
            ("output_nano_eur_per_token", .int(outputNanoPerToken)),
            ("reasoning_nano_eur_per_token", .int(reasoningNanoPerToken)),
        ])
    }
}

extension CatalogEntry {
    /// The model as `GET /v1/models` and `GET /v1/models/{id}` show it: OpenAI's fields (`id`,
    /// `object`, `created` = DMP in Unix seconds, `owned_by` = developer) plus `aliases`,
    /// `lifecycle`, `capabilities`, `context_length` (and `max_model_len`, the same), `pricing`
    /// and `energy_kwh_per_mtok`, for `day` and the
    /// calling tenant (an extension changes `retires_at` for that tenant only).
    public func modelJSON(on day: Day, tenant: String? = nil, policy: LifecyclePolicy = .standard) -> JSONValue {
        let extended = extendedUntil(tenant: tenant)
        let state = lifecycle(on: day, extendedUntil: extended, policy: policy)
        let removal = removalDate(extendedUntil: extended, policy: policy)
        return .object([
            ("id", .string(id)),
            ("object", "model"),
            ("created", .int(inProduction.unixTime)),
            ("owned_by", .string(developer)),
            ("aliases", .array(aliases.map(JSONValue.string))),
            ("lifecycle", .object([
                ("phase", .string(phase.rawValue)),
                ("status", .string(state.name)),
                ("in_production", .string(inProduction.description)),
                ("end_of_support", .string(endOfSupport.description)),
                ("retires_at", .string(removal.description)),
                ("extended_support_until", extended.map { .string($0.description) } ?? .null),
                ("days_until_retirement", .int(max(0, day.days(until: removal)))),
                ("successor", successor.map(JSONValue.string) ?? .null),
            ])),
            ("capabilities", .array(capabilities.map(\.rawValue).sorted().map(JSONValue.string))),
            ("context_length", .int(contextLength)),
            ("max_model_len", .int(contextLength)),  // the name vLLM and the reference use
            ("pricing", prices.json),
            ("energy_kwh_per_mtok", energyKWhPerMTok.map(JSONValue.double) ?? .null),
        ])
    }
}

extension Catalog {
    /// `GET /v1/models`: the models this caller may use today, in catalog order. `include`
    /// filters further (models some backend serves, models the key is granted).
    public func modelsJSON(on day: Day, tenant: String? = nil, experimentalOptIn: Bool = false,
                           include: (CatalogEntry) -> Bool = { _ in true }) -> JSONValue {
        let data = entries.filter { e in
            include(e) && Lifecycle.isServed(e, state: e.lifecycle(on: day, extendedUntil: e.extendedUntil(tenant: tenant)),
                                             experimentalOptIn: experimentalOptIn)
        }.map { $0.modelJSON(on: day, tenant: tenant) }
        return .object([("object", "list"), ("data", .array(data))])
    }
}
