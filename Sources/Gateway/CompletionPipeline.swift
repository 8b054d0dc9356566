import Catalog
import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import Observability
import OpenAIWire
import Storage
import Tenancy

/// The path of one inference request (DESIGN §1), in order:
/// authenticate → parse → resolve model → (admit, inspect: later issues) → route & forward → record.
/// Steps before forwarding reject early and cheaply: nothing reaches an engine that will be refused.
struct CompletionPipeline: Sendable {
    let platform: Platform

    func handle(_ endpoint: Endpoint, _ request: Request, _ context: GatewayContext) async throws -> Response {
        let started = ContinuousClock.now
        let createdAt = Int64(Date().timeIntervalSince1970 * 1000)

        // 1. Authenticate.
        let principal = try await platform.authenticate(request)

        // 2. Parse (bounded body, strict JSON, typed checks naming the param).
        var record = RequestRecord(id: context.requestID, createdAt: createdAt, tenantID: principal.tenantID, keyID: principal.keyID,
                                   model: "", endpoint: endpoint.rawValue, status: 0, outcome: "ok", latencyMs: 0)
        do {
            let bytes = try await readBody(request, limit: context.maxBodyBytes)
            let inference = try InferenceRequest(endpoint: endpoint, bytes: bytes)
            record.model = inference.model

            // 3. Resolve the model and check it can do this.
            let entry = try resolve(inference)
            record.model = entry.id

            // 5–6. Route and forward.
            let (engine, upstream) = try await forward(inference, entry: entry)
            record.backend = engine.name
            let backend = BackendTag(engine: engine)

            switch upstream {
            case .complete(var json, let usage):
                json.set("id", .string(context.requestID))
                json.set("model", .string(entry.id))
                json.set("backend", backend.json)
                record.status = 200
                record.promptTokens = usage.promptTokens
                record.completionTokens = usage.completionTokens
                record.latencyMs = Self.ms(since: started)
                platform.requestLog.append(record)
                return jsonResponse(json, headers: [.xBackend: backend.header])
            case .stream(let events):
                let relay = StreamResponder(requestID: context.requestID, model: entry.id, endpoint: endpoint, backend: backend,
                                            includeUsage: inference.includeUsage, started: started, record: record,
                                            log: platform.requestLog)
                return relay.response(events)
            }
        } catch {
            let apiError: APIError
            switch error {
            case let e as APIError:
                apiError = e
                record.outcome = "rejected"
            case let e as EngineError:
                apiError = e.apiError
                record.outcome = e.outcome
                if case .rejected(let b, _) = e, b != "-" { record.backend = b }
            default:
                throw error
            }
            record.status = apiError.status
            record.errorCode = apiError.code
            record.latencyMs = Self.ms(since: started)
            if record.model.isEmpty { record.model = "-" }
            platform.requestLog.append(record)
            throw apiError
        }
    }

    func readBody(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError.payloadTooLarge(limit: limit)
        }
        do {
            var buffer = try await request.body.collect(upTo: limit)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch let e as HTTPError where e.status == .contentTooLarge {
            throw APIError.payloadTooLarge(limit: limit)
        }
    }

    /// Catalog lookup (aliases included) and capability check, before any engine is called.
    func resolve(_ inference: InferenceRequest) throws(APIError) -> CatalogEntry {
        guard let entry = platform.catalog.current.resolve(inference.model),
              platform.fleet.servedModels.contains(entry.id) else {
            throw APIError.modelNotFound(inference.model)
        }
        let needed = CatalogEntry.capability(for: inference.endpoint)
        guard entry.capabilities.contains(needed) else {
            let can = entry.capabilities.map(\.rawValue).sorted().joined(separator: ", ")
            throw APIError.invalidRequest("Model '\(entry.id)' does not support \(inference.endpoint.path) (it supports: \(can)). Choose a model with the '\(needed.rawValue)' capability from GET /v1/models.",
                                          param: "model", code: "model_capability_mismatch")
        }
        return entry
    }

    func forward(_ inference: InferenceRequest, entry: CatalogEntry) async throws(EngineError) -> (Engine, UpstreamResponse) {
        try await platform.fleet.send(model: entry.id, endpoint: inference.endpoint, body: inference.body, stream: inference.stream)
    }

    static func ms(since start: ContinuousClock.Instant) -> Int {
        let c = (ContinuousClock.now - start).components
        return Int(c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000)
    }
}

/// How a response names the engine that served it.
struct BackendTag: Sendable {
    let engineType: String
    let machineName: String

    init(engine: Engine) {
        engineType = engine.kind.rawValue
        machineName = engine.name
    }

    var json: JSONValue { .object([("engine_type", .string(engineType)), ("machine_name", .string(machineName))]) }
    var header: String { "\(engineType)/\(machineName)" }
}
