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
    /// Only the deltas' `reasoning_content` (`reasoning` also counts the alternative field): what
    /// the gateway settles an estimate by and assembles for the request store.
    var reasoningContent = ""
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

/// Last time bytes arrived from the engine (the platform's clock), shared between the engine
/// body and the silence watchdog. While the reader has not taken a part that arrived (the
/// client is slow: backpressure), the connection is not read, so the stream is not silent.
final class Activity: Sendable {
    private let clock: any PlatformClock
    private let last = Atomic<Int64>(0)
    private let held = Atomic<Bool>(false)
    init(clock: any PlatformClock) { self.clock = clock; touch() }
    func touch() { last.store(clock.now(), ordering: .relaxed) }
    /// A part is waiting for the reader (true) or was taken (false).
    func hold(_ on: Bool) { held.store(on, ordering: .relaxed) }
    var silentMs: Int64 { held.load(ordering: .relaxed) ? 0 : clock.now() - last.load(ordering: .relaxed) }
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

/// Set by the engine's ``IdleWatch`` when it stopped a stream for silence. (Not the reader
/// itself: the watchdog must not keep an abandoned stream alive.)
final class SilenceFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
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
    /// Relays an engine stream as ``RelayedEvent``s, read by whoever iterates the returned
    /// stream, in its own task (no reader task, no queue between tasks: issue 16). Each chunk is
    /// handed on as soon as it is parsed (no buffering of the answer). Cancelling the stream
    /// (client hang-up), or dropping it, closes the engine connection so the engine stops
    /// generating. When the engine breaks the stream after the first byte, a `.usage` event for
    /// what was produced (estimated, marked so) comes before the error, so the client's bill and
    /// the request row cover the partial answer.
    func relay(_ body: EngineBody, request: UpstreamRequest, format: StreamFormat = .sse,
               onEnd: (@Sendable (StreamEnd) -> Void)? = nil) -> EngineStream {
        let activity = body.activity
        activity.touch()  // the silence counts from the response head
        let silence = SilenceFlag()
        let watchID = idleWatch.watch(activity, idleMs: config.timeouts.idleMs) {
            silence.set()
            body.cancel()
        }
        return EngineStream(reader: StreamReader(engine: self, body: body, request: request, format: format,
                                                 silence: silence, watchID: watchID, onEnd: onEnd))
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

    /// Where a chunk's text is, for the endpoints whose chunks are spliced (nil: the tree path).
    static func deltaShape(_ endpoint: Endpoint) -> SplicedChunk.DeltaShape? {
        if endpoint == .chat { return .chat }
        if endpoint == .completions { return .completions }
        return nil
    }
}

/// The state of one relayed stream, advanced by the task that iterates it: each ``next()``
/// returns an event parsed earlier or reads the next part of the engine's body. One consumer
/// at a time (``EngineStream`` is iterated once; the fleet reads the first event, then hands
/// the stream on), which is why its mutable state needs no lock. Only ``cancel()`` and
/// ``end(_:)`` may race with it (the silence watchdog, a hang-up), and they use atomics.
final class StreamReader: @unchecked Sendable {
    let engine: Engine
    let body: EngineBody
    let request: UpstreamRequest
    let format: StreamFormat
    let silence: SilenceFlag
    let watchID: Int
    let onEnd: (@Sendable (StreamEnd) -> Void)?
    /// The client's token cap (the engine is stopped there, whatever it does).
    let cap: Int?
    /// Set once, by the end of the stream (completed, failed) or by ``cancel()``.
    private let ended = Atomic<Bool>(false)

    private enum Terminal { case done, failed(any Error) }
    private var summary = StreamSummary()
    private var sse = SSEParser()
    private var lines = LineSplitter()
    private var ndjsonID = ""
    private var created = 0
    private var queue: [RelayedEvent] = []
    private var queued = 0
    private var terminal: Terminal?

    init(engine: Engine, body: EngineBody, request: UpstreamRequest, format: StreamFormat,
         silence: SilenceFlag, watchID: Int, onEnd: (@Sendable (StreamEnd) -> Void)?) {
        self.engine = engine
        self.body = body
        self.request = request
        self.format = format
        self.silence = silence
        self.watchID = watchID
        self.onEnd = onEnd
        self.cap = request.body["max_completion_tokens"]?.intValue ?? request.body["max_tokens"]?.intValue
        if format == .ndjson {
            ndjsonID = Engine.newID()
            created = engine.createdNow
        }
    }

    /// The text the engine produced so far (answer, reasoning): what the relayed chunks carry,
    /// and at most the part just parsed ahead of them. Read by the one consumer, between its
    /// ``next()`` calls.
    var produced: (output: String, reasoning: String) { (summary.output, summary.reasoningContent) }

    /// The next event; nil at the end. After an error, nil.
    func next() async throws -> RelayedEvent? {
        while true {
            if queued < queue.count {
                let event = queue[queued]
                queued += 1
                if queued == queue.count { queue.removeAll(); queued = 0 }
                return event
            }
            switch terminal {
            case .done?: return nil
            case .failed(let error)?:
                terminal = .done
                throw error
            case nil:
                await step()
            }
        }
    }

    /// Reads until the first event and keeps it for the next ``next()``; throws when the stream
    /// ended with an error before it.
    func prime() async throws {
        guard let first = try await next() else { return }
        queue.insert(first, at: queued)
    }

    /// Reads the next part of the body (or its end) into the queue; sets `terminal` when the
    /// stream ends. Not inlined, nor is ``complete()`` into it: an async function's context holds
    /// what its inlined callees keep across their awaits, and this one is on the stack of every
    /// wait for the engine's next bytes, for the stream's whole life (issue 16).
    @inline(never)
    private func step() async {
        do {
            if let part = try await body.next() {
                try parse(part)
                // The cap: leaving the body closes the engine connection, the engine stops.
                if summary.capped {
                    body.cancel()
                    try await complete()
                }
            } else {
                try flush()
                try await complete()
            }
        } catch {
            fail(error)
        }
    }

    @inline(never)
    private func parse(_ part: ByteBuffer) throws {
        switch format {
        case .sse:
            for data in sse.feed(part.readableBytesView) {
                try handle(data)
                if summary.capped { return }
            }
        case .ndjson:
            for line in lines.feed(part.readableBytesView) { try handleLine(line) }
        }
    }

    @inline(never)
    private func flush() throws {
        switch format {
        case .sse: if let data = sse.finish() { try handle(data) }
        case .ndjson: if let line = lines.finish() { try handleLine(line) }
        }
    }

    /// The body ended (or the cap was reached): the usage event, then the end.
    @inline(never)
    private func complete() async throws {
        if !summary.sawDone {
            throw EngineError.streamCut(backend: engine.name, detail: format == .sse
                ? "the connection closed before 'data: [DONE]'" : "the connection closed before the final message")
        }
        var usage: Usage
        if let u = summary.engineUsage {
            usage = u
        } else {
            usage = await engine.countUsage(request: request, output: summary.output, reasoning: summary.reasoning)
        }
        if summary.capped {  // what was relayed: at most the cap (a chunk per token)
            usage.completionTokens = min(usage.completionTokens, summary.textChunks)
            usage.reasoningTokens = min(usage.reasoningTokens, usage.completionTokens)
        }
        queue.append(.usage(usage))
        terminal = .done
        end(.completed)
    }

    @inline(never)
    private func fail(_ failure: any Error) {
        body.cancel()
        // The engine's silence (the idle watch stopped the request) is a timeout, whatever the
        // interrupted read threw.
        let error: any Error = silence.isSet
            ? EngineError.timeout(backend: engine.name, afterMs: engine.config.timeouts.idleMs, streaming: true) : failure
        if ended.load(ordering: .acquiring) || error is CancellationError || (Task.isCancelled && !(error is EngineError)) {
            terminal = .failed(CancellationError())
            end(.cancelled)
            return
        }
        let engineError = error as? EngineError ?? .streamCut(backend: engine.name, detail: engine.describe(error))
        if summary.relayed > 0 { queue.append(.usage(engine.partialUsage(request: request, summary))) }
        terminal = .failed(engineError)
        end(.failed(engineError))
    }

    /// Reports the end once (the fleet releases the backend) and stops watching the silence.
    private func end(_ how: StreamEnd) {
        guard !ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        engine.idleWatch.unwatch(watchID)
        onEnd?(how)
    }

    /// The consumer stopped reading (client hang-up) or dropped the stream: the engine request
    /// is cancelled. Nothing happens when the stream had already ended.
    func cancel() {
        guard !ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        engine.idleWatch.unwatch(watchID)
        body.cancel()
        onEnd?(.cancelled)
    }

    /// One line of an NDJSON stream (Ollama): translated to an OpenAI chunk by the adapter; the
    /// final line's counts are the usage.
    @inline(never)
    private func handleLine(_ line: [UInt8]) throws {
        guard let json = try? JSONValue.parse(line), case .object = json else {
            throw EngineError.malformed(backend: engine.name, detail: "a stream line is not JSON")
        }
        if let error = json["error"], !error.isNull {
            throw EngineError.streamCut(backend: engine.name, detail: "the engine reported: \(error.stringValue ?? error["message"]?.stringValue ?? "an error")")
        }
        if let chunk = engine.adapter.chunk(line: json, request: request, id: ndjsonID, created: created, first: !summary.sentFirst) {
            summary.sentFirst = true
            let text = json["message"]?["content"]?.stringValue ?? json["response"]?.stringValue ?? ""
            let thinking = json["message"]?["thinking"]?.stringValue ?? ""
            summary.output += text
            summary.reasoning += thinking
            summary.reasoningContent += thinking
            if !text.isEmpty || !thinking.isEmpty { summary.textChunks += 1 }
            summary.relayed += 1
            queue.append(.chunk(chunk))
        }
        if json["done"]?.boolValue == true {
            summary.sawDone = true
            summary.engineUsage = engine.adapter.usage(ofLine: json)
        }
    }

    @inline(never)
    private func handle(_ data: [UInt8]) throws {
        if data.elementsEqual("[DONE]".utf8) { summary.sawDone = true; return }
        // An ordinary chunk is relayed as the engine's bytes (the gateway splices its own `id`,
        // `model` and `backend` in); its text is read by a small scan. Anything else (an error
        // event, a usage chunk, the chunk past the client's cap) takes the tree path below.
        if let shape = Engine.deltaShape(request.endpoint), let spliced = SplicedChunk(data, delta: shape) {
            let hasText = !spliced.content.isEmpty || !spliced.reasoning.isEmpty
            if !hasText || cap.map({ summary.textChunks < $0 }) ?? true {
                if hasText {
                    summary.output += spliced.content
                    summary.reasoning += spliced.reasoning
                    summary.reasoningContent += spliced.reasoningContent
                    summary.textChunks += 1
                }
                summary.relayed += 1
                queue.append(.spliced(spliced))
                return
            }
        }
        guard var chunk = try? JSONValue.parse(data), case .object = chunk else {
            throw EngineError.malformed(backend: engine.name, detail: "a stream event is not JSON")
        }
        if let error = chunk["error"], !error.isNull {
            throw EngineError.streamCut(backend: engine.name, detail: "the engine reported: \(error["message"]?.stringValue ?? "an error")")
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
                    queue.append(.chunk(Engine.lengthFinish(like: chunk, endpoint: request.endpoint)))
                    summary.relayed += 1
                    summary.sawDone = true
                    summary.capped = true
                    return
                }
                summary.output += content
                summary.reasoning += reasoning
                summary.reasoningContent += choice["delta"]?["reasoning_content"]?.stringValue ?? ""
                summary.textChunks += 1
            }
        }
        summary.relayed += 1
        queue.append(.chunk(chunk))
    }
}
