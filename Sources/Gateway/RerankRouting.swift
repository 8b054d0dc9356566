import Catalog
import Fleet
import OpenAIWire

/// How a rerank request is served (issue 17): a model with the `rerank` capability (a
/// cross-encoder) by its engine's own rerank route; an embedding model by the gateway, which
/// asks the engine for the embeddings of the query and of every document (through the fleet,
/// like any embeddings request) and ranks the documents by cosine similarity. Either way the
/// answer is the gateway's normalized ranking (``Rerank/normalized(_:)``), turned into Cohere's
/// shape by the endpoint, and the usage is the tokens the model read.
struct RerankRouting: Sendable {
    let fleet: Fleet

    func rank(_ inference: InferenceRequest, entry: CatalogEntry, priority: Int) async throws(EngineError) -> (Engine, UpstreamResponse) {
        let count = Rerank.documents(inference.body).count
        let byEngine = entry.capabilities.contains(.rerank)
        let (engine, upstream) = byEngine
            ? try await fleet.send(model: entry.id, endpoint: .rerank, body: Rerank.engineBody(inference.body), stream: false, priority: priority)
            : try await fleet.send(model: entry.id, endpoint: .embeddings, body: Rerank.embeddingsBody(inference.body), stream: false, priority: priority)
        guard case .complete(let json, let usage) = upstream else { return (engine, upstream) }
        let ranked = byEngine ? Rerank.ranking(engine: json, documentCount: count) : Rerank.rank(embeddings: json, documentCount: count)
        guard let ranked, ranked.count == count || byEngine else {
            throw .malformed(backend: engine.name, detail: byEngine ? "its rerank answer has no valid 'results'"
                                                                     : "its embeddings answer does not hold one vector per input")
        }
        guard !ranked.isEmpty else { throw .malformed(backend: engine.name, detail: "its rerank answer has no results") }
        return (engine, .complete(Rerank.normalized(ranked), usage))
    }
}
