import Foundation
import Yams

/// Reads the catalog YAML (`deploy/catalog.yaml`) and checks every field, so that a bad file is
/// refused with a message naming the field rather than half-loaded.
public enum CatalogFile {
    public static func load(path: String) throws -> Catalog {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CatalogError(path: path, message: "cannot read the catalog file")
        }
        return try parse(String(decoding: data, as: UTF8.self))
    }

    public static func parse(_ yaml: String) throws -> Catalog {
        let root: Any?
        do {
            // Dates stay text (Day parses them strictly): YAML's timestamp type would turn 2025-13-01 into 2026-01-01.
            root = try Yams.load(yaml: yaml, Resolver.default.removing(.timestamp))
        } catch {
            throw CatalogError(path: "(file)", message: "not valid YAML: \(error)")
        }
        guard let top = root as? [String: Any], let models = top["models"] as? [Any] else {
            throw CatalogError(path: "models", message: "the file must have a top-level 'models:' list")
        }
        var entries: [CatalogEntry] = []
        for (i, raw) in models.enumerated() {
            let p = "models[\(i)]"
            guard let m = raw as? [String: Any] else { throw CatalogError(path: p, message: "each model must be a mapping") }
            let known: Set<String> = ["id", "developer", "phase", "in_production", "end_of_support", "successor", "aliases",
                                      "capabilities", "context_length", "prices", "batch_prices", "energy_kwh_per_mtok", "energy_wh_per_audio_minute", "extended_support"]
            if let unknown = m.keys.first(where: { !known.contains($0) }) {
                throw CatalogError(path: "\(p).\(unknown)", message: "unknown field (known: \(known.sorted().joined(separator: ", ")))")
            }
            guard let id = m["id"] as? String, !id.isEmpty else { throw CatalogError(path: "\(p).id", message: "a non-empty string is required") }
            var entry = CatalogEntry(id: id)
            entry.developer = (m["developer"] as? String) ?? ""
            if let ph = m["phase"] {
                guard let s = ph as? String, let phase = Phase(rawValue: s) else {
                    throw CatalogError(path: "\(p).phase", message: "must be 'production' or 'experimental'")
                }
                entry.phase = phase
            }
            entry.inProduction = try day(m["in_production"], "\(p).in_production", default: entry.inProduction)
            entry.endOfSupport = try day(m["end_of_support"], "\(p).end_of_support", default: entry.endOfSupport)
            if entry.endOfSupport < entry.inProduction {
                throw CatalogError(path: "\(p).end_of_support", message: "\(entry.endOfSupport) is before in_production \(entry.inProduction)")
            }
            if let s = m["successor"] {
                guard let succ = s as? String else { throw CatalogError(path: "\(p).successor", message: "must be a model id") }
                entry.successor = succ
            }
            if let a = m["aliases"] {
                guard let list = a as? [Any], let names = list.map({ $0 as? String }) as? [String] else {
                    throw CatalogError(path: "\(p).aliases", message: "must be a list of names")
                }
                entry.aliases = names
            }
            if let c = m["capabilities"] {
                guard let list = c as? [Any] else { throw CatalogError(path: "\(p).capabilities", message: "must be a list") }
                var caps: Set<Capability> = []
                for (j, item) in list.enumerated() {
                    guard let s = item as? String, let cap = Capability(rawValue: s) else {
                        throw CatalogError(path: "\(p).capabilities[\(j)]", message: "unknown capability (use: \(Capability.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    caps.insert(cap)
                }
                entry.capabilities = caps
            }
            if let c = m["context_length"] {
                guard let n = c as? Int, n > 0 else { throw CatalogError(path: "\(p).context_length", message: "must be a positive integer") }
                entry.contextLength = n
            }
            if let e = m["energy_kwh_per_mtok"] {
                guard let x = (e as? Double) ?? (e as? Int).map(Double.init), x >= 0 else {
                    throw CatalogError(path: "\(p).energy_kwh_per_mtok", message: "must be a non-negative number")
                }
                entry.energyKWhPerMTok = x
            }
            if let e = m["energy_wh_per_audio_minute"] {
                guard let x = (e as? Double) ?? (e as? Int).map(Double.init), x >= 0 else {
                    throw CatalogError(path: "\(p).energy_wh_per_audio_minute", message: "must be a non-negative number")
                }
                entry.energyWhPerAudioMinute = x
            }
            if let pr = m["prices"] {
                guard let prices = pr as? [String: Any] else { throw CatalogError(path: "\(p).prices", message: "must be a mapping") }
                entry.prices = try parsePrices(prices, "\(p).prices")
            }
            // Issue 17: the batch price (default: half the interactive price in force).
            if let pr = m["batch_prices"] {
                guard let prices = pr as? [String: Any] else { throw CatalogError(path: "\(p).batch_prices", message: "must be a mapping") }
                var batch = try parsePrices(prices, "\(p).batch_prices")
                let half = entry.prices.halved
                for (key, _) in Prices.reference.fields where prices[key] == nil { batch[key] = half[key] }
                entry.batchPrices = batch
            }
            if let x = m["extended_support"] {
                guard let ext = x as? [String: Any] else {
                    throw CatalogError(path: "\(p).extended_support", message: "must be a mapping of tenant name → last day of extended support (YYYY-MM-DD)")
                }
                for (tenant, raw) in ext.sorted(by: { $0.key < $1.key }) {
                    let q = "\(p).extended_support.\(tenant)"
                    let until = try day(raw, q, default: entry.removalDate)
                    if until < entry.removalDate {
                        throw CatalogError(path: q, message: "\(until) does not extend support: every tenant is served until \(entry.removalDate.adding(days: -1)) (end_of_support + 3 months, removed on \(entry.removalDate)); give a later last day or remove the line")
                    }
                    entry.extendedSupport[tenant] = until
                }
            }
            entries.append(entry)
        }
        return try Catalog(entries: entries)
    }

    static func day(_ raw: Any?, _ path: String, default d: Day) throws -> Day {
        guard let raw else { return d }
        if let s = raw as? String, let day = Day(s) { return day }
        throw CatalogError(path: path, message: "must be a date written YYYY-MM-DD")
    }

    /// Prices are written in €/M tokens (`input_eur_per_mtok: 0.9`) and kept as integer n€/token.
    static func parsePrices(_ m: [String: Any], _ path: String) throws -> Prices {
        var prices = Prices.reference
        for (key, raw) in m {
            let text = "\(raw)"
            if key == "audio_eur_per_minute" {
                guard let perMinute = nanoEuros(fromEuros: text) else {
                    throw CatalogError(path: "\(path).\(key)", message: "must be a non-negative decimal number of euros per started minute, at most 9 decimals")
                }
                prices.audioNanoPerMinute = perMinute
                continue
            }
            guard let nano = nanoPerToken(fromEurPerMTok: text) else {
                throw CatalogError(path: "\(path).\(key)", message: "must be a non-negative decimal number of €/M tokens, at most 3 decimals (1 €/M tokens = 1000 n€ per token)")
            }
            switch key {
            case "input_eur_per_mtok": prices.inputNanoPerToken = nano
            case "output_eur_per_mtok": prices.outputNanoPerToken = nano
            case "reasoning_eur_per_mtok": prices.reasoningNanoPerToken = nano
            case "rerank_eur_per_mtok": prices.rerankNanoPerToken = nano
            default: throw CatalogError(path: "\(path).\(key)", message: "unknown price (use input_eur_per_mtok, output_eur_per_mtok, reasoning_eur_per_mtok, rerank_eur_per_mtok, audio_eur_per_minute)")
            }
        }
        return prices
    }

    /// "0.01" € → 10 000 000 n€, exactly (decimal text, at most 9 decimals).
    public static func nanoEuros(fromEuros text: String) -> Int? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int(parts[0]), whole >= 0, whole < 1_000_000 else { return nil }
        var fraction = 0
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 9, f.allSatisfy(\.isNumber), let v = Int(f) else { return nil }
            fraction = v * Int(pow10(9 - f.count))
        }
        return whole * 1_000_000_000 + fraction
    }

    static func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { acc, _ in acc * 10 } }

    /// "0.9" €/M tokens → 900 n€/token, exactly (decimal text, no floating point).
    public static func nanoPerToken(fromEurPerMTok text: String) -> Int? {
        // 1 €/M tokens = 1e9 n€ / 1e6 tokens = 1000 n€ per token.
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int(parts[0]), whole >= 0 else { return nil }
        var fraction = 0
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 3, f.allSatisfy(\.isNumber), let v = Int(f) else { return nil }
            fraction = v * [1, 100, 10, 1][f.count]
        }
        return whole * 1000 + fraction
    }
}
