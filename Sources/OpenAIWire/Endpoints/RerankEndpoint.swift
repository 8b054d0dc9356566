/// `POST /v1/rerank` and `POST /v2/rerank`, in Cohere's shape: a `query` and `documents`
/// (strings, or objects with a `text`) in; `results` (`index`, `relevance_score`, the document
/// when `return_documents`), most relevant first, at most `top_n`, and `meta.billed_units` out.
/// Nothing is generated: every token the model reads (the query and each document) is billed
/// at the model's rerank price. A model with the `rerank` capability is served by an engine's
/// own rerank route; an embedding model is ranked by the gateway from its embeddings (``Rerank``).
///
/// v1 and v2 take the same fields; they differ in `meta.api_version` and in v1 accepting
/// `rank_fields` (only `["text"]` is supported here). Both return `document: {text}` only when
/// `return_documents` is true.
public struct RerankEndpoint: EndpointSpec {
    public let version: Int
    public var id: String { version == 1 ? "rerank" : "rerank.v\(version)" }
    public var path: String { "/v\(version)/rerank" }
    public let objectName = "rerank"
    public let grantName = "rerank"
    public let capability = "rerank"
    public let inputParam = "documents"
    public var generates: Bool { false }
    /// Each document is read with the query on its own: the context check applies per document.
    public var inputsAreSeparate: Bool { true }
    public var billedUnit: BilledUnit { .rerankedTokens }

    public init(version: Int) { self.version = version }

    public func validate(_ request: inout InferenceRequest, limits: RequestLimits) throws(APIError) {
        let body = request.body
        guard let query = body["query"], !query.isNull else { throw APIError.missingParameter("query") }
        guard let q = query.stringValue else { throw APIError.invalidType("query", expected: "a string", got: query) }
        if q.isEmpty { throw APIError.invalidValue("query", "it must not be empty.") }
        guard let documents = body["documents"], !documents.isNull else { throw APIError.missingParameter("documents") }
        guard let list = documents.arrayValue else {
            throw APIError.invalidType("documents", expected: "an array of strings or of objects with a 'text' string", got: documents)
        }
        if list.isEmpty { throw APIError.invalidValue("documents", "it must contain at least one document.") }
        if list.count > limits.maxRerankDocuments {
            throw APIError.invalidRequest("Too many documents: \(list.count); at most \(limits.maxRerankDocuments) are allowed in one rerank request. Split them over several requests.",
                                          param: "documents", code: "too_many_documents")
        }
        for (i, d) in list.enumerated() {
            switch d {
            case .string(let s):
                if s.isEmpty { throw APIError.invalidValue("documents[\(i)]", "a document must not be an empty string.") }
            case .object:
                guard let t = d["text"], !t.isNull else { throw APIError.missingParameter("documents[\(i)].text") }
                guard let s = t.stringValue else { throw APIError.invalidType("documents[\(i)].text", expected: "a string", got: t) }
                if s.isEmpty { throw APIError.invalidValue("documents[\(i)].text", "a document must not be an empty string.") }
            default:
                throw APIError.invalidType("documents[\(i)]", expected: "a string or an object with a 'text' string", got: d)
            }
        }
        if let n = body["top_n"], !n.isNull {
            guard let v = n.intValue else { throw APIError.invalidType("top_n", expected: "an integer", got: n) }
            if v < 1 { throw APIError.invalidValue("top_n", "it must be at least 1, but got \(v).") }
        }
        if let r = body["return_documents"], !r.isNull, r.boolValue == nil {
            throw APIError.invalidType("return_documents", expected: "a boolean", got: r)
        }
        if let fields = body["rank_fields"], !fields.isNull {
            guard version == 1 else {
                throw APIError.invalidRequest("Unknown parameter 'rank_fields': v2 rerank ranks the documents' text only. Remove it.",
                                              param: "rank_fields", code: "unknown_parameter")
            }
            guard let names = fields.arrayValue?.compactMap(\.stringValue), names == ["text"] else {
                throw APIError.invalidValue("rank_fields", "only [\"text\"] is supported: documents are ranked by their 'text'.")
            }
        }
        for unsupported in ["max_chunks_per_doc", "max_tokens_per_doc"] where body[unsupported].map({ !$0.isNull }) == true {
            throw APIError.invalidRequest("'\(unsupported)' is not supported: documents are ranked whole, and one longer than the model's context is refused. Remove it and shorten long documents.",
                                          param: unsupported, code: "unsupported_parameter")
        }
    }

    public func texts(_ body: JSONValue) -> [RoledText] {
        ([body["query"]?.stringValue ?? ""] + Rerank.documents(body)).map { RoledText(role: "user", text: $0) }
    }

    /// Nothing a reranker reads reaches a model's instructions.
    public func inspectedTexts(_ body: JSONValue) -> [RoledText] { [] }
    public func routingKey(_ body: JSONValue) -> String { "" }
    public func answerText(_ answer: JSONValue) -> (content: String, reasoning: String) { ("", "") }
    public func deltaText(_ choice: JSONValue) -> (content: String, reasoning: String) { ("", "") }

    public func clientUsage(_ usage: Usage) -> JSONValue {
        var members: [(String, JSONValue)] = [("prompt_tokens", .int(usage.promptTokens)), ("total_tokens", .int(usage.promptTokens))]
        if usage.estimated { members.append(("estimated", .bool(true))) }
        return .object(members)
    }

    /// Cohere's answer from the ranked `results` (``Rerank/normalized(_:)``): `top_n` of them,
    /// documents when asked, the reranked tokens in `meta`.
    public func clientAnswer(_ answer: JSONValue, request: JSONValue, usage: Usage) -> JSONValue {
        let ranked = Rerank.ranking(answer) ?? []
        let documents = Rerank.documents(request)
        let topN = request["top_n"]?.intValue ?? ranked.count
        let withDocuments = request["return_documents"]?.boolValue ?? false
        let results: [JSONValue] = ranked.prefix(max(0, topN)).map { r in
            var m: [(String, JSONValue)] = [("index", .int(r.index)), ("relevance_score", .double(r.score))]
            if withDocuments, documents.indices.contains(r.index) { m.append(("document", .object([("text", .string(documents[r.index]))]))) }
            return .object(m)
        }
        var billed: [(String, JSONValue)] = [("reranked_tokens", .int(usage.promptTokens))]
        if usage.estimated { billed.append(("estimated", .bool(true))) }
        let meta: JSONValue = .object([
            ("api_version", .object([("version", .string(String(version)))])),
            ("billed_units", .object(billed)),
            ("tokens", .object([("input_tokens", .int(usage.promptTokens)), ("output_tokens", 0)])),
        ])
        return .object([("id", answer["id"] ?? ""), ("results", .array(results)), ("meta", meta), ("usage", clientUsage(usage))])
    }
}

/// The rerank logic that needs no engine: the documents of a request, the bodies sent to an
/// engine, reading an engine's ranking, and ranking by embeddings (cosine similarity).
public enum Rerank {
    /// One ranked document: its index in the request and its relevance score.
    public struct Scored: Sendable, Equatable {
        public var index: Int
        public var score: Double
        public init(index: Int, score: Double) { self.index = index; self.score = score }
    }

    /// The documents' texts, in order (strings, or objects' `text`).
    public static func documents(_ body: JSONValue) -> [String] {
        (body["documents"]?.arrayValue ?? []).map { $0.stringValue ?? $0["text"]?.stringValue ?? "" }
    }

    /// The body for an engine's own rerank route (vLLM, llama.cpp's server): plain strings, every
    /// document scored (the gateway applies `top_n` and adds the documents itself).
    public static func engineBody(_ body: JSONValue) -> JSONValue {
        .object([("model", body["model"] ?? ""), ("query", body["query"] ?? ""),
                 ("documents", .array(documents(body).map { .string($0) }))])
    }

    /// The embeddings body that ranks by cosine: the query first, then each document.
    public static func embeddingsBody(_ body: JSONValue) -> JSONValue {
        let inputs = [body["query"]?.stringValue ?? ""] + documents(body)
        return .object([("model", body["model"] ?? ""), ("input", .array(inputs.map { .string($0) })), ("encoding_format", "float")])
    }

    /// Cosine similarity; 0 when a vector is zero or the sizes differ.
    public static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in a.indices {
            dot += a[i] * b[i]
            na += a[i] * a[i]
            nb += b[i] * b[i]
        }
        guard na > 0, nb > 0 else { return 0 }
        return max(-1, min(1, dot / (na.squareRoot() * nb.squareRoot())))
    }

    /// Most relevant first; equal scores keep the documents' order.
    public static func sorted(_ scored: [Scored]) -> [Scored] {
        scored.sorted { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
    }

    /// Ranks documents by the cosine of their embedding with the query's, mapped to a relevance
    /// score in [0, 1] as (1 + cosine) / 2.
    public static func rank(query: [Double], documents: [[Double]]) -> [Scored] {
        sorted(documents.enumerated().map { Scored(index: $0.offset, score: (1 + cosine(query, $0.element)) / 2) })
    }

    /// The ranking of an embeddings answer (`data[i].embedding`, ordered by `index`) whose first
    /// vector is the query's; nil when it is not one vector per input.
    public static func rank(embeddings answer: JSONValue, documentCount: Int) -> [Scored]? {
        guard let data = answer["data"]?.arrayValue, data.count == documentCount + 1 else { return nil }
        let ordered = data.enumerated().sorted { ($0.element["index"]?.intValue ?? $0.offset) < ($1.element["index"]?.intValue ?? $1.offset) }
        let vectors = ordered.map { ($0.element["embedding"]?.arrayValue ?? []).compactMap(\.doubleValue) }
        guard vectors.allSatisfy({ !$0.isEmpty && $0.count == vectors[0].count }) else { return nil }
        return rank(query: vectors[0], documents: Array(vectors.dropFirst()))
    }

    /// The scores of an engine's rerank answer (`results[].index` with `relevance_score`, or
    /// `score`), most relevant first; nil when it has none or names a document twice or not at all.
    public static func ranking(engine answer: JSONValue, documentCount: Int) -> [Scored]? {
        guard let items = answer["results"]?.arrayValue else { return nil }
        var out: [Scored] = []
        var seen = Set<Int>()
        for item in items {
            guard let i = item["index"]?.intValue, (0..<documentCount).contains(i), seen.insert(i).inserted,
                  let s = (item["relevance_score"] ?? item["score"])?.doubleValue else { return nil }
            out.append(Scored(index: i, score: s))
        }
        return sorted(out)
    }

    /// The gateway's own answer of a ranking: `{"results": [{index, relevance_score}]}`.
    public static func normalized(_ ranked: [Scored]) -> JSONValue {
        .object([("object", "rerank"), ("results", .array(ranked.map { .object([("index", .int($0.index)), ("relevance_score", .double($0.score))]) }))])
    }

    /// Reads ``normalized(_:)`` back.
    public static func ranking(_ normalized: JSONValue) -> [Scored]? {
        normalized["results"]?.arrayValue?.compactMap { r in
            guard let i = r["index"]?.intValue, let s = r["relevance_score"]?.doubleValue else { return nil }
            return Scored(index: i, score: s)
        }
    }
}
