import Fleet
import Hummingbird
import OpenAIWire

/// `GET /admin/v1/backends` (issue 7): each backend's breaker state, gateway-counted load,
/// engine metrics, served and resident models and recent errors. Operators only: backend
/// URLs and errors say nothing about one tenant.
func addBackendRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    let api = AdminAPI(platform: platform)
    router.get("/admin/v1/backends") { request, context in
        let p = try await api.admin(request, context)
        try api.operatorOnly(p, "see the backends")
        return jsonResponse(platform.fleet.backendsReport())
    }
}
