import OpenAIWire

/// What went wrong talking to an engine. `beforeFirstByte` errors may be retried on another
/// backend; the others reached the client already.
public enum EngineError: Error, Sendable, Equatable {
    /// The connection closed before a response head (the request may have reached the engine).
    case unreachable(backend: String, detail: String)
    /// Nothing of the request was sent: no connection was made (refused, or the connect timeout
    /// passed), or the pooled connection was found closed at the first write.
    case refused(backend: String, detail: String)
    /// No response head within `first_byte_ms`, or a stream silent for `idle_ms`.
    case timeout(backend: String, afterMs: Int, streaming: Bool)
    /// The engine answered with an error status (already mapped to what the client should see).
    case rejected(backend: String, error: APIError)
    /// The engine's answer could not be understood.
    case malformed(backend: String, detail: String)
    /// A stream ended without its end marker (engine died or cut the connection).
    case streamCut(backend: String, detail: String)
    /// Every backend serving the model stayed full for the whole queue deadline.
    case saturated(model: String, waitedMs: Int, retryAfter: Int)

    /// The client-facing error.
    public var apiError: APIError {
        switch self {
        case .unreachable(let b, let d), .refused(let b, let d):
            return .badGateway("The inference engine '\(b)' could not be reached (\(d)). Retry in a moment; if it persists, the operator must check the engine.")
        case .timeout(let b, let ms, let streaming):
            return .gatewayTimeout(streaming
                ? "The inference engine '\(b)' sent nothing for \(ms) ms in the middle of the stream. Retry; a smaller max_tokens helps."
                : "The inference engine '\(b)' did not answer within \(ms) ms. Retry, or lower max_tokens.")
        case .rejected(_, let e):
            return e
        case .malformed(let b, let d):
            return .badGateway("The inference engine '\(b)' sent an answer we could not read (\(d)). Retry; report the request id to the operator if it persists.")
        case .streamCut(let b, let d):
            var e = APIError.badGateway("The inference engine '\(b)' ended the stream before it was complete (\(d)). The partial answer is billed only for tokens produced; retry for a full answer.")
            e.code = "upstream_stream_error"
            return e
        case .saturated(let model, let waited, let retry):
            var e = APIError.unavailable("Every engine serving '\(model)' is busy; the request waited \(waited) ms in the queue. Retry after \(retry) s.",
                                         retryAfter: retry)
            e.code = "engines_saturated"
            return e
        }
    }

    /// The outcome recorded in the request row.
    public var outcome: String {
        switch self {
        case .timeout: return "engine_timeout"
        case .saturated: return "saturated"
        case .rejected(_, let e) where e.status < 500: return "rejected"
        default: return "upstream_error"
        }
    }
}
