import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import Observability
import OpenAIWire
import Storage

/// Relays an engine stream to the client as SSE, chunk by chunk, and records how it ended:
/// completed (settled, and its ledger row committed before `data: [DONE]` goes out), cut by the
/// engine (the client gets an error event; what was produced is billed, estimated), or abandoned
/// by the client (the engine request is cancelled; what was produced is billed).
struct StreamResponder: Sendable {
    let requestID: String
    let model: String
    let endpoint: Endpoint
    var backend: BackendTag
    let includeUsage: Bool
    let started: ContinuousClock.Instant
    /// When the fleet was called: the engine's share lasts until the stream's last event.
    let engineStart: ContinuousClock.Instant
    let recorder: RequestRecorder
    let settler: Settler
    let durable: Bool
    /// Headers of the response's head only (the relay's copy drops them).
    var extraHeaders: HTTPFields
    /// Request store (tenants that opted in): takes the assembled answer text once the stream ends.
    var storeAnswer: (@Sendable (String) -> Void)? = nil

    struct ClientGone: Error {}

    /// The stream's response; `record`: its ledger row so far (backend set). Kept once, in the
    /// relay's state, not also in a copy of this responder (issue 16: ~0.3 KB per open stream).
    func response(_ events: EngineStream, record: RequestRecord) -> Response {
        var headers: HTTPFields = [
            .contentType: "text/event-stream",
            .cacheControl: "no-cache",
            .xBackend: backend.header,
        ]
        headers.append(contentsOf: extraHeaders)
        // The body's closure keeps only the state object and the stream (not a copy of this
        // responder): its context lives as long as the stream.
        let state = StreamRelayState(self, record: record)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await state.run(events, &writer)
        })
    }
}

/// One relayed stream's state, on the heap: the loop that relays the events keeps only this
/// object, its iterator and the event at hand across its awaits, and the rare steps (the usage
/// event, the end) are functions of their own. An async function's context holds every local
/// its body, inlined callees included, keeps across an await, for as long as it runs — here,
/// the whole stream: the loop written inline in the response body's closure had a ~7 KB
/// context per open stream (issue 16). Used by the one task that writes the response.
final class StreamRelayState: @unchecked Sendable {
    let responder: StreamResponder
    var record: RequestRecord
    var chunks = 0
    var settled = false
    var created: JSONValue
    var engineTime: Duration?
    /// An engine chunk's bytes get the gateway's `id`, `model` and `backend` spliced in
    /// (``SplicedChunk``): these three are serialized once per stream.
    let idJSON: [UInt8], modelJSON: [UInt8], backendTail: [UInt8]

    init(_ responder: StreamResponder, record: RequestRecord) {
        var responder = responder
        responder.extraHeaders = [:]  // in the head already; not kept for the stream's life
        self.responder = responder
        self.record = record
        self.record.status = 200
        created = .int(Int(record.createdAt / 1000))
        var id: [UInt8] = [], model: [UInt8] = []
        JSONValue.writeString(responder.requestID, into: &id)
        JSONValue.writeString(responder.model, into: &model)
        var tail = Array(",\"backend\":".utf8)
        responder.backend.json.write(into: &tail)
        idJSON = id
        modelJSON = model
        backendTail = tail
    }

    func run(_ events: EngineStream, _ writer: inout any ResponseBodyWriter) async throws {
        do {
            for try await event in events.relayed {
                switch event {
                case .spliced(let chunk):
                    try await send(spliced(chunk), &writer)
                    sentChunk()
                case .chunk(let chunk):
                    try await send(tree(chunk), &writer)
                    sentChunk()
                case .usage(let engineUsage):
                    if let final = await settle(engineUsage, produced: events.produced) { try await send(final, &writer) }
                }
            }
            try await completed(events.produced.output, &writer)
            return
        } catch is StreamResponder.ClientGone {
            engineTime = ContinuousClock.now - responder.engineStart
            events.cancel()
            record.outcome = "client_closed"
            record.status = 499
        } catch {
            try? await writer.write(ByteBuffer(bytes: failed(error)))
        }
        await ended(events.produced, &writer)
    }

    func send(_ bytes: [UInt8], _ writer: inout any ResponseBodyWriter) async throws {
        do { try await writer.write(ByteBuffer(bytes: bytes)) } catch { throw StreamResponder.ClientGone() }
    }

    func sentChunk() {
        if chunks == 0 { record.ttftMs = CompletionPipeline.ms(since: responder.started) }
        chunks += 1
    }

    @inline(never)
    func spliced(_ chunk: SplicedChunk) -> [UInt8] {
        if let c = chunk.createdValue { created = c }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chunk.bytes.count + idJSON.count + modelJSON.count + backendTail.count + 32)
        bytes.append(contentsOf: SSE.dataPrefix)
        chunk.splice(id: idJSON, model: modelJSON, tail: backendTail, into: &bytes)
        bytes.append(contentsOf: SSE.eventEnd)
        return bytes
    }

    @inline(never)
    func tree(_ chunk: JSONValue) -> [UInt8] {
        var chunk = chunk
        if let c = chunk["created"] { created = c }
        chunk.set("id", .string(responder.requestID))
        chunk.set("model", .string(responder.model))
        chunk.set("backend", responder.backend.json)
        return SSE.event(chunk)
    }

    /// The stream's usage: settled (cost, ledger fields); the usage chunk when the client asked.
    @inline(never)
    func settle(_ engineUsage: Usage, produced: (output: String, reasoning: String)) async -> [UInt8]? {
        let usage = await responder.settler.settle(&record, engineUsage: engineUsage, output: produced.output, reasoning: produced.reasoning)
        settled = true
        guard responder.includeUsage else { return nil }
        let final: JSONValue = .object([
            ("id", .string(responder.requestID)),
            ("object", .string(responder.endpoint.spec.chunkObjectName ?? responder.endpoint.objectName)),
            ("created", created),
            ("model", .string(responder.model)),
            ("choices", .array([])),
            ("usage", usage.json),
            ("backend", responder.backend.json),
        ])
        return SSE.event(final)
    }

    /// Completed: the bill is committed before the last bytes (a delivered answer is never unbilled).
    @inline(never)
    func completed(_ output: String, _ writer: inout any ResponseBodyWriter) async throws {
        engineTime = ContinuousClock.now - responder.engineStart
        record.outcome = "ok"
        record.latencyMs = CompletionPipeline.ms(since: responder.started)
        await responder.recorder.finish(record, durable: responder.durable, engine: engineTime)
        responder.storeAnswer?(output)
        try await send(SSE.done, &writer)
        try? await writer.finish(nil)
    }

    /// Cut by the engine: the error event's bytes.
    @inline(never)
    func failed(_ error: any Error) -> [UInt8] {
        engineTime = ContinuousClock.now - responder.engineStart
        let engineError = error as? EngineError ?? .streamCut(backend: responder.backend.machineName, detail: "\(error)")
        record.outcome = engineError.outcome
        record.errorCode = engineError.apiError.code
        return SSE.event(engineError.apiError.json)
    }

    /// Cut or abandoned: bill what was produced (estimated from the text relayed).
    @inline(never)
    func ended(_ produced: (output: String, reasoning: String), _ writer: inout any ResponseBodyWriter) async {
        if !settled { _ = await responder.settler.settle(&record, engineUsage: nil, output: produced.output, reasoning: produced.reasoning) }
        record.latencyMs = CompletionPipeline.ms(since: responder.started)
        await responder.recorder.finish(record, durable: false, engine: engineTime)
        responder.storeAnswer?(produced.output)
        try? await writer.finish(nil)
    }
}
