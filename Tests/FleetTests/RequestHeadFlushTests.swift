import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import Fleet

/// ``RequestHeadFlush``: an engine request's head is held back until its body's flush (one write
/// on the socket), and never held past the end of the event-loop tick.
@Suite struct RequestHeadFlushTests {
    /// An embedded channel with the request encoder and the handler after it, as on an engine
    /// connection.
    private func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let encoder = HTTPRequestEncoder()
        try channel.pipeline.syncOperations.addHandler(encoder)
        try channel.pipeline.syncOperations.addHandler(RequestHeadFlush(), position: .after(encoder))
        return channel
    }

    private func head(_ method: HTTPMethod, bodyLength: Int?) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: "/v1/chat/completions")
        head.headers.add(name: "host", value: "engine")
        if let bodyLength { head.headers.add(name: "content-length", value: String(bodyLength)) }
        return head
    }

    /// Writes and flushes `part` (not `writeOutbound`, which waits for the write's promise: a held
    /// flush completes it only at the end of the tick).
    private func send(_ part: HTTPClientRequestPart, _ channel: EmbeddedChannel) throws {
        try channel.pipeline.syncOperations.write(NIOAny(part), promise: nil)
        channel.flush()
    }

    /// Everything flushed to the socket so far, as one string, and how many writes it took.
    private func flushed(_ channel: EmbeddedChannel) throws -> (text: String, writes: Int) {
        var text = "", writes = 0
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
            writes += 1
        }
        return (text, writes)
    }

    @Test func aPostsHeadWaitsForItsBody() throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        let body = #"{"model":"m"}"#
        try send(.head(head(.POST, bodyLength: body.utf8.count)), channel)
        #expect(try flushed(channel).writes == 0)  // held: the body comes in the same tick
        try send(.body(.byteBuffer(ByteBuffer(string: body))), channel)
        let out = try flushed(channel)
        #expect(out.text.hasPrefix("POST /v1/chat/completions HTTP/1.1\r\n"))
        #expect(out.text.hasSuffix("\r\n\r\n" + body))
        try send(.end(nil), channel)
        #expect(try flushed(channel).writes == 0)  // nothing to send: a length-framed body has no end marker
        // The held flush's catch-up at the end of the tick finds nothing left to do.
        channel.embeddedEventLoop.run()
        #expect(try flushed(channel).writes == 0)
    }

    @Test func aHeadWithNoBodyYetIsFlushedAtTheEndOfTheTick() throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        try send(.head(head(.POST, bodyLength: 2)), channel)
        #expect(try flushed(channel).writes == 0)
        channel.embeddedEventLoop.run()
        let out = try flushed(channel)
        #expect(out.text.hasPrefix("POST /v1/chat/completions HTTP/1.1\r\n"))
        #expect(out.text.hasSuffix("\r\n\r\n"))
    }

    @Test func aRequestWithoutBodyIsFlushedAtOnce() throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        try channel.pipeline.syncOperations.write(NIOAny(HTTPClientRequestPart.head(head(.GET, bodyLength: nil))), promise: nil)
        try channel.writeOutbound(HTTPClientRequestPart.end(nil))
        let out = try flushed(channel)
        #expect(out.text.hasPrefix("GET /v1/chat/completions HTTP/1.1\r\n"))
        #expect(out.text.hasSuffix("\r\n\r\n"))
    }
}
