import OpenAIWire

/// Limits of the capability check that are configuration, not catalog data.
public struct CapabilityLimits: Sendable, Equatable {
    /// Largest decoded size of one `data:` image (SPEC S5: 413 for oversized payloads).
    public var maxImageBytes: Int

    public static let standard = CapabilityLimits(maxImageBytes: 10 * 1024 * 1024)

    public init(maxImageBytes: Int) { self.maxImageBytes = maxImageBytes }
}

/// Refuses, before any engine is called, a request the model cannot serve (pipeline step 2):
/// the endpoint's capability, images, tools, data-URL image sizes, and the context length.
/// Each refusal is an OpenAI 400 (413 for an oversized image) naming the `param` to change.
public enum CapabilityCheck {
    /// The rough token estimate used before the engine counts (SPEC S3: 1 token ≈ 4 characters),
    /// on UTF-8 bytes so that it never undercounts non-Latin scripts by much.
    public static func estimatedTokens(_ text: String) -> Int { (text.utf8.count + 3) / 4 }

    public static func check(_ request: InferenceRequest, model entry: CatalogEntry,
                             limits: CapabilityLimits = .standard) throws(APIError) {
        let needed = request.endpoint.spec.capability
        // An embedding model reranks too: the gateway ranks by the cosine of its embeddings.
        let ranksByEmbeddings = needed == Capability.rerank.rawValue && entry.capabilities.contains(.embeddings)
        if needed == Capability.rerank.rawValue && !entry.capabilities.contains(.rerank) && !ranksByEmbeddings {
            throw mismatch("Model '\(entry.id)' cannot rerank: it has neither the 'rerank' capability (a reranker) nor 'embeddings' (ranked by the gateway from its embeddings); it has: \(list(entry.capabilities)). Choose a reranker or an embedding model from GET /v1/models.",
                           param: "model")
        }
        if !entry.capabilities.contains(where: { $0.rawValue == needed }) && !ranksByEmbeddings {
            throw mismatch("Model '\(entry.id)' cannot serve \(request.endpoint.path): it lacks the '\(needed)' capability (it has: \(list(entry.capabilities))). Choose a model with '\(needed)' from GET /v1/models.",
                           param: "model")
        }
        if request.hasTools && !entry.capabilities.contains(.tools) {
            throw mismatch("Model '\(entry.id)' does not support tool calling (no 'tools' capability). Remove 'tools' (and 'tool_choice') from the request, or choose a model with the 'tools' capability from GET /v1/models.",
                           param: "tools")
        }
        if request.hasImages {
            let images = imageParts(of: request.body)
            if !entry.capabilities.contains(.vision) {
                let first = images.first?.param ?? "messages"
                throw mismatch("Model '\(entry.id)' cannot read images (no 'vision' capability), but \(first) is an image_url part. Remove the image parts, or choose a model with the 'vision' capability from GET /v1/models.",
                               param: first)
            }
            for image in images {
                try checkDataURL(image.url, param: image.param, limits: limits)
            }
        }
        try checkContext(request, entry)
    }

    // MARK: Context length

    static func checkContext(_ request: InferenceRequest, _ entry: CatalogEntry) throws(APIError) {
        let context = entry.contextLength
        let how = "estimated as ceil(UTF-8 bytes / 4) since the engine has not counted yet"
        let promptParam = request.endpoint.spec.inputParam
        if request.endpoint.spec.inputsAreSeparate {
            // Each input is processed on its own: the longest one must fit.
            let longest = request.promptTexts.map(estimatedTokens).max() ?? 0
            if longest > context {
                throw tooLong("An input of about \(longest) tokens (\(how)) is over the context length \(context) of model '\(entry.id)'. Split or shorten the \(promptParam).",
                              param: promptParam)
            }
            return
        }
        let prompt = promptTokens(request)
        if prompt > context {
            throw tooLong("The prompt is about \(prompt) tokens (\(how)), over the context length \(context) of model '\(entry.id)'. Shorten the \(promptParam), or choose a model with a longer context_length from GET /v1/models.",
                          param: promptParam)
        }
        guard let maxTokens = request.maxTokens, prompt + maxTokens > context else { return }
        let maxParam = request.body["max_completion_tokens"].map { $0.isNull ? "max_tokens" : "max_completion_tokens" } ?? "max_tokens"
        throw tooLong("The prompt (about \(prompt) tokens, \(how)) plus \(maxParam) \(maxTokens) is \(prompt + maxTokens) tokens, over the context length \(context) of model '\(entry.id)'. Set \(maxParam) to at most \(context - prompt), or shorten the \(promptParam).",
                      param: maxParam)
    }

    /// Prompt tokens: exact for a completions prompt given as token ids, estimated otherwise.
    static func promptTokens(_ request: InferenceRequest) -> Int {
        if let exact = request.endpoint.spec.exactPromptTokens(request.body) { return exact }
        return request.promptTexts.reduce(0) { $0 + estimatedTokens($1) }
    }

    // MARK: Images

    struct ImagePart { let param: String; let url: String }

    static func imageParts(of body: JSONValue) -> [ImagePart] {
        var parts: [ImagePart] = []
        for (i, message) in (body["messages"]?.arrayValue ?? []).enumerated() {
            for (j, part) in (message["content"]?.arrayValue ?? []).enumerated() where part["type"]?.stringValue == "image_url" {
                if let url = part["image_url"]?["url"]?.stringValue {
                    parts.append(ImagePart(param: "messages[\(i)].content[\(j)].image_url.url", url: url))
                }
            }
        }
        return parts
    }

    /// A `data:` URL must be base64 (`data:image/png;base64,…`) and decode to at most
    /// `limits.maxImageBytes`. Other URLs are the engine's business.
    static func checkDataURL(_ url: String, param: String, limits: CapabilityLimits) throws(APIError) {
        guard url.utf8.starts(with: "data:".utf8) else { return }
        guard let comma = url.utf8.firstIndex(of: UInt8(ascii: ",")) else {
            throw APIError.invalidValue(param, "a data: URL needs a ',' before its data, like 'data:image/png;base64,iVBOR…'.")
        }
        let header = String(url[url.startIndex..<comma])
        guard header.hasSuffix(";base64") else {
            throw APIError.invalidValue(param, "images in data: URLs must be base64-encoded ('data:image/png;base64,…').")
        }
        let data = url.utf8[url.utf8.index(after: comma)...]
        var length = 0, padding = 0
        for b in data where b != UInt8(ascii: "\n") && b != UInt8(ascii: "\r") {
            length += 1
            padding = b == UInt8(ascii: "=") ? padding + 1 : 0
        }
        let decoded = length / 4 * 3 + max(0, length % 4 - 1) - min(padding, 2)
        if decoded > limits.maxImageBytes {
            throw APIError(status: 413,
                           message: "The image at \(param) is \(decoded) bytes once decoded, over the limit of \(limits.maxImageBytes) bytes (\(mib(limits.maxImageBytes))). Resize or compress it and send it again.",
                           type: "invalid_request_error", param: param, code: "image_too_large")
        }
    }

    // MARK: Errors

    static func mismatch(_ message: String, param: String) -> APIError {
        APIError.invalidRequest(message, param: param, code: "model_capability_mismatch")
    }

    static func tooLong(_ message: String, param: String) -> APIError {
        APIError.invalidRequest(message, param: param, code: "context_length_exceeded")
    }

    static func list(_ caps: Set<Capability>) -> String { caps.map(\.rawValue).sorted().joined(separator: ", ") }

    static func mib(_ bytes: Int) -> String {
        bytes % (1024 * 1024) == 0 ? "\(bytes / (1024 * 1024)) MiB" : "\(bytes) bytes"
    }
}
