import Catalog
import Fleet
import Foundation
import Observability
import OpenAIWire
import Storage
import Tenancy

/// How one batch line ended in the pipeline.
enum BatchLineOutcome: Sendable {
    /// Answered (status 200) or refused/failed with an OpenAI error: the line is done. `record`
    /// is its ledger row (not yet written: the worker records it with the line's result).
    case done(status: Int, body: JSONValue, record: RequestRecord)
    /// Not sent to any engine and worth retrying later (the day's output budget is used up, the
    /// fleet is busy with interactive traffic): the line goes back to pending.
    case retryLater(afterMs: Int64, reason: String)
}

extension CompletionPipeline {
    /// One batch line through the same steps as an interactive request (``handle``), in the same
    /// order and with the same components: the key's endpoint and model grants, parsing and
    /// limits, model resolution and its lifecycle gate, the capability check, the prompt shield,
    /// admission (batch: the day's output budget only), forwarding at the lowest priority
    /// (``Fleet/batchPriority``), settlement at the batch price. Never streams; no client can hang up.
    func runBatchLine(endpoint: Endpoint, principal: Principal, body: JSONValue, requestID: String) async -> BatchLineOutcome {
        let started = ContinuousClock.now
        let recorder = RequestRecorder(platform: platform, principal: principal, requestID: requestID,
                                       clientIP: nil, userAgent: "llmaas-batch", started: started)
        var record = RequestRecord(id: requestID, createdAt: platform.now(), tenantID: principal.tenantID, keyID: principal.keyID,
                                   model: "", endpoint: endpoint.id, status: 0, outcome: "ok", latencyMs: 0)
        record.batch = 1
        do {
            try Self.checkEndpointGrant(principal, endpoint)
            var body = body
            body.remove("stream")
            let inference = try InferenceRequest(endpoint: endpoint, body: body, limits: platform.config.requestLimits)
            try checkNoSimulatorFields(inference)
            record.model = inference.model
            let entry = try resolve(inference)
            record.model = entry.id
            try Self.checkModelGrant(principal, entry)
            _ = try platform.lifecycleGate(entry, requested: inference.model, principal: principal, today: platform.clock.today,
                                           baseURL: "http://\(platform.config.host):\(platform.config.port)")
            try CapabilityCheck.check(inference, model: entry)
            try await inspect(inference, principal, recorder)
            let admission: Billing.Admission
            do {
                admission = try await platform.billing.admit(principal, expectedOutput: inference.maxTokens, batch: true)
            } catch {
                // The month's budget refuses for good (the line fails); the day window only until it has room.
                if error.code == "rate_limit_exceeded", let retry = error.headers.first(where: { $0.0 == "Retry-After" }).flatMap({ Int64($0.1) }),
                   !error.message.contains("This request alone") {
                    return .retryLater(afterMs: retry * 1000, reason: "output_tokens_per_day")
                }
                throw error
            }
            let settler = Settler(platform: platform, admission: admission, inference: inference, entry: entry)
            record.modelRequested = inference.model == entry.id ? nil : inference.model
            let engine: Engine, upstream: UpstreamResponse
            do {
                (engine, upstream) = try await platform.fleet.send(model: entry.id, endpoint: endpoint, body: inference.body, stream: false,
                                                                   priority: Fleet.batchPriority)
            } catch {
                platform.billing.release(admission)
                if case .saturated = error { return .retryLater(afterMs: 1000, reason: "fleet_busy") }
                throw error
            }
            record.backend = engine.name
            switch upstream {
            case .complete(var json, let usage):
                let (output, reasoning) = endpoint.spec.answerText(json)
                let clientUsage = await settler.settle(&record, engineUsage: usage, output: output, reasoning: reasoning)
                json.set("id", .string(requestID))
                json.set("model", .string(entry.id))
                json.set("usage", endpoint.spec.clientUsage(clientUsage))
                record.status = 200
                record.latencyMs = Self.ms(since: started)
                return .done(status: 200, body: json, record: record)
            case .abandoned(let produced):
                _ = await settler.settle(&record, engineUsage: produced, output: "", reasoning: "")
                record.status = 502
                record.outcome = "upstream_error"
                record.latencyMs = Self.ms(since: started)
                return .done(status: 502, body: APIError.badGateway("The engine stopped before answering.").json, record: record)
            case .stream:
                platform.billing.release(admission)
                throw EngineError.malformed(backend: engine.name, detail: "a stream for a non-streamed batch request")
            }
        } catch {
            let apiError: APIError
            if let known = Self.failure(error, record: &record) {
                apiError = known
            } else {
                apiError = .server()
                record.outcome = "server_error"
            }
            record.status = apiError.status
            record.errorCode = apiError.code
            record.latencyMs = Self.ms(since: started)
            if record.model.isEmpty { record.model = "-" }
            return .done(status: apiError.status, body: apiError.json, record: record)
        }
    }
}
