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
        // A draining replica (SIGTERM) is not ready: the balancer sends new work to the others.
        if platform.cluster?.draining == true {
            return errorResponse(.unavailable("This gateway replica is shutting down; use another replica.", retryAfter: 1))
        }
        return await platform.fleet.anyReady()
            ? jsonResponse(["status": "ready"])
            : errorResponse(.unavailable("No inference engine answers yet. Wait for the engines to start, or check their logs.", retryAfter: 2))
    }

    for endpoint in Endpoint.all {
        router.post(RouterPath(stringLiteral: endpoint.path)) { request, context in try await pipeline.handle(endpoint, request, context) }
    }

    // /v1/models lists only what the caller's key may use.
    router.get("/v1/models") { request, context in
        let principal = try await platform.authenticate(request, context)
        let list = platform.lifecycleModelList(principal: principal, today: platform.clock.today,
                                               allowed: { principal.grants.allows(model: [$0.id]) })
        return jsonResponse(list, headers: CompletionPipeline.keyHeaders(principal))
    }
    router.get("/v1/models/{id}") { request, context in
        let principal = try await platform.authenticate(request, context)
        let id = context.parameters.get("id") ?? ""
        let (json, lifecycle) = try platform.lifecycleModelDetail(id: id, principal: principal, today: platform.clock.today,
                                                                  baseURL: platform.baseURL(for: request),
                                                                  allowed: { principal.grants.allows(model: [$0.id]) })
        return jsonResponse(json, headers: CompletionPipeline.keyHeaders(principal) + lifecycle)
    }
    addAdminRoutes(to: router, platform: platform)
    addRequestStoreRoutes(to: router, platform: platform)
    addMetricsRoute(to: router, platform: platform)
    addUsageRoutes(to: router, platform: platform)
    addBackendRoutes(to: router, platform: platform)
    addLifecycleRoutes(to: router, platform: platform)
    addAlertRoutes(to: router, platform: platform)
    addStatusRoutes(to: router, platform: platform)
    addConsoleRoutes(to: router, platform: platform)
    addBatchRoutes(to: router, platform: platform)
    return router
}
