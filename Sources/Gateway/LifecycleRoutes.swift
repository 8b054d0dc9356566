import Catalog
import Clocks
import Foundation
import HTTPTypes
import Hummingbird
import OpenAIWire
import Tenancy

extension PlatformClock {
    /// Today (UTC) for lifecycle decisions; the Catalog module never reads a clock itself.
    public var today: Day { Day(unixTime: Int(now() / 1000)) }
}

/// Lifecycle header pairs (`Sunset`, `Deprecation`, `Link`) as HTTP fields.
public func lifecycleHeaders(_ pairs: [(String, String)]) -> HTTPFields {
    var fields = HTTPFields()
    for (name, value) in pairs {
        if let field = HTTPField.Name(name) { fields.append(HTTPField(name: field, value: value)) }
    }
    return fields
}

/// The origin the client reached (`http://127.0.0.1:8080`), for `Link` targets: the request's
/// authority (Host) and `X-Forwarded-Proto` when a TLS proxy sits in front; else `fallback`.
public func publicBaseURL(_ request: Request, fallback: String) -> String {
    guard let authority = request.head.authority, !authority.isEmpty else { return fallback }
    let proto = request.headers[HTTPField.Name("x-forwarded-proto")!].flatMap { $0 == "https" || $0 == "http" ? $0 : nil }
    return "\(proto ?? request.head.scheme ?? "http")://\(authority)"
}

extension Platform {
    /// The origin for `Link` targets: as the client reached us, else the configured listen address.
    func baseURL(for request: Request) -> String {
        publicBaseURL(request, fallback: "http://\(config.host):\(config.port)")
    }

    /// Pipeline step 3, after the model is resolved (and the key's grant checked): the lifecycle
    /// gate. 404 before DMP (unless experimental and the tenant opted in), 410 `model_retired`
    /// once retired (with a successor `Link`); otherwise the `Sunset` / `Deprecation` / `Link`
    /// fields to put on the response, streamed or not (empty in plain production).
    /// `requested` is the name the caller used, so that an alias shows in the message.
    func lifecycleGate(_ entry: CatalogEntry, requested: String, principal: Principal, today: Day,
                       baseURL: String) throws(APIError) -> HTTPFields {
        lifecycleHeaders(try Lifecycle.admit(entry, requested: requested, on: today, tenant: principal.tenantName,
                                             experimentalOptIn: principal.experimentalOptIn, baseURL: baseURL))
    }

    /// The body of `GET /v1/models`: the models an engine serves, `allowed` for the key, and usable
    /// by the tenant today, with lifecycle, capabilities, pricing and energy.
    func lifecycleModelList(principal: Principal, today: Day, allowed: (CatalogEntry) -> Bool = { _ in true }) -> JSONValue {
        let served = fleet.servedModels
        let catalog = catalog.current
        var list = catalog.modelsJSON(on: today, tenant: principal.tenantName, experimentalOptIn: principal.experimentalOptIn,
                                      include: { served.contains($0.id) && allowed($0) })
        let data = (list["data"]?.arrayValue ?? []).map { item -> JSONValue in
            guard let id = item["id"]?.stringValue, let entry = catalog.resolve(id) else { return item }
            return item.setting("permission", Self.permission(entry, principal))
        }
        list.set("data", .array(data))
        return list
    }

    /// What the calling key may do with a model, in the shape vLLM and the reference return
    /// (`model_permission`), plus `endpoints`: the endpoints both the model serves (its catalog
    /// capabilities) and the key is granted.
    static func permission(_ entry: CatalogEntry, _ principal: Principal) -> JSONValue {
        let endpoints = Endpoint.all.filter { e in
            // An embedding model reranks too (the gateway ranks by cosine, issue 17).
            let serves = entry.capabilities.contains { $0.rawValue == e.spec.capability }
                || (e.spec.capability == Capability.rerank.rawValue && entry.capabilities.contains(.embeddings))
            return serves && principal.grants.allows(endpoint: e.grantName)
        }
        var seen = Set<String>()
        let grantNames = endpoints.map(\.grantName).filter { seen.insert($0).inserted }  // rerank v1 and v2: one grant
        let samples = endpoints.contains { $0.spec.generates }
        return .array([.object([
            ("id", .string("modelperm-\(principal.keyID)-\(entry.id)")),
            ("object", "model_permission"),
            ("created", .int(entry.inProduction.unixTime)),
            ("allow_create_engine", false),
            ("allow_sampling", .bool(samples)),
            ("allow_logprobs", .bool(samples)),
            ("allow_search_indices", false),
            ("allow_view", true),
            ("allow_fine_tuning", false),
            ("organization", .string(principal.tenantName)),
            ("group", .null),
            ("is_blocking", false),
            ("endpoints", .array(grantNames.map { .string($0) })),
        ])])
    }

    /// `GET /v1/models/{id}` (aliases resolve): 404 when unknown, not served, not `allowed` or not
    /// yet available; 410 once retired; otherwise the model and the same lifecycle headers as an
    /// inference response.
    func lifecycleModelDetail(id: String, principal: Principal, today: Day, baseURL: String,
                              allowed: (CatalogEntry) -> Bool = { _ in true }) throws(APIError) -> (json: JSONValue, headers: HTTPFields) {
        guard let entry = catalog.current.resolve(id), fleet.servedModels.contains(entry.id), allowed(entry) else {
            throw APIError.modelNotFound(id)
        }
        let pairs = try Lifecycle.admit(entry, requested: id, on: today, tenant: principal.tenantName,
                                        experimentalOptIn: principal.experimentalOptIn, baseURL: baseURL)
        let json = entry.modelJSON(on: today, tenant: principal.tenantName).setting("permission", Self.permission(entry, principal))
        return (json, lifecycleHeaders(pairs))
    }
}

/// `GET /v1/lifecycle`: every catalog model's dates, status and days left, public (no key), like
/// a status page. `?format=text` gives the same table as `llmaas models --lifecycle`.
public func addLifecycleRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform) {
    router.get("/v1/lifecycle") { request, _ in
        let report = LifecycleReport(catalog: platform.catalog.current, on: platform.clock.today)
        if request.uri.queryParameters.get("format") == "text" {
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: report.table)))
        }
        return jsonResponse(report.json)
    }
}
