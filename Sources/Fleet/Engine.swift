import AsyncHTTPClient
import Clocks
import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOHTTP1
import OpenAIWire
import Synchronization

/// A request on its way to an engine: the client's body with the engine's model name.
public struct UpstreamRequest: Sendable {
    public var endpoint: Endpoint
    public var body: JSONValue
    public var stream: Bool
    /// The uploaded file of a multipart endpoint (audio); `body` then holds the other form fields.
    public var file: Multipart.Part?

    public init(endpoint: Endpoint, body: JSONValue, stream: Bool, file: Multipart.Part? = nil) {
        self.endpoint = endpoint
        self.body = body
        self.stream = stream
        self.file = file
    }
}

/// One event of a relayed stream, already in OpenAI's shape whatever the engine spoke.
public enum StreamEvent: Sendable {
    /// A `chat.completion.chunk` / `text_completion` chunk (usage-only chunks are not chunks).
    case chunk(JSONValue)
    /// The stream's final token counts: the engine's own, or counted by the adapter.
    case usage(Usage)
}

/// A relayed stream's event as the relay produced it: an ordinary engine chunk stays the
/// engine's bytes (``SplicedChunk``, for the gateway to splice its own `id`, `model`, `backend`
/// into); anything unusual (the token cap's last chunk, Ollama's translated lines, a chunk the
/// scan did not take) is a tree. The spliced chunk and the usage are boxed (`indirect`): a spliced
/// chunk is ~200 bytes inline, and every async frame of the relay that holds an event across an
/// await — the reader's, the relay loop's, their return slots — would keep that much in the
/// stream task's slabs for the stream's whole life (issue 16); a box is one small allocation per
/// event.
public enum RelayedEvent: Sendable {
    case chunk(JSONValue)
    indirect case spliced(SplicedChunk)
    indirect case usage(Usage)

    /// As a ``StreamEvent`` (a spliced chunk parsed into its tree).
    public func event() throws -> StreamEvent {
        switch self {
        case .chunk(let c): return .chunk(c)
        case .spliced(let c): return .chunk(try c.json())
        case .usage(let u): return .usage(u)
        }
    }
}

public enum UpstreamResponse: Sendable {
    /// A complete answer (2xx), with its usage when known.
    case complete(JSONValue, Usage)
    case stream(EngineStream)
    /// The caller was cancelled (its client went away) while a non-streamed answer was being
    /// generated; the engine was stopped. What it had produced, estimated.
    case abandoned(Usage)
}

/// A relayed engine stream. Cancelling it, or dropping it, closes the engine connection so the
/// engine stops generating (a client that hung up must not keep a GPU busy). Iterated once:
/// as ``StreamEvent``s (trees), or as ``RelayedEvent``s through ``relayed`` (the gateway's path).
/// The iterating task reads the engine's body itself (``StreamReader``): there is no task per
/// stream behind it.
public final class EngineStream: AsyncSequence, Sendable {
    public typealias Element = StreamEvent
    let reader: StreamReader

    init(reader: StreamReader) {
        self.reader = reader
    }

    public func cancel() { reader.cancel() }

    deinit { reader.cancel() }

    /// The text the engine produced so far (answer, reasoning), kept once, by the stream's
    /// reader (the relay does not keep a second copy; issue 16). For the task iterating the
    /// stream, between its reads.
    public var produced: (output: String, reasoning: String) { reader.produced }

    public struct AsyncIterator: AsyncIteratorProtocol {
        // The stream itself, not only its reader: dropping the last reference cancels it.
        let stream: EngineStream

        public mutating func next() async throws -> StreamEvent? {
            try await stream.reader.next()?.event()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }

    /// The events as the relay produced them.
    public var relayed: Relayed { Relayed(stream: self) }

    public struct Relayed: AsyncSequence, Sendable {
        public typealias Element = RelayedEvent
        let stream: EngineStream

        public struct AsyncIterator: AsyncIteratorProtocol {
            let stream: EngineStream

            public mutating func next() async throws -> RelayedEvent? {
                try await stream.reader.next()
            }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream) }
    }

    /// Waits for the first event and keeps it for the consumer; throws when the stream broke
    /// before it (nothing reached the client, so the fleet may try another backend).
    func prime() async throws {
        try await reader.prime()
    }
}

/// Talks to one engine over HTTP and hides its quirks: whatever the engine does, the caller
/// sees OpenAI behaviour (usage always present, one pooled vector per embedding input, bad
/// input as 4xx). This is the only code that sends requests to engines; what differs between
/// engine kinds is in its ``EngineAdapter``.
public final class Engine: Sendable {
    public let config: BackendConfig
    let http: HTTPClient
    let logger: Logger
    let adapter: any EngineAdapter
    /// The platform's clock: `created` of answers the engine did not date, a stream's silence.
    let clock: any PlatformClock
    /// TLS to this engine when it has a `tls:` section (CA, client certificate), built once; the
    /// files were checked at start-up. nil: the client's default (system roots) for https.
    let tls: TLSConfiguration?
    /// The silence watchdog of this engine's open streams.
    let idleWatch = IdleWatch()
    /// The gateway's own keep-alive connections to a plain-HTTP engine (``EnginePool``), which
    /// carry its inference requests (whole answers and streams); nil for an https engine, whose
    /// requests go through AsyncHTTPClient like every other call (probes, token counting,
    /// multipart uploads).
    let pool: EnginePool?

    public init(config: BackendConfig, http: HTTPClient, logger: Logger, template: ChatTemplate = .smolLM2,
                clock: any PlatformClock = SystemClock()) {
        self.config = config
        self.tls = config.tls.flatMap { try? $0.clientConfiguration() }
        self.http = http
        self.logger = logger
        self.adapter = EngineAdapters.adapter(for: config.kind, template: template)
        self.clock = clock
        self.pool = EnginePool(url: config.url, maxConnections: config.maxConnections, connectTimeoutMs: config.timeouts.connectMs,
                               group: http.eventLoopGroup)
    }

    /// Closes the engine's idle connections of its own pool (at shutdown).
    public func closeConnections() { pool?.shutdown() }

    public var name: String { config.name }
    public var kind: EngineKind { config.kind }
    var createdNow: Int { Int(clock.now() / 1000) }

    // MARK: Sending

    /// Sends one request. For a stream, `onStreamEnd` is called once when the relay ends (the
    /// fleet uses it to release the backend and to learn whether the stream broke).
    public func send(_ request: UpstreamRequest, onStreamEnd: (@Sendable (StreamEnd) -> Void)? = nil) async throws(EngineError) -> UpstreamResponse {
        guard let path = adapter.path(for: request.endpoint) else {
            throw .rejected(backend: name, error: .invalidRequest("The engine serving this model (\(kind.rawValue)) cannot serve \(request.endpoint.path); choose another model.",
                                                                 code: "unsupported_endpoint"))
        }
        if request.endpoint == .embeddings, let d = request.body["dimensions"], !d.isNull, !adapter.shortensEmbeddings {
            throw .rejected(backend: name, error: .invalidRequest("This model cannot shorten its embeddings: remove 'dimensions' (its vectors have a fixed size).",
                                                                 param: "dimensions", code: "invalid_value"))
        }
        if request.endpoint.spec.bodyFormat == .multipart { return try await sendMultipart(request, path: path) }
        var request = request
        var tokenIDCount: Int?  // embeddings of token ids: the usage counts the ids sent
        if request.endpoint == .embeddings, let ids = InferenceRequest.tokenInputs(request.body["input"] ?? .null) {
            request.body = try await adapter.tokenEmbeddingsBody(request.body, ids: ids, engine: self)
            tokenIDCount = ids.reduce(0) { $0 + $1.count }
        }
        if adapter.collectsNonStreamed && !request.stream && StreamCollector.canCollect(request.body, endpoint: request.endpoint) {
            return try await sendCollected(request, path: path)
        }
        let body = adapter.prepare(request.body, request)
        if request.stream {
            let engineBody = try await openStream(path, body: body.serialized(), request: request)
            return .stream(relay(engineBody, request: request, format: adapter.streamFormat, onEnd: onStreamEnd))
        }
        var json = adapter.answer(try await fetchJSON(path, body: body.serialized(), request: request), request: request, id: Self.newID(),
                                  created: createdNow)
        if request.endpoint == .embeddings { json = adapter.embeddings(json, base64: wantsBase64(request.body)) }
        let usage: Usage
        if let tokenIDCount { usage = Usage(promptTokens: tokenIDCount, completionTokens: 0) } else { usage = await completeUsage(json, request: request) }
        json.set("usage", usage.json)
        return .complete(json, usage)
    }

    /// A multipart request (an audio file and its form fields), answered as JSON for the JSON
    /// response formats and as text (a JSON string) for the others.
    func sendMultipart(_ request: UpstreamRequest, path: String) async throws(EngineError) -> UpstreamResponse {
        var parts: [Multipart.Part] = (request.body.objectValue ?? []).compactMap { name, value in
            value.stringValue.map { Multipart.Part(name: name, data: Array($0.utf8)) }
        }
        if let file = request.file { parts.append(file) }
        let boundary = "llmaas-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let httpResponse = try await post(path, body: Multipart.encode(parts, boundary: boundary), timeoutMs: config.timeouts.firstByteMs,
                                          streaming: false, contentType: "multipart/form-data; boundary=\(boundary)")
        if httpResponse.status.code >= 400 {
            let bytes = await collect(httpResponse, limit: 1 << 20)
            throw .rejected(backend: name, error: mapEngineError(status: Int(httpResponse.status.code), body: bytes, endpoint: request.endpoint))
        }
        let usage = Usage(promptTokens: 0, completionTokens: 0)
        let format = TranscriptionEndpoint.format(request.body)
        if format == "json" || format == "verbose_json" { return .complete(try await readJSON(httpResponse), usage) }
        let bytes: [UInt8]
        do {
            bytes = try await withTimeout(config.timeouts.firstByteMs) { [httpResponse] in
                var buffer = try await httpResponse.body.collect(upTo: 64 << 20)
                return buffer.readBytes(length: buffer.readableBytes) ?? []
            }
        } catch let e as EngineError {
            throw e
        } catch {
            throw .unreachable(backend: name, detail: "connection lost while reading the answer: \(error)")
        }
        return .complete(.string(String(decoding: bytes, as: UTF8.self)), usage)
    }

    /// A non-streamed request answered through a stream (see ``StreamCollector``). Cancelling the
    /// calling task closes the engine connection, which stops the engine at its next token.
    func sendCollected(_ request: UpstreamRequest, path: String) async throws(EngineError) -> UpstreamResponse {
        var streamed = request
        streamed.stream = true
        streamed.body.set("stream", true)
        let body = adapter.prepare(streamed.body, streamed)
        let engineBody = try await openStream(path, body: body.serialized(), request: streamed)
        let events = relay(engineBody, request: streamed, format: adapter.streamFormat, onEnd: nil)
        var collector = StreamCollector(endpoint: request.endpoint)
        do {
            for try await event in events.relayed { collector.add(event) }
        } catch let error as EngineError {
            throw error
        } catch {
            if !Task.isCancelled { throw .streamCut(backend: name, detail: describe(error)) }
        }
        if Task.isCancelled {
            events.cancel()
            return .abandoned(partialUsage(request: request, collector.summary))
        }
        let usage = collector.usage ?? Usage(promptTokens: 0, completionTokens: collector.textChunks, estimated: true)
        return .complete(collector.answer(usage: usage, id: Self.newID(), created: createdNow), usage)
    }

    /// POSTs a non-streamed request and reads the whole answer as a JSON object (``EngineAnswer``:
    /// on the calling connection's event loop, no task of its own; through the engine's own
    /// ``EnginePool`` for a plain-HTTP engine, AsyncHTTPClient for https). The head is bounded by the
    /// connect and first-byte timeouts, then the body by the first-byte timeout again (256 MB at
    /// most); an error status becomes the error the client should see (its body read for 5 s and
    /// 1 MB at most).
    func fetchJSON(_ path: String, body: [UInt8], request: UpstreamRequest) async throws(EngineError) -> JSONValue {
        let timeoutMs = config.timeouts.firstByteMs
        let bounds = EngineAnswer.Bounds(headMs: Int64(timeoutMs), bodyMs: Int64(timeoutMs), bodyLimit: 256 << 20,
                                         errorBodyMs: 5000, errorBodyLimit: 1 << 20)
        var answer: EngineAnswer.Result
        if let pool {
            answer = await EngineAnswer.fetch(pool.post(path, body: body, accept: "application/json"), on: pool, bounds: bounds)
        } else {
            let httpRequest: HTTPClient.Request
            do {
                httpRequest = try jsonPost(path, body: body, accept: "application/json")
            } catch {
                throw sendFailure(error, timeoutMs: timeoutMs)
            }
            answer = await EngineAnswer.fetch(httpRequest, on: http, bounds: bounds)
        }
        guard let head = answer.head else {
            throw sendFailure(answer.timedOut ? HTTPClientError.deadlineExceeded : answer.error ?? HTTPClientError.remoteConnectionClosed,
                              timeoutMs: timeoutMs)
        }
        if head.status.code >= 400 {
            // As before: a message cut short (time, size, connection) is not quoted at all.
            let bytes = answer.error == nil ? answer.body.readBytes(length: answer.body.readableBytes) ?? [] : []
            throw .rejected(backend: name, error: mapEngineError(status: Int(head.status.code), body: bytes, endpoint: request.endpoint))
        }
        if let error = answer.error {
            if answer.timedOut { throw .timeout(backend: name, afterMs: timeoutMs, streaming: false) }
            throw .unreachable(backend: name, detail: "connection lost while reading the answer: \(error)")
        }
        return try jsonObject(answer.body.readableBytesView)
    }

    /// A POST of a JSON body for the delegate-based calls (``EngineAnswer``, ``EngineBody``).
    func jsonPost(_ path: String, body: [UInt8], accept: String) throws -> HTTPClient.Request {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: accept)
        return try HTTPClient.Request(url: config.url + path, method: .POST, headers: headers, body: .bytes(body), tlsConfiguration: tls)
    }

    /// An answer's bytes as a JSON object, or the error that says they are not one.
    func jsonObject<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(EngineError) -> JSONValue {
        guard let json = try? JSONValue.parse(bytes), case .object = json else {
            throw .malformed(backend: name, detail: "the body is not a JSON object")
        }
        return json
    }

    /// POSTs a streamed request and waits for the response head (bounded by the connect and
    /// first-byte timeouts, like ``post``); an error status becomes the error the client should
    /// see. The body is then read by the stream's consumer (``StreamReader``).
    func openStream(_ path: String, body: [UInt8], request: UpstreamRequest) async throws(EngineError) -> EngineBody {
        let timeoutMs = config.timeouts.firstByteMs
        let engineBody: EngineBody
        let head: HTTPResponseHead
        do {
            let accept = adapter.streamFormat == .sse ? "text/event-stream" : "application/json"
            if let pool {
                engineBody = EngineBody.start(pool.post(path, body: body, accept: accept), on: pool, clock: clock)
            } else {
                engineBody = EngineBody.start(try jsonPost(path, body: body, accept: accept), on: http, clock: clock)
            }
            head = try await engineBody.head(within: Int64(timeoutMs))
        } catch {
            throw sendFailure(error, timeoutMs: timeoutMs)
        }
        if head.status.code >= 400 {
            let bytes: [UInt8] = (try? await withTimeout(5000) { [engineBody] () async throws -> [UInt8] in
                var out: [UInt8] = []
                while out.count < 1 << 20, let part = try await engineBody.next() { out.append(contentsOf: part.readableBytesView) }
                return out
            }) ?? []
            engineBody.cancel()
            throw .rejected(backend: name, error: mapEngineError(status: Int(head.status.code), body: bytes, endpoint: request.endpoint))
        }
        return engineBody
    }

    /// Reads a whole (non-streamed) answer, bounded by the first-byte timeout, as a JSON object.
    func readJSON(_ httpResponse: HTTPClientResponse) async throws(EngineError) -> JSONValue {
        let bytes: [UInt8]
        do {
            bytes = try await withTimeout(config.timeouts.firstByteMs) { [httpResponse] in
                var buffer = try await httpResponse.body.collect(upTo: 256 << 20)
                return buffer.readBytes(length: buffer.readableBytes) ?? []
            }
        } catch let e as EngineError {
            throw e
        } catch {
            throw .unreachable(backend: name, detail: "connection lost while reading the answer: \(error)")
        }
        return try jsonObject(bytes)
    }

    static func newID() -> String { "chatcmpl-" + Digits.base36(RandomWords.next()) }

    func wantsBase64(_ body: JSONValue) -> Bool { body["encoding_format"]?.stringValue == "base64" }

    /// POSTs and waits for the response head, bounded by the connect and first-byte timeouts.
    func post(_ path: String, body: [UInt8], timeoutMs: Int, streaming: Bool,
              contentType: String = "application/json") async throws(EngineError) -> HTTPClientResponse {
        var request = HTTPClientRequest(url: config.url + path)
        request.tlsConfiguration = tls
        request.method = .POST
        request.headers.add(name: "content-type", value: contentType)
        request.headers.add(name: "accept", value: streaming ? "text/event-stream" : "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            // AsyncHTTPClient's deadline bounds the wait for the response head only (it is
            // cancelled once the head is in), which is what the first-byte timeout means; no
            // timeout task group (two tasks and a timer per engine call).
            return try await http.execute(request, deadline: .now() + .milliseconds(Int64(timeoutMs)))
        } catch {
            throw sendFailure(error, timeoutMs: timeoutMs)
        }
    }

    /// What a POST that got no response head means: the first-byte timeout passed, the request
    /// never left (refused, so another backend may take it), or the engine could not be reached.
    func sendFailure(_ error: any Error, timeoutMs: Int) -> EngineError {
        if let e = error as? HTTPClientError, e == .deadlineExceeded {
            return .timeout(backend: name, afterMs: timeoutMs, streaming: false)
        }
        let detail = describe(error)
        if Self.unsent.contains(detail) { return .refused(backend: name, detail: detail) }
        return .unreachable(backend: name, detail: detail)
    }

    /// What ``describe(_:)`` says of errors that happened before any byte of the request left:
    /// no connection (refused, connect timeout), or a pooled connection found closed at the first
    /// write (the engine died since it was last used).
    static let unsent: Set<String> = ["connection refused", "connect timeout", closedChannel]
    static let closedChannel = "I/O on closed channel"

    func collect(_ response: HTTPClientResponse, limit: Int) async -> [UInt8] {
        guard var buffer = try? await withTimeout(5000, { try await response.body.collect(upTo: limit) }) else { return [] }
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            if e == .connectTimeout { return "connect timeout" }
            if e == .remoteConnectionClosed { return "connection closed by the engine" }
            return "\(e)"
        }
        let text = "\(error)"
        if text.contains("refused") || text.contains("Refused") { return "connection refused" }
        if text.contains("ioOnClosedChannel") || text.contains("I/O on closed channel") { return Self.closedChannel }
        return text
    }

    /// Runs `operation`, failing with ``EngineError/timeout`` after `ms` milliseconds.
    /// The bound is a timer on an event loop that cancels the operation's task (it runs on every
    /// non-streamed answer: one task and a NIO timer, where a task group with a `Task.sleep`
    /// child cost two tasks and a timer on Dispatch's threads, issue 16). The operation must
    /// honour cancellation (AsyncHTTPClient's execute and body reads do).
    func withTimeout<T: Sendable>(_ ms: Int, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await operation() }
        let fired = TimerFlag()
        let timer = http.eventLoopGroup.any().scheduleTask(in: .milliseconds(Int64(ms))) {
            fired.set()
            task.cancel()
        }
        defer { timer.cancel() }
        do {
            return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
        } catch {
            if fired.isSet { throw EngineError.timeout(backend: name, afterMs: ms, streaming: false) }
            throw error
        }
    }

    // MARK: Errors

    /// Turns an engine's error answer into the error the client should see. llama.cpp answers
    /// invalid input with 500 (or FastAPI's 422); those are the client's mistakes, so 400.
    func mapEngineError(status: Int, body: [UInt8], endpoint: Endpoint) -> APIError {
        let json = try? JSONValue.parse(body)
        // OpenAI/vLLM: {"error": {"message"}}; Ollama: {"error": "text"}.
        var message = json?["error"]?["message"]?.stringValue ?? json?["error"]?.stringValue ?? json?["message"]?.stringValue
        if message == nil, let detail = json?["detail"] {
            // FastAPI validation errors: [{"loc": ["body", "max_tokens"], "msg": "..."}]
            if let first = detail.arrayValue?.first {
                let loc = (first["loc"]?.arrayValue ?? []).compactMap { $0.stringValue ?? $0.intValue.map(String.init) }.filter { $0 != "body" }
                let param = loc.joined(separator: ".")
                return .invalidRequest("The engine rejected '\(param)': \(first["msg"]?.stringValue ?? "invalid value").",
                                       param: param.isEmpty ? nil : param, code: "invalid_value")
            }
            message = detail.stringValue
        }
        let text = message ?? String(decoding: body.prefix(300), as: UTF8.self)
        switch status {
        case 400..<500:
            var e = APIError(status: status == 422 ? 400 : status, message: "The engine rejected the request: \(text)", type: "invalid_request_error",
                             param: json?["error"]?["param"]?.stringValue, code: json?["error"]?["code"]?.stringValue)
            if status == 401 || status == 403 { e = .badGateway("The engine '\(name)' refused the gateway's credentials (\(status)); the operator must fix the backend configuration.") }
            if status == 404 { e = .badGateway("The engine '\(name)' does not serve the model this backend maps it to; the operator must fix the backend's model mapping.") }
            if status == 429 { e = .unavailable("The engine '\(name)' is overloaded. Retry in a moment.", retryAfter: 1) }
            return e
        case 500...:
            if let specific = adapter.error(status: status, text: text) { return specific }
            return .badGateway("The engine '\(name)' failed with HTTP \(status): \(text.prefix(300))")
        default:
            return .badGateway("The engine '\(name)' failed with HTTP \(status): \(text.prefix(300))")
        }
    }

    /// What an engine's error text says, without file paths or source lines. With a traceback,
    /// its last exception line ("ValueError: …") is the useful part; otherwise
    /// the meaningful lines, joined. Source lines and file paths are dropped.
    static func engineMessage(of text: String) -> String {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let isException = { (l: String) -> Bool in
            guard let colon = l.firstIndex(of: ":") else { return false }
            let name = l[..<colon]
            return !name.isEmpty && !name.contains(" ") && (name.hasSuffix("Error") || name.hasSuffix("Exception"))
        }
        let meaningful: [String]
        if let exception = lines.last(where: isException) {
            meaningful = [exception]
        } else {
            meaningful = lines.filter { !$0.hasPrefix("Traceback") && !$0.hasPrefix("File ") && !($0.contains("/") && $0.contains(".py")) && !$0.hasPrefix("^") }
        }
        let joined = meaningful.joined(separator: " ")
        return joined.isEmpty ? "no detail" : String(joined.prefix(500))
    }

    // MARK: Usage

    /// The usage of a complete answer: the engine's, else counted with its tokenizer, else estimated.
    func completeUsage(_ json: JSONValue, request: UpstreamRequest) async -> Usage {
        if var usage = Usage(json: json["usage"]) {
            if !request.endpoint.spec.generates { usage.completionTokens = 0 }
            return usage
        }
        // vLLM's rerank usage has only `total_tokens` (everything it read).
        if !request.endpoint.spec.generates, let total = json["usage"]?["total_tokens"]?.intValue {
            return Usage(promptTokens: total, completionTokens: 0)
        }
        return await countUsage(request: request, output: request.endpoint.spec.answerText(json).content, reasoning: "")
    }

    /// Counts what an engine did not: prompt and output through the engine's tokenizer when it has
    /// one (llama.cpp), else the 4-characters estimate, marked as such.
    func countUsage(request: UpstreamRequest, output: String, reasoning: String) async -> Usage {
        if let p = await adapter.countTokens(adapter.renderedPrompt(request), engine: self),
           let o = await adapter.countTokens(output + reasoning, engine: self) {
            let r = reasoning.isEmpty ? 0 : (await adapter.countTokens(reasoning, engine: self) ?? 0)
            return Usage(promptTokens: p, completionTokens: o, reasoningTokens: r)
        }
        let prompt = InferenceRequest.promptTexts(of: request.body, endpoint: request.endpoint).joined(separator: "\n")
        return Usage(promptTokens: Usage.estimateTokens(prompt), completionTokens: Usage.estimateTokens(output + reasoning),
                     reasoningTokens: Usage.estimateTokens(reasoning), estimated: true)
    }
}

/// Set once by a timeout's timer (read by the task it bounded).
final class TimerFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
