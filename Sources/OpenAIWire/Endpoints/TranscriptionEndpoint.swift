/// `POST /v1/audio/transcriptions` (Whisper-style, OpenAI's shape): a multipart form with the
/// audio `file`, `model`, and optionally `language`, `prompt`, `response_format` (json, text,
/// verbose_json, srt, vtt) and `temperature`. The form's fields (not the file) are the request
/// body the pipeline validates; the file travels beside it to the engine. Billed per started
/// minute of audio, the duration read by the gateway from the file's header.
public struct TranscriptionEndpoint: EndpointSpec {
    public let id = "audio.transcriptions"
    public let path = "/v1/audio/transcriptions"
    public let objectName = "transcription"
    public let grantName = "audio"
    public let capability = "transcription"
    public let inputParam = "file"
    public var generates: Bool { false }
    public var billedUnit: BilledUnit { .audioSeconds }
    public var bodyFormat: BodyFormat { .multipart }
    /// OpenAI's limit for the file (25 MB), plus room for the form around it.
    public var maxBodyBytes: Int? { Self.maxFileBytes + 64 * 1024 }
    public static let maxFileBytes = 25 * 1024 * 1024

    public static let formats = ["json", "text", "srt", "verbose_json", "vtt"]
    /// The form fields this endpoint reads (others are refused: 400 naming the field).
    public static let fields: Set<String> = ["model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]", "timestamp_granularities"]

    public init() {}

    public func validate(_ request: inout InferenceRequest, limits: RequestLimits) throws(APIError) {
        let body = request.body
        if let f = body["response_format"]?.stringValue, !Self.formats.contains(f) {
            throw APIError.invalidValue("response_format", "'\(f)' is not a format; use json, text, srt, verbose_json or vtt.")
        }
        if let t = body["temperature"]?.stringValue {
            guard let v = Double(t), v.isFinite else { throw APIError.invalidValue("temperature", "it must be a number between 0 and 1, but got '\(t.prefix(32))'.") }
            if v < 0 || v > 1 { throw APIError.invalidValue("temperature", "it must be between 0 and 1, but got \(t).") }
        }
        if let l = body["language"]?.stringValue {
            // ISO-639-1 (`en`, `de`), as Whisper takes it.
            guard (2...3).contains(l.count), l.allSatisfy({ ("a"..."z").contains($0) }) else {
                throw APIError.invalidValue("language", "use an ISO-639-1 code such as 'en' or 'de'.")
            }
        }
        for g in [body["timestamp_granularities[]"], body["timestamp_granularities"]].compactMap({ $0?.stringValue }) {
            guard g == "word" || g == "segment" else { throw APIError.invalidValue("timestamp_granularities", "use 'word' or 'segment'.") }
            if body["response_format"]?.stringValue != "verbose_json" {
                throw APIError.invalidValue("timestamp_granularities", "it needs response_format 'verbose_json'.")
            }
        }
    }

    /// The prompt (style hints for the model) is the only text; the audio is not text.
    public func texts(_ body: JSONValue) -> [RoledText] {
        body["prompt"]?.stringValue.map { [RoledText(role: "user", text: $0)] } ?? []
    }

    public func inspectedTexts(_ body: JSONValue) -> [RoledText] { [] }
    public func routingKey(_ body: JSONValue) -> String { "" }
    public func answerText(_ answer: JSONValue) -> (content: String, reasoning: String) { ("", "") }
    public func deltaText(_ choice: JSONValue) -> (content: String, reasoning: String) { ("", "") }

    /// The response format asked (default json).
    public static func format(_ body: JSONValue) -> String { body["response_format"]?.stringValue ?? "json" }

    /// OpenAI's usage of a transcription billed by duration: whole seconds, rounded up.
    public static func usage(durationMs: Int) -> JSONValue {
        .object([("type", "duration"), ("seconds", .int((durationMs + 999) / 1000))])
    }

    /// The engine's answer as it is: JSON formats as a JSON object (the pipeline adds `usage`),
    /// text formats as a string.
    public func clientAnswer(_ answer: JSONValue, request: JSONValue, usage: Usage) -> JSONValue { answer }

    /// The form fields as the JSON object the pipeline validates: every field a string, the file
    /// apart. Errors name the field.
    public static func body(of parts: [Multipart.Part]) throws(APIError) -> (body: JSONValue, file: Multipart.Part) {
        var members: [(String, JSONValue)] = []
        var file: Multipart.Part?
        for p in parts {
            if p.name == "file" {
                if file != nil { throw APIError.invalidValue("file", "send exactly one file.") }
                file = p
                continue
            }
            guard fields.contains(p.name) else {
                throw APIError.invalidRequest("Unknown parameter '\(p.name.prefix(64))'; a transcription takes file, model, language, prompt, response_format, temperature and timestamp_granularities[].",
                                              param: String(p.name.prefix(64)), code: "unknown_parameter")
            }
            if members.contains(where: { $0.0 == p.name }) && !p.name.hasPrefix("timestamp") {
                throw APIError.invalidValue(p.name, "it is given twice.")
            }
            members.append((p.name, .string(p.text)))
        }
        guard let file else { throw APIError.missingParameter("file") }
        if file.data.isEmpty { throw APIError.invalidValue("file", "the uploaded file is empty.") }
        if file.data.count > maxFileBytes {
            throw APIError(status: 413, message: "The audio file is too large: \(file.data.count) bytes; at most \(maxFileBytes) bytes (25 MB) are allowed. Split the audio or compress it.",
                           type: "invalid_request_error", param: "file", code: "file_too_large")
        }
        return (.object(members), file)
    }
}
