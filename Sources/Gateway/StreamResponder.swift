import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import Observability
import OpenAIWire
import Storage

/// Relays an engine stream to the client as SSE, chunk by chunk, and records how it ended:
/// completed, cut by the engine (the client gets an error event), or abandoned by the client
/// (the engine request is cancelled by ending the iteration).
struct StreamResponder: Sendable {
    let requestID: String
    let model: String
    let endpoint: Endpoint
    let backend: BackendTag
    let includeUsage: Bool
    let started: ContinuousClock.Instant
    let record: RequestRecord
    let recorder: RequestRecorder
    let extraHeaders: HTTPFields

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
            var created: JSONValue = .int(Int(Date().timeIntervalSince1970))
            func send(_ bytes: [UInt8]) async throws {
                do { try await writer.write(ByteBuffer(bytes: bytes)) } catch { throw ClientGone() }
            }
            do {
                for try await event in events {
                    switch event {
                    case .chunk(var chunk):
                        if let c = chunk["created"] { created = c }
                        chunk.set("id", .string(requestID))
                        chunk.set("model", .string(model))
                        chunk.set("backend", backend.json)
                        try await send(SSE.event(chunk))
                        if chunks == 0 { record.ttftMs = CompletionPipeline.ms(since: started) }
                        chunks += 1
                    case .usage(let usage):
                        record.promptTokens = usage.promptTokens
                        record.completionTokens = usage.completionTokens
                        if includeUsage {
                            let final: JSONValue = .object([
                                ("id", .string(requestID)),
                                ("object", .string(endpoint == .chat ? "chat.completion.chunk" : "text_completion")),
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
                try await send(SSE.done)
                record.outcome = "ok"
            } catch is ClientGone {
                events.cancel()
                record.outcome = "client_closed"
                record.status = 499
            } catch {
                let engineError = error as? EngineError ?? .streamCut(backend: backend.machineName, detail: "\(error)")
                record.outcome = engineError.outcome
                record.errorCode = engineError.apiError.code
                // Produced tokens are still counted: at worst one chunk is one token.
                if record.completionTokens == 0 { record.completionTokens = chunks }
                let event = SSE.event(engineError.apiError.json)
                try? await writer.write(ByteBuffer(bytes: event))
            }
            record.latencyMs = CompletionPipeline.ms(since: started)
            recorder.finish(record)
            try? await writer.finish(nil)
        })
    }
}
