import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import Gateway

/// The listener's own HTTP/1.1 connection handler (`GatewayHTTP1Channel`): keep-alive, pipelined
/// requests, bodies that arrive in pieces, answers given before the body ended, streamed answers,
/// `Connection: close` and unparsable requests — over real sockets, bytes as a client sends them.
@Suite struct HTTPConnectionTests {
    /// A small router over the gateway's context, served by the gateway's connection handler.
    static func withServer(_ body: @Sendable (Int) async throws -> Void) async throws {
        let router = Router(context: GatewayContext.self)
        router.post("/echo") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: bytes))
        }
        router.post("/small") { request, _ -> Response in
            // Answers at once when the announced body is too large, without reading it.
            if let length = request.headers[.contentLength].flatMap(Int.init), length > 16 {
                return Response(status: .contentTooLarge, headers: [.contentLength: "0"])
            }
            let bytes = try await request.body.collect(upTo: 16)
            return Response(status: .ok, body: .init(byteBuffer: bytes))
        }
        router.get("/stream") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/event-stream"], body: ResponseBody { writer in
                for i in 0..<3 { try await writer.write(ByteBuffer(string: "data: \(i)\n\n")) }
                try await writer.finish(nil)
            })
        }
        router.get("/hello") { _, _ in "hello" }
        let responder = router.buildResponder()
        let server = HTTPServerBuilder { _ in
            GatewayHTTP1Channel(responder: responder, serverName: "llmaas", inFlight: AnswersInFlight(), additionalHandlers: { [] })
        }
        let app = Application(responder: responder, server: server, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            try await body(try #require(client.port))
        }
    }

    @Test func keepAliveAnswersEachRequestInTurn() async throws {
        try await Self.withServer { port in
            let c = try await RawClient(port: port)
            try await c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst")
            try await c.waitFor { $0.contains("first") }
            try await c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond")
            try await c.waitFor { $0.contains("second") }
            let text = c.text
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
            #expect(text.lowercased().contains("server: llmaas"))
            #expect(text.lowercased().contains("date: "))
            #expect(!c.closed)
            await c.close()
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await Self.withServer { port in
            let c = try await RawClient(port: port)
            try await c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\noneGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                             + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthree")
            try await c.waitFor { $0.contains("three") }
            let text = c.text
            let one = try #require(text.range(of: "one")), hello = try #require(text.range(of: "hello")), three = try #require(text.range(of: "three"))
            #expect(one.lowerBound < hello.lowerBound && hello.lowerBound < three.lowerBound)
            await c.close()
        }
    }

    @Test func aBodyArrivingInPiecesIsReadWhole() async throws {
        try await Self.withServer { port in
            let c = try await RawClient(port: port)
            let body = String(repeating: "abcdefgh", count: 40_000)  // 320 000 bytes: streamed to the route
            try await c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count + 4)\r\n\r\nhead")
            try await Task.sleep(for: .milliseconds(50))
            try await c.send(body)
            try await c.waitFor { $0.hasSuffix(body) }
            #expect(c.text.contains("Content-Length: \(body.utf8.count + 4)") || c.text.lowercased().contains("content-length: \(body.utf8.count + 4)"))
            try await c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            try await c.waitFor { $0.hasSuffix("hello") }
            await c.close()
        }
    }

    @Test func anEarlyAnswerDropsTheRestOfItsBodyAndTheNextRequestIsAnswered() async throws {
        try await Self.withServer { port in
            let c = try await RawClient(port: port)
            try await c.send("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 1000))
            try await c.waitFor { $0.contains("413") }
            // The rest of the body, then another request on the same connection.
            try await c.send(String(repeating: "y", count: 99_000) + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            try await c.waitFor { $0.hasSuffix("hello") }
            #expect(c.text.components(separatedBy: "HTTP/1.1 ").count == 3)
            #expect(!c.closed)
            await c.close()
        }
    }

    @Test func aStreamedAnswerIsChunkedAndTheConnectionStaysUsable() async throws {
        try await Self.withServer { port in
            let c = try await RawClient(port: port)
            try await c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            try await c.waitFor { $0.contains("data: 2") && $0.hasSuffix("0\r\n\r\n") }
            #expect(c.text.lowercased().contains("transfer-encoding: chunked"))
            try await c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            try await c.waitFor { $0.hasSuffix("hello") }
            await c.close()
        }
    }

    @Test func connectionCloseIsAnsweredThenClosed() async throws {
        try await Self.withServer { port in
            let c = try await RawClient(port: port)
            try await c.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            try await c.waitFor { $0.hasSuffix("hello") }
            try await c.waitUntilClosedOrHalfClosed()
            await c.close()
        }
    }

    @Test func anUnparsableRequestIsA400AndTheConnectionCloses() async throws {
        try await Self.withServer { port in
            let c = try await RawClient(port: port)
            try await c.send("GARBAGE\u{1}\u{2} nonsense\r\n\r\n")
            try await c.waitFor { $0.hasPrefix("HTTP/1.1 400") }
            try await c.waitUntilClosedOrHalfClosed()
            await c.close()
        }
    }

    @Test func shutdownWaitsForTheAnswersInFlight() async throws {
        let inFlight = AnswersInFlight()
        inFlight.begin()
        inFlight.begin()
        let done = Atomic<Bool>(false)
        let waiting = Task {
            await inFlight.drained()  // what the service runs once a graceful shutdown began
            done.store(true, ordering: .sequentiallyConsistent)
        }
        inFlight.end()
        try await Task.sleep(for: .milliseconds(20))
        let early = done.load(ordering: .sequentiallyConsistent)
        #expect(!early, "one answer is still running")
        inFlight.end()
        await waiting.value
        let finished = done.load(ordering: .sequentiallyConsistent)
        #expect(finished && inFlight.count == 0)
        await inFlight.drained()  // nothing in flight: returns at once
    }

    @Test func httpDateIsIMFFixdate() {
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(1_796_576_645) == "Sun, 06 Dec 2026 17:04:05 GMT")
    }
}

/// A TCP client that sends bytes as given and keeps everything it receives.
final class RawClient: Sendable {
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = Mutex<[UInt8]>([])
        let ended = Atomic<Bool>(false)

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            bytes.withLock { $0.append(contentsOf: buffer.readableBytesView) }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let e = event as? ChannelEvent, e == .inputClosed { ended.store(true, ordering: .sequentiallyConsistent) }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            ended.store(true, ordering: .sequentiallyConsistent)
        }
    }

    private let channel: any Channel
    private let collector: Collector

    init(port: Int) async throws {
        let collector = Collector()
        self.collector = collector
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer { $0.pipeline.addHandler(collector) }
            .connect(host: "127.0.0.1", port: port).get()
    }

    var text: String { String(decoding: collector.bytes.withLock { $0 }, as: UTF8.self) }
    var closed: Bool { collector.ended.load(ordering: .sequentiallyConsistent) }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// Polls (bounded: 20 s) until what was received satisfies `condition`.
    func waitFor(_ condition: (String) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for _ in 0..<2000 {
            if condition(text) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("never received what was expected; got: \(text.prefix(600))", sourceLocation: sourceLocation)
        throw CancellationError()
    }

    /// Polls (bounded: 20 s) until the server closed its side.
    func waitUntilClosedOrHalfClosed(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for _ in 0..<2000 {
            if closed { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("the server did not close the connection", sourceLocation: sourceLocation)
    }

    func close() async {
        try? await channel.close()
    }
}
