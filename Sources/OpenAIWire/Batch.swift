/// The batch API's wire rules (issue 17), plain values only: validating an input file (JSONL,
/// one request per line) and the status machine of a batch.

/// What a valid input file holds: the one endpoint of every line, and the lines in order.
public struct BatchInput: Sendable, Equatable {
    public struct Line: Sendable, Equatable {
        /// 1-based, as editors count.
        public let number: Int
        public let customID: String
        public let body: JSONValue
    }

    public let endpoint: Endpoint
    public let lines: [Line]

    /// The endpoints a batch may call, by path.
    public static let endpoints: [String: Endpoint] = [
        Endpoint.chat.path: .chat, Endpoint.completions.path: .completions, Endpoint.embeddings.path: .embeddings,
    ]

    public static let maxCustomIDLength = 512

    /// Validates a whole file, line by line. Every error names the line (`Line 7: …`), param `file`,
    /// code `invalid_batch_file`. Blank lines at the end are ignored; a blank line in between is
    /// an error (the line numbers stay the file's).
    public init(jsonl bytes: [UInt8], maxRequests: Int, limits: RequestLimits = RequestLimits()) throws(APIError) {
        var lines: [Line] = []
        var seen = Set<String>()
        var endpoint: Endpoint?
        var number = 0
        var blankAt: Int?
        var start = 0
        let n = bytes.count
        while start < n {
            var end = start
            while end < n && bytes[end] != 0x0A { end += 1 }
            number += 1
            var slice = bytes[start..<end]
            if slice.last == 0x0D { slice = slice.dropLast() }
            start = end + 1
            if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                if blankAt == nil { blankAt = number }
                continue
            }
            if let b = blankAt { throw Self.error(b, "the line is empty. Put exactly one JSON request object on each line, with no blank lines between them.") }
            guard lines.count < maxRequests else {
                throw Self.error(number, "the file has more than \(maxRequests) requests, the most one batch may hold. Split it into several files.",
                                 code: "too_many_requests")
            }
            let value: JSONValue
            do { value = try JSONValue.parse(slice) } catch {
                throw Self.error(number, "the line is not valid JSON (\(error)). Each line must be one JSON object.")
            }
            guard let fields = value.objectValue else { throw Self.error(number, "expected a JSON object, got \(value.typeName).") }
            for (k, _) in fields where !["custom_id", "method", "url", "body"].contains(k) {
                throw Self.error(number, "unknown field '\(k.prefix(64))'. A line has exactly custom_id, method, url and body.")
            }
            guard let customID = value["custom_id"]?.stringValue, !customID.isEmpty else {
                throw Self.error(number, "'custom_id' is missing or not a non-empty string. Give every request a unique custom_id to match its result.")
            }
            guard customID.utf8.count <= Self.maxCustomIDLength else {
                throw Self.error(number, "'custom_id' is longer than \(Self.maxCustomIDLength) bytes.")
            }
            guard seen.insert(customID).inserted else {
                throw Self.error(number, "custom_id '\(customID.prefix(64))' is used by an earlier line. Each custom_id must be unique within the file.")
            }
            guard value["method"]?.stringValue == "POST" else {
                throw Self.error(number, "'method' must be \"POST\".")
            }
            guard let url = value["url"]?.stringValue, let e = Self.endpoints[url] else {
                throw Self.error(number, "'url' must be one of \(Self.endpoints.keys.sorted().joined(separator: ", ")).")
            }
            if let first = endpoint, first != e {
                throw Self.error(number, "'url' is \(url), but earlier lines use \(first.path). All requests of one batch must call the same endpoint.")
            }
            endpoint = e
            guard let body = value["body"], case .object = body else {
                throw Self.error(number, "'body' is missing or not a JSON object: put the request you would send to \(url) there.")
            }
            if body["stream"]?.boolValue == true {
                throw Self.error(number, "'body.stream' is true; batch requests cannot stream. Leave it out.")
            }
            do {
                _ = try InferenceRequest(endpoint: e, body: body, limits: limits)
            } catch {
                throw Self.error(number, "the body is not a valid \(url) request: \(error.message)", param: error.param.map { "body.\($0)" })
            }
            lines.append(Line(number: number, customID: customID, body: body))
        }
        guard let endpoint, !lines.isEmpty else {
            throw APIError.invalidRequest("The file holds no request. Put one JSON request object per line (JSONL).", param: "file", code: "invalid_batch_file")
        }
        self.endpoint = endpoint
        self.lines = lines
    }

    static func error(_ line: Int, _ what: String, code: String = "invalid_batch_file", param: String? = nil) -> APIError {
        var e = APIError.invalidRequest("Line \(line) of the file: \(what)", param: "file", code: code)
        if let param { e.message += " (\(param))" }
        return e
    }
}

/// A batch's status (OpenAI's values) and the moves allowed between them:
/// validating → in_progress → finalizing → completed; validating → failed;
/// validating / in_progress / finalizing → cancelling → cancelled; in_progress → expired (24 h).
public enum BatchStatus: String, Sendable, CaseIterable {
    case validating, failed
    case inProgress = "in_progress"
    case finalizing, completed, expired, cancelling, cancelled

    public var isTerminal: Bool { [.failed, .completed, .expired, .cancelled].contains(self) }

    public func canMove(to next: BatchStatus) -> Bool {
        switch (self, next) {
        case (.validating, .inProgress), (.validating, .failed), (.validating, .cancelling),
             (.inProgress, .finalizing), (.inProgress, .cancelling), (.inProgress, .expired),
             (.finalizing, .completed), (.finalizing, .cancelling), (.finalizing, .expired),
             (.cancelling, .cancelled):
            return true
        default:
            return false
        }
    }

    /// The Batch object's timestamp field set when a batch enters this status.
    public var timestampField: String? {
        switch self {
        case .validating: return nil
        case .inProgress: return "in_progress_at"
        case .finalizing: return "finalizing_at"
        case .completed: return "completed_at"
        case .failed: return "failed_at"
        case .expired: return "expired_at"
        case .cancelling: return "cancelling_at"
        case .cancelled: return "cancelled_at"
        }
    }
}
