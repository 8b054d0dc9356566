import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OpenAIWire
import Quotas

/// Gives every request an id (`x-request-id`) and turns every error, ours or the framework's,
/// into OpenAI's error shape with the right status. Nothing escapes as a bare 500.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let maxBodyBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.requestID = RequestIDs.next()
        context.maxBodyBytes = maxBodyBytes
        let id = context.requestID
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = errorResponse(error)
        } catch let error as HTTPError {
            response = errorResponse(map(error, request: request))
        } catch is NIOTooManyBytesError {
            response = errorResponse(.payloadTooLarge(limit: maxBodyBytes))
        } catch let error as any HTTPResponseError {
            response = errorResponse(APIError(status: Int(error.status.code), message: "\(error)", type: "invalid_request_error"))
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(error)", "request_id": "\(id)"])
            response = errorResponse(.server())
        }
        response.headers[.xRequestID] = id
        return response
    }

    func map(_ error: HTTPError, request: Request) -> APIError {
        switch error.status {
        case .notFound:
            return .notFound("Unknown request URL: \(request.method) \(request.uri.path). See the API reference for the available endpoints (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models).")
        case .methodNotAllowed:
            return APIError(status: 405, message: "Method \(request.method) is not allowed on \(request.uri.path).", type: "invalid_request_error", code: "method_not_allowed")
        case .contentTooLarge:
            return .payloadTooLarge(limit: maxBodyBytes)
        default:
            return APIError(status: Int(error.status.code), message: error.body ?? error.status.reasonPhrase,
                            type: error.status.code >= 500 ? "server_error" : "invalid_request_error")
        }
    }
}

/// A request's body, at most `limit` bytes: a declared or actual excess is OpenAI's 413 naming the
/// limit, whether the body has a Content-Length or is chunked.
func readBody(_ request: Request, limit: Int) async throws -> [UInt8] {
    if let length = request.headers.value(of: .contentLength).flatMap(Int.init), length > limit {
        throw APIError.payloadTooLarge(limit: limit)
    }
    do {
        var buffer = try await request.body.collect(upTo: limit)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    } catch let e as HTTPError where e.status == .contentTooLarge {
        throw APIError.payloadTooLarge(limit: limit)
    } catch is NIOTooManyBytesError {
        throw APIError.payloadTooLarge(limit: limit)
    }
}

func errorResponse(_ error: APIError) -> Response {
    var headers: HTTPFields = [.contentType: "application/json"]
    for (name, value) in error.headers {
        if let field = HTTPField.Name.named(name) { headers[field] = value }
    }
    return Response(status: HTTPResponse.Status(code: error.status), headers: headers,
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: error.json.serialized())))
}

func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
    jsonResponse(serialized: value.serialized(), status: status, headers: extra)
}

/// A JSON answer already serialized (when the same bytes are also kept elsewhere).
func jsonResponse(serialized bytes: [UInt8], status: HTTPResponse.Status = .ok, headers extra: consuming HTTPFields = [:]) -> Response {
    var headers = extra  // the caller's fields, not a copy of them
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
}

extension HTTPFields {
    /// The value of `name`, as the subscript gives it, without its cost when the field is there
    /// once: the subscript joins the values of every field of that name into a new string (a
    /// request's `Authorization` and `Content-Length`: ≈ 1 % of the CPU per request, issue 16).
    /// Repeated fields are joined as the subscript joins them.
    func value(of name: HTTPField.Name) -> String? {
        var found: String?
        for field in self where field.name == name {
            if found != nil { return self[name] }
            found = field.value
        }
        return found
    }
}

extension HTTPField.Name {
    static let xRequestID = HTTPField.Name("x-request-id")!
    static let xBackend = HTTPField.Name("x-llmaas-backend")!
    static let xKeyExpires = HTTPField.Name("x-llmaas-key-expires")!
    static let xKeySuccessor = HTTPField.Name("x-llmaas-key-successor")!

    /// A field name by its text; the rate-limit names every answer carries are parsed once
    /// (`HTTPField.Name(_:)` validates and lowercases a copy of the text every time; issue 16).
    static func named(_ name: String) -> HTTPField.Name? {
        rateLimitNames[name] ?? HTTPField.Name(name)
    }

    private static let rateLimitNames = Dictionary(uniqueKeysWithValues: RateLimiter.headerNames.map { ($0, HTTPField.Name($0)!) })
}

/// Request ids: `req_` + 24 random base32 characters; unique without coordination.
enum RequestIDs {
    static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    /// `req_` and 24 characters of the alphabet above (in ASCII order): the wall-clock time in
    /// milliseconds (10 characters, 50 bits, most significant first), then 70 random bits. Ids
    /// made in a later millisecond sort after earlier ones, so the ledger's primary-key index
    /// (`requests.id`) takes a group commit's rows on its last page rather than one random page
    /// per row — each page a group commit touches is a WAL frame written, and read first when not
    /// cached (issue 16). The random part keeps ids unguessable and unique.
    static func next() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let millis = UInt64(max(0, now.tv_sec)) * 1000 + UInt64(max(0, now.tv_nsec) / 1_000_000)
        return make(millis: millis, random: (RandomWords.next(), RandomWords.next()))
    }

    static func make(millis: UInt64, random: (UInt64, UInt64)) -> String {
        String(unsafeUninitializedCapacity: 28) { out in
            for (i, c) in "req_".utf8.enumerated() { out[i] = c }
            for i in 0..<10 { out[4 + i] = alphabet[Int((millis >> UInt64(5 * (9 - i))) & 31)] }
            var a = random.0, b = random.1
            for i in 0..<14 {
                if i < 7 { out[14 + i] = alphabet[Int(a & 31)]; a >>= 5 } else { out[14 + i] = alphabet[Int(b & 31)]; b >>= 5 }
            }
            return 28
        }
    }
}
