import OpenAIWire

/// What a model can do; requests needing a capability the model lacks are refused before any
/// engine is called.
public enum Capability: String, Sendable, CaseIterable, Codable {
    case chat, completions, embeddings, vision, tools, reasoning
    /// Scores documents against a query itself (a cross-encoder served on an engine's rerank route).
    case rerank
    /// Turns speech into text (`/v1/audio/transcriptions`).
    case transcription
}

public enum Phase: String, Sendable, Codable {
    case experimental, production
}

/// A calendar date (UTC), as the catalog writes it: `2026-12-31`.
public struct Day: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let year: Int, month: Int, day: Int

    public init(year: Int, month: Int, day: Int) { self.year = year; self.month = month; self.day = day }

    public init?(_ text: String) {
        let parts = text.split(separator: "-")
        guard parts.count == 3, parts[0].count == 4, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
              (1...12).contains(m), (1...Day.daysIn(month: m, year: y)).contains(d) else { return nil }
        self.init(year: y, month: m, day: d)
    }

    public var description: String {
        // Not String(format:) (Foundation, locale, CFString): this runs on every request (the
        // budget's month key, the lifecycle's today).
        Self.padded(year, 4) + "-" + Self.padded(month, 2) + "-" + Self.padded(day, 2)
    }

    /// `n` in decimal, zero-padded to `width` characters (the sign counts, as `%0Nd`).
    public static func padded(_ n: Int, _ width: Int) -> String {
        if n < 0 { return "-" + padded(-n, width - 1) }
        let digits = String(n)
        return digits.utf8.count >= width ? digits : String(repeating: "0", count: width - digits.utf8.count) + digits
    }

    public static func < (a: Day, b: Day) -> Bool { (a.year, a.month, a.day) < (b.year, b.month, b.day) }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (proleptic Gregorian), for arithmetic without Foundation calendars.
    public var daysSinceEpoch: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// Seconds since the Unix epoch at 00:00 UTC of this day.
    public var unixTime: Int { daysSinceEpoch * 86400 }
}

/// Prices in integer nano-euros per token (1 €/M tokens = 1 n€ per token). Never a Double.
public struct Prices: Sendable, Equatable {
    public var inputNanoPerToken: Int
    public var outputNanoPerToken: Int
    public var reasoningNanoPerToken: Int
    /// Per reranked token (query and documents read by a rerank request); default 4 €/M.
    public var rerankNanoPerToken: Int
    /// Per started minute of transcribed audio; default 0.01 €/min.
    public var audioNanoPerMinute: Int

    /// SPEC S3: input 0.9 €/M, output 4 €/M, reasoning output 21 €/M; issue 17: rerank 4 €/M
    /// reranked tokens, audio 0.01 € per started minute.
    public static let reference = Prices(inputNanoPerToken: 900, outputNanoPerToken: 4000, reasoningNanoPerToken: 21000)
    public static let defaultRerankNanoPerToken = 4000
    public static let defaultAudioNanoPerMinute = 10_000_000

    /// Half of each token price, rounded down: the default batch price (issue 17; batch runs chat,
    /// completions and embeddings only, so the rerank and audio prices stay).
    public var halved: Prices {
        Prices(inputNanoPerToken: inputNanoPerToken / 2, outputNanoPerToken: outputNanoPerToken / 2, reasoningNanoPerToken: reasoningNanoPerToken / 2,
               rerankNanoPerToken: rerankNanoPerToken, audioNanoPerMinute: audioNanoPerMinute)
    }

    /// The catalog's names of the three prices.
    public var fields: [(String, Int)] {
        [("input_eur_per_mtok", inputNanoPerToken), ("output_eur_per_mtok", outputNanoPerToken), ("reasoning_eur_per_mtok", reasoningNanoPerToken)]
    }

    /// A price by its catalog name.
    public subscript(field: String) -> Int {
        get { fields.first { $0.0 == field }?.1 ?? 0 }
        set {
            switch field {
            case "input_eur_per_mtok": inputNanoPerToken = newValue
            case "output_eur_per_mtok": outputNanoPerToken = newValue
            case "reasoning_eur_per_mtok": reasoningNanoPerToken = newValue
            default: break
            }
        }
    }

    public init(inputNanoPerToken: Int, outputNanoPerToken: Int, reasoningNanoPerToken: Int,
                rerankNanoPerToken: Int = Prices.defaultRerankNanoPerToken, audioNanoPerMinute: Int = Prices.defaultAudioNanoPerMinute) {
        self.inputNanoPerToken = inputNanoPerToken
        self.outputNanoPerToken = outputNanoPerToken
        self.reasoningNanoPerToken = reasoningNanoPerToken
        self.rerankNanoPerToken = rerankNanoPerToken
        self.audioNanoPerMinute = audioNanoPerMinute
    }
}

/// One model of the catalog.
public struct CatalogEntry: Sendable, Equatable {
    public var id: String
    public var developer: String
    public var phase: Phase
    public var inProduction: Day
    public var endOfSupport: Day
    public var successor: String?
    public var aliases: [String]
    public var capabilities: Set<Capability>
    public var contextLength: Int
    public var prices: Prices
    public var energyKWhPerMTok: Double?
    /// The batch price (catalog `batch_prices`); nil: half the interactive price in force.
    public var batchPrices: Prices?
    /// Energy per minute of transcribed audio, in Wh (catalog `energy_wh_per_audio_minute`).
    public var energyWhPerAudioMinute: Double?
    /// Operator-granted extended support (SPEC S7): tenant name → the last day before removal
    /// for that tenant only. Other tenants keep the standard dates.
    public var extendedSupport: [String: Day]

    public init(id: String, developer: String = "", phase: Phase = .production,
                inProduction: Day = Day(year: 2025, month: 1, day: 1), endOfSupport: Day = Day(year: 2099, month: 12, day: 31),
                successor: String? = nil, aliases: [String] = [], capabilities: Set<Capability> = [.chat, .completions],
                contextLength: Int = 8192, prices: Prices = .reference, energyKWhPerMTok: Double? = nil,
                extendedSupport: [String: Day] = [:]) {
        self.id = id
        self.developer = developer
        self.phase = phase
        self.inProduction = inProduction
        self.endOfSupport = endOfSupport
        self.successor = successor
        self.aliases = aliases
        self.capabilities = capabilities
        self.contextLength = contextLength
        self.prices = prices
        self.energyKWhPerMTok = energyKWhPerMTok
        self.extendedSupport = extendedSupport
    }

}
