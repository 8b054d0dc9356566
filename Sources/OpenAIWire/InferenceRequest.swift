/// How much work one request may ask for (config `limits:`). Each excess is a 400 that names the
/// limit, before anything reaches an engine.
public struct RequestLimits: Sendable, Equatable {
    /// Inputs in one embeddings call (OpenAI's own limit is 2048).
    public var maxEmbeddingInputs = 2048
    /// Messages in one chat request.
    public var maxMessages = 2048
    /// Characters of prompt text (all messages, prompts or inputs together).
    public var maxInputCharacters = 2_000_000
    /// Documents in one rerank request (Cohere's recommended maximum).
    public var maxRerankDocuments = 1000

    public init() {}
}

/// What the gateway needs to know of a request. The body itself is kept as ``JSONValue`` and
/// forwarded with targeted edits; these fields are only read (and validated) from it.
public struct InferenceRequest: Sendable {
    public var endpoint: Endpoint
    public var body: JSONValue
    public var model: String
    public var stream: Bool
    public var includeUsage: Bool
    public var maxTokens: Int?
    public var hasTools: Bool
    public var hasImages: Bool

    /// Parses and validates a request body. Errors name the offending `param`.
    public init(endpoint: Endpoint, bytes: [UInt8], limits: RequestLimits = RequestLimits()) throws(APIError) {
        let body: JSONValue
        do {
            body = try JSONValue.parse(bytes)
        } catch {
            throw APIError.invalidJSON(bytes.isEmpty ? "the body is empty" : "\(error)")
        }
        try self.init(endpoint: endpoint, body: body, limits: limits)
    }

    public init(endpoint: Endpoint, body: JSONValue, limits: RequestLimits = RequestLimits()) throws(APIError) {
        guard case .object = body else {
            throw APIError.invalidRequest("The request body must be a JSON object, but got \(body.typeName).")
        }
        self.endpoint = endpoint
        self.body = body
        self.model = try Self.requiredString(body, "model")
        if model.isEmpty { throw APIError.invalidValue("model", "it must not be empty. Name a model from GET /v1/models.") }

        self.stream = false
        self.includeUsage = false
        self.maxTokens = nil
        self.hasTools = false
        self.hasImages = false

        try endpoint.spec.validate(&self, limits: limits)

        let characters = endpoint.spec.texts(body).reduce(0) { $0 + $1.text.utf8.count }
        if characters > limits.maxInputCharacters {
            throw APIError.invalidRequest("The request's text is too long: \(characters) bytes of prompt text; at most \(limits.maxInputCharacters) are allowed (limit max_input_characters).",
                                          param: endpoint.spec.inputParam, code: "input_too_large")
        }

        if endpoint.spec.generates {
            if let s = body["stream"], !s.isNull {
                guard let b = s.boolValue else { throw APIError.invalidType("stream", expected: "a boolean", got: s) }
                stream = b
            }
            if let options = body["stream_options"], !options.isNull {
                guard case .object = options else { throw APIError.invalidType("stream_options", expected: "an object", got: options) }
                if !stream { throw APIError.invalidValue("stream_options", "it is only allowed when 'stream' is true.") }
                if let u = options["include_usage"], !u.isNull {
                    guard let b = u.boolValue else { throw APIError.invalidType("stream_options.include_usage", expected: "a boolean", got: u) }
                    includeUsage = b
                }
            }
            try Self.checkNumber(body, "temperature", 0...2)
            try Self.checkNumber(body, "top_p", 0...1)
            try Self.checkNumber(body, "presence_penalty", -2...2)
            try Self.checkNumber(body, "frequency_penalty", -2...2)
            if let n = try Self.optionalCount(body, "n"), n != 1 {
                throw APIError.invalidValue("n", "only n=1 is supported; send several requests for several choices.")
            }
            if let seed = body["seed"], !seed.isNull, seed.intValue == nil {
                throw APIError.invalidType("seed", expected: "an integer", got: seed)
            }
            if let bias = body["logit_bias"], !bias.isNull {
                guard let entries = bias.objectValue else { throw APIError.invalidType("logit_bias", expected: "an object of token id → bias", got: bias) }
                for (token, value) in entries {
                    guard Int(token) != nil, token.allSatisfy(\.isNumber) else {
                        throw APIError.invalidValue("logit_bias", "keys must be token ids (integers as strings), but got '\(token)'.")
                    }
                    guard let v = value.doubleValue, (-100...100).contains(v) else {
                        throw APIError.invalidValue("logit_bias", "the bias of token \(token) must be a number between -100 and 100.")
                    }
                }
            }
            if let stop = body["stop"], !stop.isNull {
                switch stop {
                case .string: break
                case .array(let items) where items.count <= 4 && items.allSatisfy({ $0.stringValue != nil }): break
                default: throw APIError.invalidType("stop", expected: "a string or an array of up to 4 strings", got: stop)
                }
            }
        }
    }

    static func requiredString(_ body: JSONValue, _ key: String) throws(APIError) -> String {
        guard let value = body[key], !value.isNull else { throw APIError.missingParameter(key) }
        guard let s = value.stringValue else { throw APIError.invalidType(key, expected: "a string", got: value) }
        return s
    }

    /// A non-negative integer parameter (`max_tokens`, `n`); nil when absent or null.
    static func optionalCount(_ body: JSONValue, _ key: String) throws(APIError) -> Int? {
        guard let value = body[key], !value.isNull else { return nil }
        guard let n = value.intValue else { throw APIError.invalidType(key, expected: "an integer", got: value) }
        if n < 1 { throw APIError.invalidValue(key, "it must be at least 1, but got \(n).") }
        return n
    }

    static func checkNumber(_ body: JSONValue, _ key: String, _ range: ClosedRange<Double>) throws(APIError) {
        guard let value = body[key], !value.isNull else { return }
        guard let d = value.doubleValue else { throw APIError.invalidType(key, expected: "a number", got: value) }
        if !range.contains(d) {
            throw APIError.invalidValue(key, "it must be between \(JSONValue.format(range.lowerBound)) and \(JSONValue.format(range.upperBound)), but got \(JSONValue.format(d)).")
        }
    }

    static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool", "function"]

    static func validateMessage(_ message: JSONValue, index i: Int, hasImages: inout Bool) throws(APIError) {
        let p = "messages[\(i)]"
        guard case .object = message else { throw APIError.invalidType(p, expected: "an object", got: message) }
        guard let roleValue = message["role"], !roleValue.isNull else { throw APIError.missingParameter("\(p).role") }
        guard let role = roleValue.stringValue else { throw APIError.invalidType("\(p).role", expected: "a string", got: roleValue) }
        guard roles.contains(role) else {
            throw APIError.invalidValue("\(p).role", "'\(role)' is not a role; use one of system, developer, user, assistant, tool.")
        }
        let content = message["content"] ?? .null
        switch content {
        case .string: break
        case .null:
            // An assistant message may carry tool calls instead of content.
            if role != "assistant" { throw APIError.missingParameter("\(p).content") }
        case .array(let parts):
            for (j, part) in parts.enumerated() {
                let pp = "\(p).content[\(j)]"
                guard let type = part["type"]?.stringValue else { throw APIError.missingParameter("\(pp).type") }
                switch type {
                case "text":
                    guard part["text"]?.stringValue != nil else { throw APIError.invalidType("\(pp).text", expected: "a string", got: part["text"] ?? .null) }
                case "image_url":
                    guard part["image_url"]?["url"]?.stringValue != nil else { throw APIError.missingParameter("\(pp).image_url.url") }
                    hasImages = true
                case "input_audio", "file", "refusal": break
                default:
                    throw APIError.invalidValue("\(pp).type", "'\(type)' is not a content part type; use 'text' or 'image_url'.")
                }
            }
        default:
            throw APIError.invalidType("\(p).content", expected: "a string or an array of content parts", got: content)
        }
    }

    /// All the text a user or tool put into the request (what the prompt shield inspects and what
    /// the fallback estimate counts).
    public var promptTexts: [String] { Self.promptTexts(of: body, endpoint: endpoint) }

    public static func promptTexts(of body: JSONValue, endpoint: Endpoint) -> [String] {
        endpoint.spec.texts(body).map(\.text)
    }

    /// The inputs of an embeddings request given as token ids (`[1, 2]` is one input, `[[1, 2], [3]]`
    /// two); nil when the input is text. Ids are non-negative integers.
    public static func tokenInputs(_ input: JSONValue) -> [[Int]]? {
        guard let parts = input.arrayValue, !parts.isEmpty else { return nil }
        func ids(_ v: JSONValue) -> [Int]? {
            guard let items = v.arrayValue else { return nil }
            let out = items.compactMap(\.intValue)
            return out.count == items.count && out.allSatisfy({ $0 >= 0 }) ? out : nil
        }
        if let one = ids(input) { return [one] }
        let many = parts.compactMap(ids)
        return many.count == parts.count ? many : nil
    }

    static func texts(of content: JSONValue) -> [String] {
        switch content {
        case .string(let s): return [s]
        case .array(let parts): return parts.compactMap { $0.stringValue ?? $0["text"]?.stringValue }
        default: return []
        }
    }
}
