/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}` with its HTTP status.
/// Every message says what was wrong and what to do about it.
public struct APIError: Error, Equatable, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    /// Extra response headers (e.g. `Retry-After`).
    public var headers: [(String, String)]

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil,
                headers: [(String, String)] = []) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers
    }

    public static func == (a: APIError, b: APIError) -> Bool {
        a.status == b.status && a.message == b.message && a.type == b.type && a.param == b.param && a.code == b.code
    }

    public var description: String { "\(status) \(type)\(code.map { "/\($0)" } ?? ""): \(message)" }

    public var json: JSONValue {
        .object([("error", .object([
            ("message", .string(message)),
            ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null),
            ("code", code.map(JSONValue.string) ?? .null),
        ]))])
    }

    // MARK: The catalogue of errors (DESIGN §3)

    public static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    public static func invalidJSON(_ detail: String) -> APIError {
        invalidRequest("We could not parse the JSON body of your request (\(detail)). Send a valid JSON object with Content-Type: application/json.",
                       code: "invalid_json")
    }

    public static func missingParameter(_ param: String) -> APIError {
        invalidRequest("Missing required parameter: '\(param)'.", param: param, code: "missing_required_parameter")
    }

    public static func invalidType(_ param: String, expected: String, got value: JSONValue) -> APIError {
        invalidRequest("Invalid type for '\(param)': expected \(expected), but got \(value.typeName).", param: param, code: "invalid_type")
    }

    public static func invalidValue(_ param: String, _ why: String) -> APIError {
        invalidRequest("Invalid value for '\(param)': \(why)", param: param, code: "invalid_value")
    }

    public static let invalidAPIKey = APIError(
        status: 401,
        message: "Invalid API key provided. Check the key in your Authorization header (Bearer KEY) or create a new one.",
        type: "authentication_error", code: "invalid_api_key")

    public static let missingAPIKey = APIError(
        status: 401,
        message: "You didn't provide an API key. Send it in the Authorization header: 'Authorization: Bearer YOUR_KEY'.",
        type: "authentication_error", code: "missing_api_key")

    public static func permissionDenied(_ message: String, code: String = "permission_denied") -> APIError {
        APIError(status: 403, message: message, type: "permission_error", code: code)
    }

    public static func modelNotFound(_ model: String) -> APIError {
        APIError(status: 404,
                 message: "Model '\(model)' does not exist or you do not have access to it. List the available models with GET /v1/models.",
                 type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    public static func notFound(_ message: String) -> APIError {
        APIError(status: 404, message: message, type: "invalid_request_error", code: "not_found")
    }

    /// The client went away before its answer was complete (nginx's 499; nobody reads it, the
    /// ledger and the audit log do).
    public static let clientClosed = APIError(status: 499, message: "The client closed the connection before the answer was complete.",
                                              type: "invalid_request_error", code: "client_closed_request")

    public static func payloadTooLarge(limit: Int) -> APIError {
        APIError(status: 413,
                 message: "Request body too large: the limit is \(limit) bytes. Send a smaller prompt or fewer/smaller images.",
                 type: "invalid_request_error", code: "request_too_large")
    }

    public static func rateLimited(_ message: String = "Rate limit exceeded. Please upgrade your tier or try again later.",
                                   retryAfter: Int, code: String = "rate_limit_exceeded") -> APIError {
        APIError(status: 429, message: message, type: "rate_limit_error", code: code,
                 headers: [("Retry-After", String(max(1, retryAfter)))])
    }

    public static func server(_ message: String = "The server had an error while processing your request. Retry, and contact the operator with the request id if it persists.") -> APIError {
        APIError(status: 500, message: message, type: "server_error", code: "server_error")
    }

    public static func badGateway(_ message: String) -> APIError {
        APIError(status: 502, message: message, type: "server_error", code: "bad_gateway")
    }

    public static func unavailable(_ message: String, retryAfter: Int? = nil) -> APIError {
        APIError(status: 503, message: message, type: "service_unavailable_error", code: "service_unavailable",
                 headers: retryAfter.map { [("Retry-After", String($0))] } ?? [])
    }

    public static func gatewayTimeout(_ message: String) -> APIError {
        APIError(status: 504, message: message, type: "timeout_error", code: "engine_timeout")
    }
}
