import Catalog

/// What one request consumed, in the unit its endpoint is billed by: tokens (chat, completions,
/// embeddings), reranked tokens (rerank: every token of the query and the documents, at the
/// model's rerank price), or audio (transcriptions: per started minute, at the audio price).
public enum MeteredWork: Sendable, Equatable {
    case tokens(TokenAccount)
    case rerankedTokens(Int)
    case audio(durationMs: Int)

    /// Started minutes of `durationMs` (at least one for any audio).
    public static func startedMinutes(durationMs: Int) -> Int { max(1, (max(0, durationMs) + 59_999) / 60_000) }

    /// The cost at `prices`, overflow-checked.
    public func cost(at prices: Prices) throws(Cost.Failure) -> Cost {
        switch self {
        case .tokens(let account): return try Cost.of(account, at: prices)
        case .rerankedTokens(let n):
            guard n >= 0 else { throw .negativeTokens }
            return try Cost.multiply(n, prices.rerankNanoPerToken)
        case .audio(let ms):
            guard ms >= 0 else { throw .negativeTokens }
            return try Cost.multiply(Self.startedMinutes(durationMs: ms), prices.audioNanoPerMinute)
        }
    }

    /// The energy at the model's catalog rate (tokens: kWh/M tokens; audio: Wh per minute of
    /// audio, for the exact duration); nil when the catalog gives the model no rate.
    public func energy(model: CatalogEntry) -> Energy? {
        switch self {
        case .tokens(let account): return Energy.of(account, model: model)
        case .rerankedTokens(let n): return model.energyKWhPerMTok.flatMap { Energy.of(tokens: n, kWhPerMTok: $0) }
        case .audio(let ms):
            guard let whPerMinute = model.energyWhPerAudioMinute else { return nil }
            // µWh = Wh/min × 1e6 × ms / 60 000, rounded half-up.
            let v = (whPerMinute * 1e6 * Double(ms) / 60_000).rounded()
            guard v.isFinite, v >= 0, v < 9e18 else { return nil }
            return Energy(microWattHours: Int64(v))
        }
    }

    /// Output tokens (what the tier's output windows count): none for rerank and audio.
    public var outputTokens: Int {
        if case .tokens(let account) = self { return account.outputTokens }
        return 0
    }
}
