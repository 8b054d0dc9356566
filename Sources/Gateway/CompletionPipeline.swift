import Audio
import Catalog
import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import Observability
import OpenAIWire
import Shield
import Storage
import Tenancy

/// The path of one inference request (DESIGN §1), in order:
/// authenticate → parse → resolve model → (admit, inspect: later issues) → route & forward → record.
/// Steps before forwarding reject early and cheaply: nothing reaches an engine that will be refused.
struct CompletionPipeline: Sendable {
    let platform: Platform

    func handle(_ endpoint: Endpoint, _ request: Request, _ context: GatewayContext) async throws -> Response {
        // The pipeline runs in the request's own task (``HTTPConnectionHandler``, on the
        // connection's event loop): its deep async frames (auth, parse, shield, admission, the
        // engine call) are freed with that task, which ends when a stream is handed to a task of
        // its own. (A task's allocator keeps its high-water mark until the task ends: in a task
        // that also relayed the stream they stayed allocated for the stream's whole life; issue 16.)
        try await run(endpoint, request, context)
    }

    func run(_ endpoint: Endpoint, _ request: Request, _ context: GatewayContext) async throws -> Response {
        let started = ContinuousClock.now
        let createdAt = platform.now()  // the platform's clock (injectable), like every other time the request records

        // 1. Authenticate (key, client address) and check the key may use this endpoint.
        let principal = try await platform.authenticate(request, context)
        let keyHeaders = Self.keyHeaders(principal)
        let recorder = RequestRecorder(platform: platform, principal: principal, requestID: context.requestID,
                                       clientIP: context.clientIP, userAgent: request.headers.value(of: .userAgent), started: started,
                                       loop: LoopExecutor.of(context.channel.eventLoop))

        // 2. Parse (bounded body, strict JSON, typed checks naming the param).
        var record = RequestRecord(id: context.requestID, createdAt: createdAt, tenantID: principal.tenantID, keyID: principal.keyID,
                                   model: "", endpoint: endpoint.id, status: 0, outcome: "ok", latencyMs: 0)
        // When the fleet was called: the engine's share of the time starts here (the metrics'
        // gateway overhead is the rest).
        var engineStart: ContinuousClock.Instant?
        do {
            try Self.checkEndpointGrant(principal, endpoint)
            let bytes = try await readBody(request, limit: endpoint.spec.maxBodyBytes ?? context.maxBodyBytes)
            // A multipart endpoint (audio): the form's fields are the body, the file travels beside it.
            var file: Multipart.Part?
            let inference: InferenceRequest
            if endpoint.spec.bodyFormat == .multipart {
                let form = try TranscriptionEndpoint.body(of: Multipart.parse(bytes, contentType: request.headers[.contentType]))
                file = form.file
                inference = try InferenceRequest(endpoint: endpoint, body: form.body, limits: platform.config.requestLimits)
            } else {
                inference = try InferenceRequest(endpoint: endpoint, bytes: bytes, limits: platform.config.requestLimits)
            }
            try checkNoSimulatorFields(inference)
            record.model = inference.model

            // 3. Resolve the model, check the key may use it and the model can do this.
            let entry = try resolve(inference)
            record.model = entry.id
            try Self.checkModelGrant(principal, entry)
            let lifecycle = try platform.lifecycleGate(entry, requested: inference.model, principal: principal,
                                                       today: platform.clock.today,
                                                       baseURL: platform.baseURL(for: request))
            try CapabilityCheck.check(inference, model: entry)
            // Audio is billed by its duration, read from the file's header before any engine works on it.
            let audio = try file.map { try Self.audioInfo($0) }

            // 4. Inspect the prompt (structure, patterns, behavior): block before any engine sees it.
            try await inspect(inference, principal, recorder)

            // Admit: the month's budget, the tier's rate windows (reserving max_tokens of output).
            let admission = try await platform.billing.admit(principal, expectedOutput: inference.maxTokens,
                                                             worstCase: platform.billing.worstCaseCost(inference, model: entry))
            let settler = Settler(platform: platform, admission: admission, inference: inference, entry: entry)
            record.modelRequested = inference.model == entry.id ? nil : inference.model

            // 5–6. Route and forward.
            let engine: Engine, upstream: UpstreamResponse
            // A stream's dispatch: its first token is waited for after this task ended (``PendingStream``).
            var dispatch: FleetDispatch?
            engineStart = ContinuousClock.now
            do {
                if inference.stream {
                    (engine, upstream, dispatch) = try await forwardStream(inference, entry: entry, tier: principal.tier, file: file)
                } else {
                    // A client that goes away stops the engine's work for it (a stream notices
                    // through its writes; a non-streamed answer through the connection guard).
                    (engine, upstream) = try await Self.untilHangUp(platform.hangUps.hook(for: context.channel), task: context.pendingSlot?.task) {
                        try await forward(inference, entry: entry, tier: principal.tier, file: file)
                    }
                }
            } catch {
                platform.billing.release(admission)
                throw error
            }
            let engineTime = engineStart.map { ContinuousClock.now - $0 }
            record.backend = engine.name
            let backend = BackendTag(engine: engine)
            // Room for every field the answer gets on its way out (the rate limits, the backend, the
            // content type, the request id): appended one by one, the fields' array was reallocated
            // four times per answer (issue 16).
            var headers = HTTPFields()
            headers.reserveCapacity(keyHeaders.count + lifecycle.count + 12)
            headers.append(contentsOf: keyHeaders)
            headers.append(contentsOf: lifecycle)
            // Appended: none of these names is among the key's or the lifecycle's fields.
            for (name, value) in platform.billing.rateHeaders(principal) { if let n = HTTPField.Name.named(name) { headers.append(HTTPField(name: n, value: value)) } }

            switch upstream {
            case .complete(var json, let usage):
                // 7. Settle: real counts → cost and energy → the ledger row, committed before the answer goes out.
                let clientUsage: Usage
                if endpoint.spec.billedUnit == .tokens {
                    let (output, reasoning) = endpoint.spec.answerText(json)
                    clientUsage = await settler.settle(&record, engineUsage: usage, output: output, reasoning: reasoning)
                } else {
                    clientUsage = await settler.settle(&record, unit: endpoint.spec.billedUnit, engineUsage: usage, audioMs: audio?.durationMs)
                }
                json = endpoint.spec.clientAnswer(json, request: inference.body, usage: clientUsage)
                if case .object = json {
                    if let audio {
                        json.set("usage", TranscriptionEndpoint.usage(durationMs: audio.durationMs))
                    } else {
                        json.set("id", .string(context.requestID))
                        json.set("model", .string(entry.id))
                        json.set("backend", backend.json)
                    }
                }
                record.status = 200
                record.latencyMs = Self.ms(since: started)
                await recorder.finish(record, durable: platform.config.durableLedger, engine: engineTime)
                headers.append(HTTPField(name: .xBackend, value: backend.header))
                if case .string(let text) = json {
                    // A transcription in a text format (text, srt, vtt): the engine's text as it is.
                    headers[.contentType] = TranscriptionEndpoint.format(inference.body) == "vtt" ? "text/vtt; charset=utf-8" : "text/plain; charset=utf-8"
                    return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(text.utf8))))
                }
                let answer = json.serialized()
                // Request store: only for tenants that opted in; queued, encrypted off the request path.
                if principal.storeBodies {
                    platform.requestStore.capture(requestID: context.requestID, tenantID: principal.tenantID, createdAt: createdAt,
                                                  prompt: bytes, response: answer, responseFormat: "json")
                }
                return jsonResponse(serialized: answer, headers: headers)
            case .abandoned(let produced):
                // The client went away; the engine was stopped. Bill what it had produced, marked.
                _ = await settler.settle(&record, engineUsage: produced, output: "", reasoning: "")  // estimated
                record.status = 499
                record.outcome = "client_closed"
                record.errorCode = "client_closed_request"
                record.latencyMs = Self.ms(since: started)
                await recorder.finish(record, durable: false, engine: engineTime)
                return errorResponse(.clientClosed)
            case .stream(let events):
                // Request store (opted-in tenants): the assembled answer text, queued when the stream ends.
                var storeAnswer: (@Sendable (String) -> Void)?
                if principal.storeBodies {
                    let store = platform.requestStore, requestID = context.requestID, tenantID = principal.tenantID
                    storeAnswer = { text in
                        store.capture(requestID: requestID, tenantID: tenantID, createdAt: createdAt, prompt: bytes,
                                      response: Array(text.utf8), responseFormat: "text")
                    }
                }
                let relay = StreamResponder(requestID: context.requestID, model: entry.id, endpoint: endpoint, backend: backend,
                                            includeUsage: inference.includeUsage, started: started,
                                            engineStart: engineStart ?? started,
                                            recorder: recorder, settler: settler, durable: platform.config.durableLedger,
                                            extraHeaders: headers, storeAnswer: storeAnswer)
                guard let dispatch else { return relay.response(events, record: record) }
                var unassigned = record
                unassigned.backend = nil
                let pending = PendingStream(engine: engine, events: events, dispatch: dispatch, relay: relay, record: unassigned,
                                            admission: admission, keyHeaders: keyHeaders,
                                            executor: LoopExecutor.of(context.channel.eventLoop))
                // Under ``HTTPConnectionHandler`` the wait for the first token runs after this task ended.
                guard let slot = context.pendingSlot else { return await pending.resolve() }
                slot.stream = pending
                return Response(status: .ok)
            }
        } catch {
            let apiError: APIError
            if let known = Self.failure(error, record: &record) {
                apiError = known
            } else if error is CancellationError {
                // The client went away before an engine answered (queued, or connecting).
                apiError = .clientClosed
                record.outcome = "client_closed"
            } else {
                throw error
            }
            throw await recorder.failed(apiError, record: record, keyHeaders: keyHeaders, engine: engineStart.map { ContinuousClock.now - $0 })
        }
    }

    /// The new user and tool content of the request (what follows the last assistant turn; earlier
    /// turns were inspected when they were new), with the developer's system prompt marked as such.
    static func inspectedTexts(_ inference: InferenceRequest) -> [InspectedText] {
        inference.endpoint.spec.inspectedTexts(inference.body).map {
            InspectedText(role: InspectedRole(rawValue: $0.role) ?? .user, text: $0.text)
        }
    }

    func inspect(_ inference: InferenceRequest, _ principal: Principal, _ recorder: RequestRecorder) async throws(APIError) {
        let texts = Self.inspectedTexts(inference)
        guard !texts.isEmpty else { return }
        let mode = ShieldMode(rawValue: principal.shieldMode) ?? .enforce
        var input = ShieldInput(texts: texts, keyID: principal.keyID, now: Date(timeIntervalSince1970: Double(platform.now()) / 1000))
        // Replicas: the repetition rule counts this key's identical prompts on every replica.
        if let cluster = platform.cluster, let digest = platform.shield.repetitionDigest(input, mode: mode) {
            input.sharedRepeats = await cluster.repetitions(keyID: principal.keyID, digest: digest,
                                                            maxAgeMs: Int64(platform.shield.config.windowMaxAge * 1000))
        }
        let verdict = platform.shield.inspect(input, mode: mode)
        guard verdict.wouldBlock || !verdict.findings.isEmpty else { return }
        platform.metrics.shieldVerdict(blocked: verdict.blocked, rules: verdict.ruleIDs)
        if verdict.wouldBlock {
            recorder.audit(action: "prompt.\(verdict.blocked ? "blocked" : "flagged")", outcome: "layers=\(verdict.layers.map(\.rawValue).joined(separator: ",")) rules=\(verdict.ruleIDs.joined(separator: ","))",
                           model: inference.model, status: verdict.blocked ? 400 : nil)
        }
        if verdict.blocked {
            throw APIError.invalidRequest("Your prompt was blocked by prompt security (layers: \(verdict.layers.map(\.rawValue).joined(separator: ", ")); rules: \(verdict.ruleIDs.joined(separator: ", "))). Rephrase the request; if you believe this is a mistake, contact your administrator with the request id.",
                                          code: "prompt_security_violation")
        }
    }

    /// Catalog lookup (aliases included) and capability check, before any engine is called.
    /// The client error of a refusal or an engine failure, with the ledger row's outcome (and the
    /// failing backend) set; nil for any other error. Shared by interactive requests and batch lines.
    static func failure(_ error: any Error, record: inout RequestRecord) -> APIError? {
        switch error {
        case let e as APIError:
            record.outcome = "rejected"
            return e
        case let e as EngineError:
            record.outcome = e.outcome
            if case .rejected(let b, _) = e, b != "-" { record.backend = b }
            return e.apiError
        default:
            return nil
        }
    }

    /// The key may use this endpoint (403 naming the grant to ask for).
    static func checkEndpointGrant(_ principal: Principal, _ endpoint: Endpoint) throws(APIError) {
        guard principal.grants.allows(endpoint: endpoint.grantName) else {
            throw APIError.permissionDenied("API key \(principal.keyID) may not use \(endpoint.path). Ask your administrator to grant the '\(endpoint.grantName)' endpoint.")
        }
    }

    /// `sim_` fields steer the engine simulator: refused from clients unless the operator allows them.
    func checkNoSimulatorFields(_ inference: InferenceRequest) throws(APIError) {
        if !platform.config.allowSimulatorFields, let field = inference.body.objectValue?.first(where: { $0.0.hasPrefix("sim_") })?.0 {
            throw APIError.invalidRequest("Unknown parameter '\(field.prefix(64))': fields starting with 'sim_' are reserved for the engine simulator and are not accepted from clients.",
                                          param: String(field.prefix(64)), code: "unknown_parameter")
        }
    }

    /// The key may use this model (403 `model_not_allowed`).
    static func checkModelGrant(_ principal: Principal, _ entry: CatalogEntry) throws(APIError) {
        guard principal.grants.allows(model: [entry.id]) else {
            throw APIError.permissionDenied("API key \(principal.keyID) is not allowed to use model '\(entry.id)'. Ask your administrator to grant it, or use a model listed by GET /v1/models.",
                                            code: "model_not_allowed")
        }
    }

    func resolve(_ inference: InferenceRequest) throws(APIError) -> CatalogEntry {
        guard let entry = platform.catalog.current.resolve(inference.model),
              platform.fleet.serves(entry.id) else {
            throw APIError.modelNotFound(inference.model)
        }
        return entry
    }

    /// Route and forward; when the fleet is full, the tier's configured priority orders the queue.
    func forward(_ inference: InferenceRequest, entry: CatalogEntry, tier: String, file: Multipart.Part? = nil) async throws(EngineError) -> (Engine, UpstreamResponse) {
        let priority = platform.config.tiers[tier]?.priority ?? 0
        if inference.endpoint.spec.billedUnit == .rerankedTokens {
            return try await RerankRouting(fleet: platform.fleet).rank(inference, entry: entry, priority: priority)
        }
        return try await platform.fleet.send(model: entry.id, endpoint: inference.endpoint, body: inference.body, stream: inference.stream,
                                             priority: priority, file: file)
    }

    /// A stream's route and forward: returned once the engine answered its head, with the dispatch
    /// to report its first event to (and to fail over through); reranking goes through ``forward``.
    func forwardStream(_ inference: InferenceRequest, entry: CatalogEntry, tier: String,
                       file: Multipart.Part?) async throws(EngineError) -> (Engine, UpstreamResponse, FleetDispatch?) {
        if inference.endpoint.spec.billedUnit == .rerankedTokens {
            let (engine, upstream) = try await forward(inference, entry: entry, tier: tier, file: file)
            return (engine, upstream, nil)
        }
        let priority = platform.config.tiers[tier]?.priority ?? 0
        return try await platform.fleet.dispatch(model: entry.id, endpoint: inference.endpoint, body: inference.body, stream: true,
                                                 priority: priority, file: file)
    }

    /// The duration of an uploaded audio file (400 naming the problem when its header cannot be read).
    static func audioInfo(_ file: Multipart.Part) throws(APIError) -> AudioDuration.Info {
        do {
            return try AudioDuration.read(file.data)
        } catch {
            throw APIError.invalidRequest("Could not read the duration of the audio file '\(String((file.filename ?? "file").prefix(100)))': \(error.description). Send WAV, MP3, FLAC, OGG (Vorbis or Opus) or M4A audio.",
                                          param: "file", code: "invalid_audio")
        }
    }

    /// Runs `body`, which the client's hang-up cancels when the connection has a hang-up hook and
    /// the request its own task (``HangUpHook/cancelling(_:_:)``; both come with a connection of
    /// the gateway's listener).
    static func untilHangUp<T>(_ hook: HangUpHook?, task: Task<Void, Never>?, _ body: () async throws -> T) async throws -> T {
        guard let hook, let task else { return try await body() }
        return try await hook.cancelling(task, body)
    }

    /// While a key is in its rotation grace period, every response says when it stops and names its successor.
    static func keyHeaders(_ p: Principal) -> HTTPFields {
        var fields = HTTPFields()
        if let expires = p.expiresAt {
            fields[.xKeyExpires] = iso8601(ms: expires)
            if let successor = p.successorID { fields[.xKeySuccessor] = successor }
        }
        return fields
    }

    /// `2026-12-05T19:35:00Z` (what `ISO8601DateFormatter` writes by default: UTC, whole
    /// seconds) for Unix ms, without building a Foundation formatter on every response.
    static func iso8601(ms: Int64) -> String {
        let seconds = Int(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000))
        let day = Day(unixTime: seconds)
        let s = ((seconds % 86_400) + 86_400) % 86_400
        return day.description + "T" + Day.padded(s / 3600, 2) + ":" + Day.padded(s / 60 % 60, 2) + ":" + Day.padded(s % 60, 2) + "Z"
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

/// Records how a request ended: its request row and its audit entry (never prompt text).
struct RequestRecorder: Sendable {
    let platform: Platform
    let principal: Principal
    let requestID: String
    let clientIP: String?
    let userAgent: String?
    /// When the request arrived (its metrics are timed from here to the end of `finish`).
    let started: ContinuousClock.Instant
    /// The connection's event loop, where a group commit this request starts runs (nil: anywhere):
    /// the writer thread's completion then resumes the commit, and this request after it, on the
    /// loop that writes the answer — one cross-thread wake-up fewer per commit (issue 16).
    var loop: (any TaskExecutor)? = nil

    func audit(action: String, outcome: String, model: String?, status: Int?) {
        platform.audit.record(AuditEvent(time: platform.now(), actor: "key:\(principal.keyID)", tenantID: principal.tenantID, action: action,
                                         outcome: outcome, requestID: requestID, clientIP: clientIP, userAgent: userAgent, model: model, status: status))
    }

    /// A request that ends in `apiError` before any answer: its ledger row (not durable) with the
    /// failure, and the error to answer, with the key's and the rate-limit headers.
    func failed(_ apiError: APIError, record: RequestRecord, keyHeaders: HTTPFields, engine: Duration?) async -> APIError {
        var record = record
        record.status = apiError.status
        record.errorCode = apiError.code
        record.latencyMs = CompletionPipeline.ms(since: started)
        if record.model.isEmpty { record.model = "-" }
        await finish(record, durable: false, engine: engine)
        var withHeaders = apiError
        withHeaders.headers += keyHeaders.map { ($0.name.rawName, $0.value) }
        if !withHeaders.headers.contains(where: { $0.0.hasPrefix("X-RateLimit") }) {
            withHeaders.headers += platform.billing.rateHeaders(principal)
        }
        return withHeaders
    }

    /// Queues the ledger row (or, `durable`, waits for its group commit) and the audit entry.
    /// `durable`: both the ledger row and the audit entry are committed before this returns (an
    /// answered request never lacks either after a crash).
    /// `engine`: the time spent in the fleet (queue, engine, a stream until its last event), nil
    /// when no engine was called; the rest is the gateway's overhead in the metrics.
    func finish(_ record: RequestRecord, durable: Bool, engine: Duration? = nil) async {
        let event = AuditEvent(time: record.createdAt, actor: "key:\(principal.keyID)", tenantID: principal.tenantID,
                               action: "inference.\(record.endpoint)", target: record.backend, outcome: record.outcome,
                               requestID: requestID, clientIP: clientIP, userAgent: userAgent, model: record.model,
                               status: record.status, tokens: record.promptTokens + record.completionTokens + (record.rerankedTokens ?? 0))
        platform.audit.record(event)  // queued first: the ledger's group commit writes it too
        if durable { await platform.requestLog.appendAndWait(record, preferring: loop) } else { platform.requestLog.append(record) }
        platform.metrics.request(record, timing: GatewayMetrics.Timing(total: ContinuousClock.now - started, engine: engine))
    }
}
