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
    let backend: BackendTag
    let includeUsage: Bool
    let started: ContinuousClock.Instant
    /// When the fleet was called: the engine's share lasts until the stream's last event.
    let engineStart: ContinuousClock.Instant
    let record: RequestRecord
    let recorder: RequestRecorder
    let settler: Settler
    let durable: Bool
    let extraHeaders: HTTPFields
    /// Request store (tenants that opted in): takes the assembled answer text once the stream ends.
    var storeAnswer: (@Sendable (String) -> Void)? = nil

    struct ClientGone: Error {}

    func response(_ events: EngineStream) -> Response {
        var headers: HTTPFields = [
            .contentType: "text/event-stream",
            .cacheControl: "no-cache",
            .xBackend: backend.header,
        ]
        headers.append(contentsOf: extraHeaders)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var record = self.record
            record.status = 200
            var chunks = 0
            var output = "", reasoning = ""
            var settled = false
            var created: JSONValue = .int(Int(record.createdAt / 1000))
            var engineTime: Duration?
            func send(_ bytes: [UInt8]) async throws {
                do { try await writer.write(ByteBuffer(bytes: bytes)) } catch { throw ClientGone() }
            }
            // An engine chunk's bytes with the gateway's `id`, `model` and `backend` spliced in
            // (``SplicedChunk``): these three are serialized once per stream.
            var idJSON: [UInt8] = [], modelJSON: [UInt8] = []
            JSONValue.writeString(requestID, into: &idJSON)
            JSONValue.writeString(model, into: &modelJSON)
            var backendTail = Array(",\"backend\":".utf8)
            backend.json.write(into: &backendTail)
            do {
                for try await event in events.relayed {
                    switch event {
                    case .spliced(let chunk):
                        if let c = chunk.createdValue { created = c }
                        output += chunk.content
                        reasoning += chunk.reasoningContent
                        var bytes: [UInt8] = []
                        bytes.reserveCapacity(chunk.bytes.count + idJSON.count + modelJSON.count + backendTail.count + 32)
                        bytes.append(contentsOf: SSE.dataPrefix)
                        chunk.splice(id: idJSON, model: modelJSON, tail: backendTail, into: &bytes)
                        bytes.append(contentsOf: SSE.eventEnd)
                        try await send(bytes)
                        if chunks == 0 { record.ttftMs = CompletionPipeline.ms(since: started) }
                        chunks += 1
                    case .chunk(var chunk):
                        if let c = chunk["created"] { created = c }
                        if let choice = chunk["choices"]?.arrayValue?.first {
                            output += choice["delta"]?["content"]?.stringValue ?? choice["text"]?.stringValue ?? ""
                            reasoning += choice["delta"]?["reasoning_content"]?.stringValue ?? ""
                        }
                        chunk.set("id", .string(requestID))
                        chunk.set("model", .string(model))
                        chunk.set("backend", backend.json)
                        try await send(SSE.event(chunk))
                        if chunks == 0 { record.ttftMs = CompletionPipeline.ms(since: started) }
                        chunks += 1
                    case .usage(let engineUsage):
                        let usage = await settler.settle(&record, engineUsage: engineUsage, output: output, reasoning: reasoning)
                        settled = true
                        if includeUsage {
                            let final: JSONValue = .object([
                                ("id", .string(requestID)),
                                ("object", .string(endpoint.spec.chunkObjectName ?? endpoint.objectName)),
                                ("created", created),
                                ("model", .string(model)),
                                ("choices", .array([])),
                                ("usage", usage.json),
                                ("backend", backend.json),
                            ])
                            try await send(SSE.event(final))
                        }
                    }
                }
                engineTime = ContinuousClock.now - engineStart
                // The bill is committed before the last bytes: a delivered answer is never unbilled.
                record.outcome = "ok"
                record.latencyMs = CompletionPipeline.ms(since: started)
                await recorder.finish(record, durable: durable, engine: engineTime)
                storeAnswer?(output)
                try await send(SSE.done)
                try? await writer.finish(nil)
                return
            } catch is ClientGone {
                engineTime = ContinuousClock.now - engineStart
                events.cancel()
                record.outcome = "client_closed"
                record.status = 499
            } catch {
                engineTime = ContinuousClock.now - engineStart
                let engineError = error as? EngineError ?? .streamCut(backend: backend.machineName, detail: "\(error)")
                record.outcome = engineError.outcome
                record.errorCode = engineError.apiError.code
                let event = SSE.event(engineError.apiError.json)
                try? await writer.write(ByteBuffer(bytes: event))
            }
            // Cut or abandoned: bill what was produced (estimated from the text relayed).
            if !settled { _ = await settler.settle(&record, engineUsage: nil, output: output, reasoning: reasoning) }
            record.latencyMs = CompletionPipeline.ms(since: started)
            await recorder.finish(record, durable: false, engine: engineTime)
            storeAnswer?(output)
            try? await writer.finish(nil)
        })
    }
}
