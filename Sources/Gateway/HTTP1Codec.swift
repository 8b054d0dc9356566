#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import HTTPTypes
import NIOCore
import NIOHTTPTypes
import OpenAIWire

/// The listener's HTTP/1.1 wire format, read and written here instead of by NIO's llhttp decoder,
/// its response encoder and the HTTP types codec between them (issue 16: those three were ≈ 10 %
/// of the gateway's CPU per request, the codec running `URLComponents` on every request path).
///
/// Reading is strict (RFC 9112), so that no request can be framed two ways: CRLF line ends only,
/// no whitespace before a field's colon, no obsolete line folding, no control characters, one
/// framing (`Content-Length` or `Transfer-Encoding: chunked`, never both; several
/// `Content-Length`s only when they agree), at most one `Host`. Anything else is a
/// ``HTTP1RequestError`` and the connection answers 400 (431 for a head too large) and closes.
public struct HTTP1RequestError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case requestLine, version, field, folding, headTooLarge, tooManyFields, contentLength, conflictingFraming,
             transferEncoding, chunk, duplicateHost
    }
    public let kind: Kind

    public var description: String { "malformed HTTP/1.1 request (\(kind))" }
    /// The status the connection answers with before closing.
    var status: HTTPResponse.Status { kind == .headTooLarge || kind == .tooManyFields ? .init(code: 431) : .badRequest }
}

/// The methods of the requests read on one connection whose answers have not begun, oldest
/// first: the encoder writes no body for an answer to `HEAD`. Touched on the channel's loop only.
final class HTTP1PendingMethods {
    private var methods: [HTTPRequest.Method] = []
    private var first = 0

    func append(_ method: HTTPRequest.Method) { methods.append(method) }

    /// The method of the oldest request not yet answered (nil: none read, e.g. a 400 for bytes
    /// that were no request).
    func takeFirst() -> HTTPRequest.Method? {
        guard first < methods.count else { return nil }
        let m = methods[first]
        first += 1
        if first == methods.count {
            methods.removeAll(keepingCapacity: true)
            first = 0
        }
        return m
    }
}

/// Bytes → ``HTTPRequestPart``s (head, body parts, end), one request after another.
final class HTTP1RequestDecoder: ByteToMessageDecoder {
    typealias InboundOut = HTTPRequestPart

    /// Hummingbird's defaults: 80 KB of head, 1 000 fields.
    static let maxHeadBytes = 80 * 1024
    static let maxFields = 1000
    /// A chunk-size line (with extensions) longer than this is refused.
    static let maxChunkLine = 4096

    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(fields: Int)
    }

    private enum Framing {
        case none
        case length(Int)
        case chunked
    }

    private var state = State.head
    /// Bytes of the current head already searched for its end (so a head arriving in pieces is
    /// not searched again from its start).
    private var scanned = 0
    private let pending: HTTP1PendingMethods

    init(pending: HTTP1PendingMethods) {
        self.pending = pending
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch state {
        case .head:
            return try decodeHead(context: context, buffer: &buffer)
        case .body(let remaining):
            guard let left = passBody(remaining, &buffer, context) else { return .needMoreData }
            if left == 0 { endRequest(context) } else { state = .body(remaining: left) }
            return .continue
        case .chunkSize:
            guard let line = try readLine(&buffer, limit: Self.maxChunkLine) else { return .needMoreData }
            let size = try Self.chunkSize(line)
            state = size == 0 ? .trailers(fields: 0) : .chunkData(remaining: size)
            return .continue
        case .chunkData(let remaining):
            guard let left = passBody(remaining, &buffer, context) else { return .needMoreData }
            state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
            return .continue
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else { return .needMoreData }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw HTTP1RequestError(kind: .chunk) }
            state = .chunkSize
            return .continue
        case .trailers(let fields):
            guard let line = try readLine(&buffer, limit: Self.maxHeadBytes) else { return .needMoreData }
            if line.readableBytes == 0 {
                endRequest(context)
                return .continue
            }
            // Trailer fields are checked as fields and dropped (nothing here reads them).
            guard fields < Self.maxFields else { throw HTTP1RequestError(kind: .tooManyFields) }
            _ = try line.withUnsafeReadableBytes { try Self.field($0) }
            state = .trailers(fields: fields + 1)
            return .continue
        }
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // What is whole is delivered; a request cut short by the client's FIN is dropped (the
        // connection handler learns of the FIN from the channel).
        while buffer.readableBytes > 0, try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    /// Passes on what came of the `remaining` bytes of a body (or chunk); returns how many are
    /// still to come (nil: nothing came).
    private func passBody(_ remaining: Int, _ buffer: inout ByteBuffer, _ context: ChannelHandlerContext) -> Int? {
        guard buffer.readableBytes > 0 else { return nil }
        let n = min(remaining, buffer.readableBytes)
        context.fireChannelRead(wrapInboundOut(.body(buffer.readSlice(length: n)!)))
        return remaining - n
    }

    private func endRequest(_ context: ChannelHandlerContext) {
        state = .head
        context.fireChannelRead(wrapInboundOut(.end(nil)))
    }

    // MARK: the head

    private func decodeHead(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
            buffer.moveReaderIndex(forwardBy: 2)
            scanned = 0
        }
        guard let headLength = findHeadEnd(buffer) else {
            if buffer.readableBytes > Self.maxHeadBytes { throw HTTP1RequestError(kind: .headTooLarge) }
            return .needMoreData
        }
        scanned = 0
        let (request, framing) = try buffer.withUnsafeReadableBytes { raw in
            try Self.parseHead(UnsafeRawBufferPointer(rebasing: raw[0 ..< headLength]))
        }
        buffer.moveReaderIndex(forwardBy: headLength + 4)
        pending.append(request.method)
        context.fireChannelRead(wrapInboundOut(.head(request)))
        switch framing {
        case .none, .length(0): endRequest(context)
        case .length(let n): state = .body(remaining: n)
        case .chunked: state = .chunkSize
        }
        return .continue
    }

    /// The length of the head before its closing CRLF CRLF, nil when it has not all come.
    private func findHeadEnd(_ buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { raw -> Int? in
            let limit = min(raw.count, Self.maxHeadBytes + 4)
            var i = max(3, scanned)
            while i < limit {
                if raw[i] == 0x0A, raw[i - 1] == 0x0D, raw[i - 2] == 0x0A, raw[i - 3] == 0x0D { return i - 3 }
                i += 1
            }
            scanned = limit
            return nil
        }
    }

    private static func parseHead(_ head: UnsafeRawBufferPointer) throws -> (HTTPRequest, Framing) {
        // The request line.
        let requestLineEnd = try lineEnd(head, from: 0)
        let line = UnsafeRawBufferPointer(rebasing: head[0 ..< requestLineEnd])
        guard let sp1 = line.firstIndex(of: 0x20), sp1 > 0,
              let sp2 = line[(sp1 + 1)...].firstIndex(of: 0x20), sp2 > sp1 + 1 else {
            throw HTTP1RequestError(kind: .requestLine)
        }
        let methodBytes = UnsafeRawBufferPointer(rebasing: line[0 ..< sp1])
        let targetBytes = UnsafeRawBufferPointer(rebasing: line[(sp1 + 1) ..< sp2])
        let versionBytes = UnsafeRawBufferPointer(rebasing: line[(sp2 + 1)...])
        // The target: no space or control character (bytes past ASCII pass, as llhttp let them:
        // they cannot change the framing, and the router answers what it does not know).
        guard methodBytes.allSatisfy(isTokenByte), targetBytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw HTTP1RequestError(kind: .requestLine)
        }
        guard versionBytes.count == 8, versionBytes.starts(with: "HTTP/1.".utf8),
              versionBytes[7] == UInt8(ascii: "1") || versionBytes[7] == UInt8(ascii: "0") else {
            throw HTTP1RequestError(kind: .version)
        }
        let http10 = versionBytes[7] == UInt8(ascii: "0")
        guard let method = HTTPRequest.Method(String(decoding: methodBytes, as: UTF8.self)) else {
            throw HTTP1RequestError(kind: .requestLine)
        }
        let path = requestPath(targetBytes)

        // The fields.
        var fields = HTTPFields()
        var authority: String?
        var contentLength: Int?
        var chunked = false
        var count = 0
        var start = requestLineEnd + 2
        while start < head.count {
            let end = try self.lineEnd(head, from: start)
            let fieldLine = UnsafeRawBufferPointer(rebasing: head[start ..< end])
            start = end + 2
            count += 1
            guard count <= maxFields else { throw HTTP1RequestError(kind: .tooManyFields) }
            let (field, value) = try self.field(fieldLine)
            switch field {
            case .contentLength:
                let n = try length(value)
                if let contentLength, contentLength != n { throw HTTP1RequestError(kind: .conflictingFraming) }
                contentLength = n
            case .transferEncoding:
                // Only `chunked`, once, and only in HTTP/1.1: any other coding is refused rather
                // than guessed at.
                guard !http10, !chunked, value.lowercased() == "chunked" else { throw HTTP1RequestError(kind: .transferEncoding) }
                chunked = true
            default:
                break
            }
            if field.canonicalName == "host" {
                guard authority == nil else { throw HTTP1RequestError(kind: .duplicateHost) }
                authority = value
                continue
            }
            fields.append(HTTPField(name: field, value: value))
        }
        if chunked && contentLength != nil { throw HTTP1RequestError(kind: .conflictingFraming) }
        let request = HTTPRequest(method: method, scheme: "http", authority: authority, path: path, headerFields: fields)
        let framing: Framing = chunked ? .chunked : contentLength.map { .length($0) } ?? .none
        return (request, framing)
    }

    /// Where the line that starts at `from` ends: the index of its CRLF's CR, or the head's end
    /// (its last line's CRLF is part of the CRLF CRLF that ends the head). A CR not followed by an
    /// LF is refused (a lone LF is refused by every line's own check).
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from: Int) throws -> Int {
        var i = from
        while i < bytes.count {
            if bytes[i] == 0x0D {
                guard i + 1 < bytes.count, bytes[i + 1] == 0x0A else { throw HTTP1RequestError(kind: .field) }
                return i
            }
            i += 1
        }
        return bytes.count
    }

    /// One `name: value` line, checked; the value without its surrounding whitespace.
    static func field(_ line: UnsafeRawBufferPointer) throws -> (HTTPField.Name, String) {
        guard let first = line.first else { throw HTTP1RequestError(kind: .field) }
        if first == 0x20 || first == 0x09 { throw HTTP1RequestError(kind: .folding) }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { throw HTTP1RequestError(kind: .field) }
        let nameBytes = UnsafeRawBufferPointer(rebasing: line[0 ..< colon])
        guard nameBytes.allSatisfy(isTokenByte) else { throw HTTP1RequestError(kind: .field) }
        var lo = colon + 1, hi = line.count
        while lo < hi, line[lo] == 0x20 || line[lo] == 0x09 { lo += 1 }
        while hi > lo, line[hi - 1] == 0x20 || line[hi - 1] == 0x09 { hi -= 1 }
        let valueBytes = UnsafeRawBufferPointer(rebasing: line[lo ..< hi])
        guard valueBytes.allSatisfy(isValueByte) else { throw HTTP1RequestError(kind: .field) }
        guard let name = knownName(nameBytes) ?? HTTPField.Name(String(decoding: nameBytes, as: UTF8.self)) else {
            throw HTTP1RequestError(kind: .field)
        }
        return (name, String(decoding: valueBytes, as: UTF8.self))
    }

    /// The names nearly every request carries, spelled as clients send them (capitalized, or in
    /// lower case as HTTP/2-minded clients do), each parsed once: `HTTPField.Name(_:)` validates and
    /// lowercases a copy of its text every time (issue 16). The same spelling gives the same name,
    /// raw spelling included, as parsing the bytes would.
    private static let knownNames: [([UInt8], HTTPField.Name)] = [
        "Host", "host", "Content-Type", "content-type", "Content-Length", "content-length", "Authorization", "authorization",
        "User-Agent", "user-agent", "Accept", "accept", "Accept-Encoding", "accept-encoding", "Connection", "connection",
    ].map { (Array($0.utf8), HTTPField.Name($0)!) }

    private static func knownName(_ bytes: UnsafeRawBufferPointer) -> HTTPField.Name? {
        for (spelling, name) in knownNames where spelling.count == bytes.count {
            if spelling.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) }) == 0 { return name }
        }
        return nil
    }

    /// A `Content-Length` value: digits only (a list of equal values, as some proxies send, too).
    private static func length(_ value: String) throws -> Int {
        // Nearly always a plain number: read its digits in place.
        var n = 0, digits = 0
        for byte in value.utf8 {
            guard byte >= 0x30, byte <= 0x39, digits < 18 else { digits = 0; break }
            n = n * 10 + Int(byte &- 0x30)
            digits += 1
        }
        if digits > 0 { return n }
        var result: Int?
        for part in value.split(separator: ",", omittingEmptySubsequences: false) {
            let digits = part.trimmingWhitespace()
            guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let n = Int(digits) else { throw HTTP1RequestError(kind: .contentLength) }
            if let result, result != n { throw HTTP1RequestError(kind: .conflictingFraming) }
            result = n
        }
        guard let result else { throw HTTP1RequestError(kind: .contentLength) }
        return result
    }

    /// The path of a request target: itself in origin form (`/v1/models?x=1`) and for `*`; the
    /// path and query of an absolute-form target (`http://host/v1/models`, `/` when it has none).
    private static func requestPath(_ target: UnsafeRawBufferPointer) -> String {
        let text = String(decoding: target, as: UTF8.self)
        guard target.first != UInt8(ascii: "/"), let schemeEnd = text.range(of: "://") else { return text }
        let rest = text[schemeEnd.upperBound...]
        guard let pathStart = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let path = rest[pathStart...]
        return path.first == "?" ? "/" + path : String(path)
    }

    /// A chunk-size line: 1–15 hex digits, then optional extensions (checked, ignored).
    private static func chunkSize(_ line: ByteBuffer) throws -> Int {
        let view = line.readableBytesView
        var size = 0, digits = 0
        var i = view.startIndex
        while i < view.endIndex, let d = hexValue(view[i]) {
            guard digits < 15 else { throw HTTP1RequestError(kind: .chunk) }
            size = size << 4 | d
            digits += 1
            i += 1
        }
        guard digits > 0 else { throw HTTP1RequestError(kind: .chunk) }
        if i < view.endIndex {
            // Extensions: `;name[=value]`, after optional whitespace; visible characters only.
            var j = i
            while j < view.endIndex, view[j] == 0x20 || view[j] == 0x09 { j += 1 }
            guard j < view.endIndex, view[j] == UInt8(ascii: ";"),
                  view[j...].allSatisfy(isValueByte) else { throw HTTP1RequestError(kind: .chunk) }
        }
        return size
    }

    private static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: Int(b - 0x30)
        case 0x41...0x46: Int(b - 0x41 + 10)
        case 0x61...0x66: Int(b - 0x61 + 10)
        default: nil
        }
    }

    /// A CRLF-ended line (without its CRLF), nil when it has not all come. A line longer than
    /// `limit`, or one with a lone CR or LF, is refused.
    private func readLine(_ buffer: inout ByteBuffer, limit: Int) throws -> ByteBuffer? {
        let view = buffer.readableBytesView
        guard let lf = view.firstIndex(of: 0x0A) else {
            if view.count > limit { throw HTTP1RequestError(kind: .chunk) }
            return nil
        }
        let length = lf - view.startIndex
        guard length >= 1, view[lf - 1] == 0x0D, length - 1 <= limit else { throw HTTP1RequestError(kind: .chunk) }
        let line = buffer.readSlice(length: length - 1)!
        guard !line.readableBytesView.contains(0x0D) else { throw HTTP1RequestError(kind: .chunk) }
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// A byte of a field value (or chunk extension): visible characters, space, tab and obs-text;
    /// no CR, LF, NUL or other control.
    static func isValueByte(_ b: UInt8) -> Bool { b == 0x09 || (b >= 0x20 && b != 0x7F) }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}

/// ``HTTPResponsePart``s → bytes: the status line and fields as given, then the body as it
/// comes — as is when the answer has a `Content-Length`, chunked when it has none (a stream).
/// An answer to `HEAD`, or with a status that has no body (1xx, 204, 304), gets no body bytes.
/// With a `serverName`, a final answer's head also gets the `Date` and `Server` fields (in place
/// of any the head has): written here, the head is not copied to add them (issue 16).
final class HTTP1ResponseEncoder: ChannelOutboundHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = ByteBuffer

    private enum Body { case none, identity, chunked }
    private var body = Body.identity
    private let pending: HTTP1PendingMethods
    private let serverName: String?

    init(pending: HTTP1PendingMethods, serverName: String? = nil) {
        self.pending = pending
        self.serverName = serverName
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            let status = head.status
            let code = status.code
            // An interim answer (100 Continue) is followed by the final one for the same request.
            let informational = code < 200
            let method = informational ? nil : pending.takeFirst()
            let bodyless = method == .head || informational || code == 204 || code == 304
            let stamped = informational ? nil : serverName
            var out = context.channel.allocator.buffer(capacity: 192 + head.headerFields.count * 48)
            out.writeStaticString("HTTP/1.1 ")
            // A status code has three digits (HTTPResponse.Status checks it).
            out.writeInteger(UInt8(truncatingIfNeeded: 48 + code / 100))
            out.writeInteger(UInt8(truncatingIfNeeded: 48 + code / 10 % 10))
            out.writeInteger(UInt8(truncatingIfNeeded: 48 + code % 10))
            out.writeInteger(UInt8(ascii: " "))
            out.writeString(status.reasonPhrase)
            out.writeStaticString("\r\n")
            // Framing is this encoder's: a body-less answer carries none of it but a HEAD's length.
            var hasLength = false
            for field in head.headerFields {
                // Names compared only at the right length (most fields have other lengths, and
                // comparing two different strings is a call into the runtime).
                let name = field.name
                switch name.canonicalName.utf8.count {
                case 14 where name == .contentLength:
                    hasLength = true
                    if informational || code == 204 { continue }
                case 17 where name == .transferEncoding:
                    if bodyless { continue }
                case 4 where stamped != nil && name == .date, 6 where stamped != nil && name == .server:
                    continue
                default:
                    break
                }
                Self.write(field, into: &out)
            }
            if let stamped {
                out.writeStaticString("Date: ")
                out.writeString(HTTPDate.now())
                out.writeStaticString("\r\nServer: ")
                out.writeString(stamped)
                out.writeStaticString("\r\n")
            }
            if bodyless {
                body = .none
            } else if hasLength {
                body = .identity
            } else {
                body = .chunked
                out.writeStaticString("transfer-encoding: chunked\r\n")
            }
            out.writeStaticString("\r\n")
            context.write(wrapOutboundOut(out), promise: promise)
        case .body(let bytes):
            switch body {
            case .none:
                completeInOrder(context, promise)
            case .identity:
                context.write(wrapOutboundOut(bytes), promise: promise)
            case .chunked:
                guard bytes.readableBytes > 0 else {
                    // An empty chunk would end the body.
                    return completeInOrder(context, promise)
                }
                var framed = context.channel.allocator.buffer(capacity: bytes.readableBytes + 20)
                Digits.withHex(bytes.readableBytes) { _ = framed.writeBytes($0) }
                framed.writeStaticString("\r\n")
                var bytes = bytes
                framed.writeBuffer(&bytes)
                framed.writeStaticString("\r\n")
                context.write(wrapOutboundOut(framed), promise: promise)
            }
        case .end(let trailers):
            if case .chunked = body {
                var out = context.channel.allocator.buffer(capacity: 5)
                out.writeStaticString("0\r\n")
                if let trailers { Self.write(trailers, into: &out) }
                out.writeStaticString("\r\n")
                context.write(wrapOutboundOut(out), promise: promise)
            } else {
                completeInOrder(context, promise)
            }
            body = .identity
        }
    }

    /// Writes `fields` as `name: value` lines.
    private static func write(_ fields: HTTPFields, into out: inout ByteBuffer) {
        for field in fields { write(field, into: &out) }
    }

    private static func write(_ field: HTTPField, into out: inout ByteBuffer) {
        out.writeString(field.name.rawName)
        out.writeStaticString(": ")
        out.writeString(field.value)
        out.writeStaticString("\r\n")
    }

    /// A part that writes no byte still completes after the writes before it (a close waiting
    /// for an answer's end must not overtake the answer).
    private func completeInOrder(_ context: ChannelHandlerContext, _ promise: EventLoopPromise<Void>?) {
        guard let promise else { return }
        context.write(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: promise)
    }
}
