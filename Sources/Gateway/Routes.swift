import Catalog
import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import OpenAIWire

/// Builds the router: OpenAI endpoints under `/v1`, plus `/health` and `/ready`.
public func buildRouter(_ platform: Platform) -> Hummingbird.Router<GatewayContext> {
    let router = Hummingbird.Router(context: GatewayContext.self)
    router.add(middleware: RequestIDMiddleware(maxBodyBytes: platform.config.maxBodyBytes))
    let pipeline = CompletionPipeline(platform: platform)

    router.get("/health") { _, _ in jsonResponse(["status": "ok"]) }
    router.get("/ready") { _, _ in
        await platform.fleet.anyReady()
            ? jsonResponse(["status": "ready"])
            : errorResponse(.unavailable("No inference engine answers yet. Wait for the engines to start, or check their logs.", retryAfter: 2))
    }

    router.post("/v1/chat/completions") { request, context in try await pipeline.handle(.chat, request, context) }
    router.post("/v1/completions") { request, context in try await pipeline.handle(.completions, request, context) }
    router.post("/v1/embeddings") { request, context in try await pipeline.handle(.embeddings, request, context) }

    // /v1/models lists only what the caller's key may use.
    router.get("/v1/models") { request, context in
        let principal = try await platform.authenticate(request, context)
        let catalog = platform.catalog.current
        let served = platform.fleet.servedModels
        let models = catalog.entries.filter { served.contains($0.id) && principal.grants.allows(model: [$0.id]) }.map(modelJSON)
        return jsonResponse(.object([("object", "list"), ("data", .array(models))]), headers: CompletionPipeline.keyHeaders(principal))
    }
    router.get("/v1/models/{id}") { request, context in
        let principal = try await platform.authenticate(request, context)
        let id = context.parameters.get("id") ?? ""
        guard let entry = platform.catalog.current.resolve(id), platform.fleet.servedModels.contains(entry.id),
              principal.grants.allows(model: [entry.id]) else {
            throw APIError.modelNotFound(id)
        }
        return jsonResponse(modelJSON(entry), headers: CompletionPipeline.keyHeaders(principal))
    }
    addAdminRoutes(to: router, platform: platform)
    return router
}

/// A model as `/v1/models` shows it: OpenAI's fields plus lifecycle, capabilities and prices.
func modelJSON(_ e: CatalogEntry) -> JSONValue {
    .object([
        ("id", .string(e.id)),
        ("object", "model"),
        ("created", .int(e.inProduction.unixTime)),
        ("owned_by", .string(e.developer)),
        ("aliases", .array(e.aliases.map(JSONValue.string))),
        ("capabilities", .array(e.capabilities.map(\.rawValue).sorted().map(JSONValue.string))),
        ("context_length", .int(e.contextLength)),
        ("lifecycle", .object([
            ("phase", .string(e.phase.rawValue)),
            ("in_production", .string(e.inProduction.description)),
            ("end_of_support", .string(e.endOfSupport.description)),
            ("successor", e.successor.map(JSONValue.string) ?? .null),
        ])),
    ])
}
