import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing
@testable import Gateway

/// The listener's HTTP/1.1 reader and writer: requests read part by part, however they arrive;
/// every request that could be framed two ways (request smuggling) or is malformed refused; the
/// answers framed by their length, chunked, or without a body as HEAD, 204 and 304 require.
@Suite struct HTTP1CodecTests {
    private static func channel(serverName: String? = nil) throws -> EmbeddedChannel {
        let pending = HTTP1PendingMethods()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP1ResponseEncoder(pending: pending, serverName: serverName))
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTP1RequestDecoder(pending: pending)))
        return channel
    }

    /// Feeds `pieces` one read each and returns the parts read.
    private static func read(_ pieces: [String]) throws -> [HTTPRequestPart] {
        let channel = try channel()
        for piece in pieces { try channel.writeInbound(ByteBuffer(string: piece)) }
        var parts: [HTTPRequestPart] = []
        while let part = try channel.readInbound(as: HTTPRequestPart.self) { parts.append(part) }
        return parts
    }

    private static func body(_ parts: [HTTPRequestPart]) -> String {
        parts.compactMap { if case .body(let b) = $0 { String(buffer: b) } else { nil } }.joined()
    }

    private static func heads(_ parts: [HTTPRequestPart]) -> [HTTPRequest] {
        parts.compactMap { if case .head(let h) = $0 { h } else { nil } }
    }

    private static func ends(_ parts: [HTTPRequestPart]) -> Int {
        parts.filter { if case .end = $0 { true } else { false } }.count
    }

    /// The error a request's bytes are refused with (nil: accepted).
    private static func refusal(_ bytes: String) -> HTTP1RequestError.Kind? {
        do {
            _ = try read([bytes])
            return nil
        } catch let error as HTTP1RequestError {
            return error.kind
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func aRequestWithoutBodyIsAHeadAndAnEnd() throws {
        let parts = try Self.read(["GET /v1/models?limit=2 HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer k\r\nX-Two: a\r\nX-Two: b\r\n\r\n"])
        let head = try #require(Self.heads(parts).first)
        #expect(head.method == .get)
        #expect(head.path == "/v1/models?limit=2")
        #expect(head.authority == "api.example")
        #expect(head.scheme == "http")
        #expect(head.headerFields[.authorization] == "Bearer k")
        #expect(head.headerFields[values: HTTPField.Name("X-Two")!] == ["a", "b"])
        #expect(head.headerFields[HTTPField.Name("Host")!] == nil)  // it is the authority
        #expect(Self.ends(parts) == 1 && parts.count == 2)
    }

    @Test func aBodyOfAKnownLengthComesInItsPieces() throws {
        let parts = try Self.read(["POST /v1/chat/completions HTTP/1.1\r\nHo", "st: x\r\nContent-Length: 11\r\n", "\r\nhello", " world"])
        #expect(Self.heads(parts).count == 1)
        #expect(Self.body(parts) == "hello world")
        #expect(Self.ends(parts) == 1)
        if case .end = parts.last {} else { Issue.record("the end comes last") }
    }

    @Test func aChunkedBodyIsUnframedWithExtensionsAndTrailersDropped() throws {
        let parts = try Self.read(["POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                                   "5;name=value\r\nhello\r\n", "6\r\n wor", "ld\r\n0\r\nX-Trailer: t\r\n\r\n"])
        #expect(Self.body(parts) == "hello world")
        #expect(Self.ends(parts) == 1)
        #expect(Self.heads(parts).first?.headerFields[.transferEncoding] == "chunked")
    }

    @Test func pipelinedRequestsAndLeadingEmptyLinesAreReadInTurn() throws {
        let parts = try Self.read(["\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\nGET /b HTTP/1.0\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n"])
        #expect(Self.heads(parts).map(\.path) == ["/a", "/b", "/c"])
        #expect(Self.ends(parts) == 3)
        #expect(Self.body(parts) == "abc")
    }

    @Test func anAbsoluteFormTargetGivesItsPath() throws {
        let parts = try Self.read(["GET http://api.example:8080/v1/models?x=1 HTTP/1.1\r\nHost: api.example:8080\r\n\r\n",
                                   "GET http://api.example HTTP/1.1\r\nHost: api.example\r\n\r\n",
                                   "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"])
        #expect(Self.heads(parts).map(\.path) == ["/v1/models?x=1", "/", "*"])
    }

    @Test func bytesPastASCIIInTheTargetPass() throws {
        let parts = try Self.read(["GET /v1/models/caf\u{E9} HTTP/1.1\r\nHost: x\r\n\r\n"])
        #expect(Self.heads(parts).first?.path == "/v1/models/caf\u{E9}")
    }

    @Test func equalContentLengthsAreOneLength() throws {
        let parts = try Self.read(["POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc"])
        #expect(Self.body(parts) == "abc")
    }

    @Test(arguments: [
        // Two framings, or an ambiguous one: request smuggling.
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1RequestError.Kind.conflictingFraming),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", .conflictingFraming),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", .conflictingFraming),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n", .conflictingFraming),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n", .contentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3a\r\n\r\n", .contentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", .contentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", .contentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", .contentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .transferEncoding),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .transferEncoding),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .transferEncoding),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc", .field),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n folded\r\n\r\nabc", .folding),
        ("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", .duplicateHost),
        // Line ends and characters.
        ("GET / HTTP/1.1\nHost: x\n\n\r\n\r\n", .version),
        ("GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", .field),
        ("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", .field),
        ("GET / HTTP/1.1\r\nX: a\u{0}b\r\n\r\n", .field),
        ("GET / HTTP/1.1\r\nX(y): a\r\n\r\n", .field),
        ("GET / HTTP/1.1\r\n: a\r\n\r\n", .field),
        ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", .field),
        // The request line.
        ("GET /a b HTTP/1.1\r\n\r\n", .version),
        ("GET  / HTTP/1.1\r\n\r\n", .requestLine),
        ("G(T / HTTP/1.1\r\n\r\n", .requestLine),
        ("GET / HTTP/2.0\r\n\r\n", .version),
        ("GET / HTTP/1.1 \r\n\r\n", .version),
        ("GET /\r\n\r\n", .requestLine),
        ("GET /\u{7F} HTTP/1.1\r\n\r\n", .requestLine),
        // Chunks.
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .chunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", .chunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", .chunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n", .chunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n", .chunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n", .field),
    ])
    func aMalformedOrAmbiguousRequestIsRefused(bytes: String, kind: HTTP1RequestError.Kind) {
        #expect(Self.refusal(bytes) == kind, "\(bytes.debugDescription)")
    }

    @Test func limitsOnTheHeadAreA431() throws {
        let long = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 81 * 1024) + "\r\n\r\n"
        #expect(Self.refusal(long) == .headTooLarge)
        #expect(HTTP1RequestError(kind: .headTooLarge).status.code == 431)
        // Too large even before its end has come.
        #expect(Self.refusal("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 81 * 1024)) == .headTooLarge)
        let many = "GET / HTTP/1.1\r\n" + (0..<1001).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(Self.refusal(many) == .tooManyFields)
        #expect(HTTP1RequestError(kind: .field).status == .badRequest)
    }

    // MARK: answers

    /// The bytes written for `parts`, answering a request with `method`.
    private static func written(_ parts: [HTTPResponsePart], method: String = "GET", serverName: String? = nil) throws -> String {
        let channel = try channel(serverName: serverName)
        try channel.writeInbound(ByteBuffer(string: "\(method) / HTTP/1.1\r\nHost: x\r\n\r\n"))
        var out = ""
        for part in parts { try channel.writeOutbound(part) }
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += String(buffer: b) }
        return out
    }

    @Test func anAnswerOfKnownLengthIsWrittenAsIs() throws {
        let out = try Self.written([.head(HTTPResponse(status: .ok, headerFields: [.contentType: "application/json", .contentLength: "2"])),
                                    .body(ByteBuffer(string: "{}")), .end(nil)])
        #expect(out == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    }

    @Test func aStreamIsChunkedAndEnded() throws {
        let out = try Self.written([.head(HTTPResponse(status: .ok, headerFields: [.contentType: "text/event-stream"])),
                                    .body(ByteBuffer(string: "data: 1\n\n")), .body(ByteBuffer()), .body(ByteBuffer(string: "data: [DONE]\n\n")),
                                    .end([HTTPField.Name("X-Done")!: "yes"])])
        #expect(out == "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            + "9\r\ndata: 1\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\nX-Done: yes\r\n\r\n")
    }

    @Test func answersToHeadAnd204And304HaveNoBody() throws {
        let head = try Self.written([.head(HTTPResponse(status: .ok, headerFields: [.contentLength: "5"])), .body(ByteBuffer(string: "hello")), .end(nil)],
                                    method: "HEAD")
        #expect(head == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        let headStream = try Self.written([.head(HTTPResponse(status: .ok)), .body(ByteBuffer(string: "x")), .end(nil)], method: "HEAD")
        #expect(headStream == "HTTP/1.1 200 OK\r\n\r\n")
        let noContent = try Self.written([.head(HTTPResponse(status: .noContent, headerFields: [.contentLength: "0"])), .end(nil)])
        #expect(noContent == "HTTP/1.1 204 No Content\r\n\r\n")
        let notModified = try Self.written([.head(HTTPResponse(status: .notModified)), .end(nil)])
        #expect(notModified == "HTTP/1.1 304 Not Modified\r\n\r\n")
    }

    @Test func aFinalAnswerIsStampedWithDateAndServerOnce() throws {
        let out = try Self.written([.head(HTTPResponse(status: .ok, headerFields: [.server: "other", .contentLength: "2", .date: "yesterday"])),
                                    .body(ByteBuffer(string: "{}")), .end(nil)], serverName: "llmaas")
        let lines = out.components(separatedBy: "\r\n")
        #expect(lines.first == "HTTP/1.1 200 OK")
        #expect(lines.filter { $0.lowercased().hasPrefix("server:") } == ["Server: llmaas"])
        let dates = lines.filter { $0.lowercased().hasPrefix("date:") }
        #expect(dates.count == 1 && dates.first?.hasSuffix(" GMT") == true && dates.first != "Date: yesterday")
        #expect(out.hasSuffix("Content-Length: 2\r\n" + (dates.first ?? "") + "\r\nServer: llmaas\r\n\r\n{}"))
        // An interim answer is not stamped; the final one after it is.
        let interim = try Self.written([.head(HTTPResponse(status: .continue)), .head(HTTPResponse(status: .noContent)), .end(nil)],
                                       method: "POST", serverName: "llmaas")
        #expect(interim.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nDate: "))
        #expect(interim.hasSuffix("\r\nServer: llmaas\r\n\r\n"))
    }

    @Test func anEndWithoutBytesCompletesAfterTheAnswerBeforeIt() throws {
        let channel = try Self.channel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        channel.write(HTTPResponsePart.head(HTTPResponse(status: .badRequest, headerFields: [.contentLength: "0"])), promise: nil)
        let ended = Flag()
        channel.writeAndFlush(HTTPResponsePart.end(nil)).whenComplete { _ in ended.value = true }
        #expect(ended.value)
        let first = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: first).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
    }
}

private final class Flag: @unchecked Sendable {
    var value = false
}
