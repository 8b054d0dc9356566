import AsyncHTTPClient
import Clocks
import Foundation
import NIOCore
import OpenAIWire
import Synchronization

/// What a finished stream produced, for counting its usage.
struct StreamSummary: Sendable {
    var output = ""
    var reasoning = ""
    var engineUsage: Usage?
    var sawDone = false
    /// Relayed chunks that carried text (a lower bound of the tokens produced).
    var textChunks = 0
    /// NDJSON streams: whether the first chunk (which carries the role) was sent.
    var sentFirst = false
    /// Chunks handed to the consumer.
    var relayed = 0
    /// The engine went past the client's token cap and the gateway ended the stream there.
    var capped = false
}

/// Last time bytes arrived from the engine (the platform's clock), shared between the reader and
/// its watchdog.
final class Activity: Sendable {
    private let clock: any PlatformClock
    private let last = Atomic<Int64>(0)
    init(clock: any PlatformClock) { self.clock = clock; touch() }
    func touch() { last.store(clock.now(), ordering: .relaxed) }
    var silentMs: Int64 { clock.now() - last.load(ordering: .relaxed) }
}

/// How a relayed stream ended, reported to the fleet (to release the backend and track health).
public enum StreamEnd: Sendable {
    case completed
    /// The engine broke the stream (cut, silence, error event) after the first byte.
    case failed(EngineError)
    /// The consumer stopped reading (client hang-up).
    case cancelled
}

/// The wire format of an engine stream.
enum StreamFormat: Sendable {
    /// `data: {...}` events ending with `data: [DONE]` (OpenAI, vLLM, llama.cpp).
    case sse
    /// One JSON object per line, the last with `"done": true` (Ollama).
    case ndjson
}

/// The partial state of a stream, kept outside the reader so a failure can still bill what
/// was produced.
final class StreamProgress: Sendable {
    let summary = Mutex(StreamSummary())
    /// Set by the engine's ``IdleWatch`` when it cancelled the reader for silence.
    let silent = Atomic<Bool>(false)
    /// The stream's registration with the engine's ``IdleWatch`` (0: none).
    let watchID = Atomic<Int>(0)
}

/// One watchdog per engine for the silence of all its open streams: every `idle_ms / 4` it
/// cancels the readers of the streams silent for longer than `idle_ms`. (A sleeping watchdog
/// task and a task group per stream cost ~8 KB of memory per open stream; issue 16.) It runs
/// only while streams are open.
final class IdleWatch: Sendable {
    struct Entry: Sendable {
        let activity: Activity
        let idleMs: Int
        let onSilence: @Sendable () -> Void
    }
    private struct State {
        var nextID = 0
        var entries: [Int: Entry] = [:]
        var running = false
    }
    private let state = Mutex(State())

    /// Watches a stream; `onSilence` runs once if it stays silent longer than `idleMs`.
    func watch(_ activity: Activity, idleMs: Int, onSilence: @escaping @Sendable () -> Void) -> Int {
        let (id, start) = state.withLock { s -> (Int, Bool) in
            s.nextID += 1
            s.entries[s.nextID] = Entry(activity: activity, idleMs: idleMs, onSilence: onSilence)
            defer { s.running = true }
            return (s.nextID, !s.running)
        }
        if start { Task { await self.loop(periodMs: max(50, idleMs / 4)) } }
        return id
    }

    func unwatch(_ id: Int) {
        guard id != 0 else { return }
        state.withLock { _ = $0.entries.removeValue(forKey: id) }
    }

    var watching: Int { state.withLock { $0.entries.count } }

    private func loop(periodMs: Int) async {
        while true {
            try? await Task.sleep(for: .milliseconds(periodMs))
            let silent: [Entry]? = state.withLock { s in
                if s.entries.isEmpty { s.running = false; return nil }
                var out: [Entry] = []
                for (id, e) in s.entries where e.activity.silentMs > Int64(e.idleMs) {
                    out.append(e)
                    s.entries[id] = nil
                }
                return out
            }
            guard let silent else { return }
            for e in silent { e.onSilence() }
        }
    }
}

extension Engine {
    /// Relays an engine stream as ``StreamEvent``s. Each chunk is handed on as soon as it is
    /// parsed (no buffering of the answer). Ending the consumer's iteration (client hang-up)
    /// cancels the reader, which closes the engine connection so the engine stops generating.
    /// When the engine breaks the stream after the first byte, a `.usage` event for what was
    /// produced (estimated, marked so) is yielded before the error, so the client's bill and
    /// the request row cover the partial answer.
    func relay(_ response: HTTPClientResponse, request: UpstreamRequest, format: StreamFormat = .sse,
               onEnd: (@Sendable (StreamEnd) -> Void)? = nil) -> EngineStream {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: RelayedEvent.self)
        let progress = StreamProgress()
        let activity = Activity(clock: clock)
        let idleMs = config.timeouts.idleMs
        let task = Task {
            defer { self.idleWatch.unwatch(progress.watchID.load(ordering: .relaxed)) }
            do {
                let summary = try await self.read(response, request: request, format: format, activity: activity, progress: progress, continuation)
                if !summary.sawDone {
                    throw EngineError.streamCut(backend: self.name, detail: format == .sse
                        ? "the connection closed before 'data: [DONE]'" : "the connection closed before the final message")
                }
                var usage: Usage
                if let u = summary.engineUsage {
                    usage = u
                } else {
                    usage = await self.countUsage(request: request, output: summary.output, reasoning: summary.reasoning)
                }
                if summary.capped {  // what was relayed: at most the cap (a chunk per token)
                    usage.completionTokens = min(usage.completionTokens, summary.textChunks)
                    usage.reasoningTokens = min(usage.reasoningTokens, usage.completionTokens)
                }
                continuation.yield(.usage(usage))
                continuation.finish()
                onEnd?(.completed)
            } catch {
                // The engine's silence (the idle watch cancelled the reader) is a timeout, whatever
                // the interrupted read threw.
                let error: any Error = progress.silent.load(ordering: .relaxed)
                    ? EngineError.timeout(backend: self.name, afterMs: idleMs, streaming: true) : error
                if error is CancellationError || (Task.isCancelled && !(error is EngineError)) {
                    continuation.finish(throwing: CancellationError())
                    onEnd?(.cancelled)
                    return
                }
                let engineError = error as? EngineError ?? .streamCut(backend: self.name, detail: self.describe(error))
                let partial = progress.summary.withLock { $0 }
                if partial.relayed > 0 { continuation.yield(.usage(self.partialUsage(request: request, partial))) }
                continuation.finish(throwing: engineError)
                onEnd?(.failed(engineError))
            }
        }
        let watchID = idleWatch.watch(activity, idleMs: idleMs) {
            progress.silent.store(true, ordering: .relaxed)
            task.cancel()
        }
        progress.watchID.store(watchID, ordering: .relaxed)
        continuation.onTermination = { [idleWatch] _ in
            task.cancel()
            idleWatch.unwatch(watchID)
        }
        return EngineStream(events: stream, reader: task)
    }

    /// Usage of a broken stream: the engine's counts never came, so estimate (and say so); at
    /// least one token per relayed chunk that carried text.
    func partialUsage(request: UpstreamRequest, _ summary: StreamSummary) -> Usage {
        let prompt = InferenceRequest.promptTexts(of: request.body, endpoint: request.endpoint).joined(separator: "\n")
        let output = max(summary.textChunks, Usage.estimateTokens(summary.output + summary.reasoning))
        return Usage(promptTokens: Usage.estimateTokens(prompt), completionTokens: summary.textChunks == 0 && summary.output.isEmpty ? 0 : output,
                     reasoningTokens: summary.reasoning.isEmpty ? 0 : Usage.estimateTokens(summary.reasoning), estimated: true)
    }

    /// The last chunk of a stream the gateway ended at the client's cap.
    static func lengthFinish(like chunk: JSONValue, endpoint: Endpoint) -> JSONValue {
        var last = chunk
        last.set("choices", .array([endpoint.spec.lengthFinishChoice]))
        return last
    }

    /// The reader's loop. Each format's loop is its own function and the per-event work is not
    /// inlined into it: a task's allocator keeps its high-water mark for the stream's life, and
    /// an async function's context holds every local its body (inlined code included) keeps
    /// across an await (issue 16).
    private func read(_ response: HTTPClientResponse, request: UpstreamRequest, format: StreamFormat, activity: Activity,
                      progress: StreamProgress, _ continuation: AsyncThrowingStream<RelayedEvent, any Error>.Continuation) async throws -> StreamSummary {
        switch format {
        case .sse: return try await readSSE(response, request: request, activity: activity, progress: progress, continuation)
        case .ndjson: return try await readNDJSON(response, request: request, activity: activity, progress: progress, continuation)
        }
    }

    private func readSSE(_ response: HTTPClientResponse, request: UpstreamRequest, activity: Activity, progress: StreamProgress,
                         _ continuation: AsyncThrowingStream<RelayedEvent, any Error>.Continuation) async throws -> StreamSummary {
        var summary = StreamSummary()
        defer { progress.summary.withLock { [summary] in $0 = summary } }
        var parser = SSEParser()
        let cap = request.body["max_completion_tokens"]?.intValue ?? request.body["max_tokens"]?.intValue
        for try await buffer in response.body {
            activity.touch()
            for data in parser.feed(buffer.readableBytesView) {
                try handle(data, request: request, cap: cap, summary: &summary, continuation)
                // Leaving the body closes the engine connection: the engine stops generating.
                if summary.capped { return summary }
            }
            progress.summary.withLock { [summary] in $0 = summary }
        }
        if let data = parser.finish() { try handle(data, request: request, cap: cap, summary: &summary, continuation) }
        return summary
    }

    private func readNDJSON(_ response: HTTPClientResponse, request: UpstreamRequest, activity: Activity, progress: StreamProgress,
                            _ continuation: AsyncThrowingStream<RelayedEvent, any Error>.Continuation) async throws -> StreamSummary {
        var summary = StreamSummary()
        defer { progress.summary.withLock { [summary] in $0 = summary } }
        var lines = LineSplitter()
        let id = Self.newID()
        let created = createdNow
        for try await buffer in response.body {
            activity.touch()
            for line in lines.feed(buffer.readableBytesView) {
                try handleLine(line, request: request, id: id, created: created, summary: &summary, continuation)
            }
            progress.summary.withLock { [summary] in $0 = summary }
        }
        if let line = lines.finish() {
            try handleLine(line, request: request, id: id, created: created, summary: &summary, continuation)
        }
        return summary
    }

    /// One line of an NDJSON stream (Ollama): translated to an OpenAI chunk by the adapter; the
    /// final line's counts are the usage.
    @inline(never)
    private func handleLine(_ line: [UInt8], request: UpstreamRequest, id: String, created: Int,
                            summary: inout StreamSummary, _ continuation: AsyncThrowingStream<RelayedEvent, any Error>.Continuation) throws {
        guard let json = try? JSONValue.parse(line), case .object = json else {
            throw EngineError.malformed(backend: name, detail: "a stream line is not JSON")
        }
        if let error = json["error"], !error.isNull {
            throw EngineError.streamCut(backend: name, detail: "the engine reported: \(error.stringValue ?? error["message"]?.stringValue ?? "an error")")
        }
        if let chunk = adapter.chunk(line: json, request: request, id: id, created: created, first: !summary.sentFirst) {
            summary.sentFirst = true
            let text = json["message"]?["content"]?.stringValue ?? json["response"]?.stringValue ?? ""
            let thinking = json["message"]?["thinking"]?.stringValue ?? ""
            summary.output += text
            summary.reasoning += thinking
            if !text.isEmpty || !thinking.isEmpty { summary.textChunks += 1 }
            summary.relayed += 1
            continuation.yield(.chunk(chunk))
        }
        if json["done"]?.boolValue == true {
            summary.sawDone = true
            summary.engineUsage = adapter.usage(ofLine: json)
        }
    }

    /// Where a chunk's text is, for the endpoints whose chunks are spliced (nil: the tree path).
    static func deltaShape(_ endpoint: Endpoint) -> SplicedChunk.DeltaShape? {
        if endpoint == .chat { return .chat }
        if endpoint == .completions { return .completions }
        return nil
    }

    @inline(never)
    private func handle(_ data: [UInt8], request: UpstreamRequest, cap: Int?, summary: inout StreamSummary,
                        _ continuation: AsyncThrowingStream<RelayedEvent, any Error>.Continuation) throws {
        if data.elementsEqual("[DONE]".utf8) { summary.sawDone = true; return }
        // An ordinary chunk is relayed as the engine's bytes (the gateway splices its own `id`,
        // `model` and `backend` in); its text is read by a small scan. Anything else (an error
        // event, a usage chunk, the chunk past the client's cap) takes the tree path below.
        if let shape = Self.deltaShape(request.endpoint), let spliced = SplicedChunk(data, delta: shape) {
            let hasText = !spliced.content.isEmpty || !spliced.reasoning.isEmpty
            if !hasText || cap.map({ summary.textChunks < $0 }) ?? true {
                if hasText {
                    summary.output += spliced.content
                    summary.reasoning += spliced.reasoning
                    summary.textChunks += 1
                }
                summary.relayed += 1
                continuation.yield(.spliced(spliced))
                return
            }
        }
        guard var chunk = try? JSONValue.parse(data), case .object = chunk else {
            throw EngineError.malformed(backend: name, detail: "a stream event is not JSON")
        }
        if let error = chunk["error"], !error.isNull {
            throw EngineError.streamCut(backend: name, detail: "the engine reported: \(error["message"]?.stringValue ?? "an error")")
        }
        if let usage = Usage(json: chunk["usage"]) {
            summary.engineUsage = usage
            if chunk["choices"]?.arrayValue?.isEmpty ?? true { return }  // usage-only chunk: reported at the end
        }
        chunk.remove("usage")
        if let choice = chunk["choices"]?.arrayValue?.first {
            let (content, reasoning) = request.endpoint.spec.deltaText(choice)
            if !content.isEmpty || !reasoning.isEmpty {
                // One text chunk per token: an engine that goes past the client's cap is stopped
                // there, whatever it does (admission reserved exactly the cap).
                if let cap, summary.textChunks >= cap {
                    continuation.yield(.chunk(Self.lengthFinish(like: chunk, endpoint: request.endpoint)))
                    summary.relayed += 1
                    summary.sawDone = true
                    summary.capped = true
                    return
                }
                summary.output += content
                summary.reasoning += reasoning
                summary.textChunks += 1
            }
        }
        summary.relayed += 1
        continuation.yield(.chunk(chunk))
    }
}
