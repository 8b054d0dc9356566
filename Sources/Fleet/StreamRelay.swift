import AsyncHTTPClient
import NIOCore
import OpenAIWire
import Synchronization

/// What a finished stream produced, for counting its usage.
struct StreamSummary: Sendable {
    var output = ""
    var reasoning = ""
    var engineUsage: Usage?
    var sawDone = false
}

/// Last time bytes arrived from the engine, shared between the reader and its watchdog.
final class Activity: Sendable {
    private static let origin = ContinuousClock.now
    private let last = Atomic<Int64>(0)
    init() { touch() }
    func touch() { last.store(Self.nowMs(), ordering: .relaxed) }
    var silentMs: Int64 { Self.nowMs() - last.load(ordering: .relaxed) }
    static func nowMs() -> Int64 {
        let c = (ContinuousClock.now - origin).components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}

extension Engine {
    /// Relays an engine's SSE stream as ``StreamEvent``s. Each chunk is handed on as soon as it is
    /// parsed (no buffering of the answer). Ending the consumer's iteration (client hang-up)
    /// cancels the reader, which closes the engine connection so the engine stops generating.
    func relay(_ response: HTTPClientResponse, request: UpstreamRequest) -> EngineStream {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: StreamEvent.self)
        let task = Task {
            do {
                let summary = try await self.pump(response, request: request, continuation)
                if !summary.sawDone {
                    throw EngineError.streamCut(backend: self.name, detail: "the connection closed before 'data: [DONE]'")
                }
                let usage: Usage
                if let u = summary.engineUsage {
                    usage = u
                } else {
                    usage = await self.countUsage(request: request, output: summary.output, reasoning: summary.reasoning)
                }
                continuation.yield(.usage(usage))
                continuation.finish()
            } catch is CancellationError {
                continuation.finish(throwing: CancellationError())
            } catch let error as EngineError {
                continuation.finish(throwing: error)
            } catch {
                if Task.isCancelled {
                    continuation.finish(throwing: CancellationError())
                } else {
                    continuation.finish(throwing: EngineError.streamCut(backend: self.name, detail: self.describe(error)))
                }
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return EngineStream(events: stream, reader: task)
    }

    /// Reads the body under a watchdog that fails the stream after `idle_ms` of silence.
    private func pump(_ response: HTTPClientResponse, request: UpstreamRequest,
                      _ continuation: AsyncThrowingStream<StreamEvent, any Error>.Continuation) async throws -> StreamSummary {
        let activity = Activity()
        let idleMs = config.timeouts.idleMs
        return try await withThrowingTaskGroup(of: StreamSummary?.self) { group in
            group.addTask {
                try await self.read(response, request: request, activity: activity, continuation)
            }
            group.addTask { [name] in
                while true {
                    try await Task.sleep(for: .milliseconds(max(50, idleMs / 4)))
                    if activity.silentMs > idleMs { throw EngineError.timeout(backend: name, afterMs: idleMs, streaming: true) }
                }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let summary = result { return summary }
            }
            throw CancellationError()
        }
    }

    private func read(_ response: HTTPClientResponse, request: UpstreamRequest, activity: Activity,
                      _ continuation: AsyncThrowingStream<StreamEvent, any Error>.Continuation) async throws -> StreamSummary {
        var parser = SSEParser()
        var summary = StreamSummary()
        for try await buffer in response.body {
            activity.touch()
            for data in parser.feed(buffer.readableBytesView) {
                try handle(data, request: request, summary: &summary, continuation)
            }
        }
        if let data = parser.finish() { try handle(data, request: request, summary: &summary, continuation) }
        return summary
    }

    private func handle(_ data: [UInt8], request: UpstreamRequest, summary: inout StreamSummary,
                        _ continuation: AsyncThrowingStream<StreamEvent, any Error>.Continuation) throws {
        if data.elementsEqual("[DONE]".utf8) { summary.sawDone = true; return }
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
            switch request.endpoint {
            case .chat:
                if let text = choice["delta"]?["content"]?.stringValue { summary.output += text }
                if let text = choice["delta"]?["reasoning_content"]?.stringValue { summary.reasoning += text }
            case .completions:
                if let text = choice["text"]?.stringValue { summary.output += text }
            case .embeddings: break
            }
        }
        continuation.yield(.chunk(chunk))
    }
}
