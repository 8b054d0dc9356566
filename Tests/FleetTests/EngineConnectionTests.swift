import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenAIWire
import Synchronization
import Testing
@testable import Fleet

/// Records what an ``EnginePool`` request delivers.
final class RecordingExchange: EngineExchange {
    struct Seen {
        var status: Int?
        var body: [UInt8] = []
        var ended = false
        var error: (any Error)?
        var events = 0
    }
    private let seen = Mutex(Seen())
    /// Hold the first part (backpressure) instead of taking it.
    let holdFirst: Bool
    private let held = Mutex(false)

    init(holdFirst: Bool = false) { self.holdFirst = holdFirst }

    var state: Seen { seen.withLock { $0 } }
    var done: Bool { seen.withLock { $0.ended || $0.error != nil } }
    var text: String { String(decoding: state.body, as: UTF8.self) }

    func received(head: HTTPResponseHead) { seen.withLock { $0.status = Int(head.status.code) } }
    func received(part: ByteBuffer) -> Bool {
        seen.withLock { $0.body += part.readableBytesView }
        if holdFirst { return held.withLock { h in defer { h = true }; return h } }
        return true
    }
    func receivedEnd() { seen.withLock { $0.ended = true; $0.events += 1 } }
    func failed(_ error: any Error) { seen.withLock { $0.error = error; $0.events += 1 } }
}

/// Polls `condition` every 10 ms for up to 30 s (no test depends on how fast the machine is).
func eventually(_ condition: () -> Bool) async throws {
    for _ in 0..<3000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
}

/// The gateway's own HTTP/1.1 client for plain-HTTP engines (``EnginePool``, ``EngineConnection``,
/// ``ResponseParser``): keep-alive reuse, the engine closing connections, the stale-connection
/// retry, `max_connections`, framing, cancellation and backpressure. No test depends on timing:
/// conditions are polled with generous bounds.
@Suite(.serialized) struct EngineConnectionTests {
    static func ok(_ body: String = "{\"ok\":true}", extra: String = "") -> String {
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\(extra)content-length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    func pool(_ engine: ScriptedEngine, max: Int = 8) -> EnginePool {
        EnginePool(url: "http://127.0.0.1:\(engine.port)", maxConnections: max, connectTimeoutMs: 2000,
                   group: MultiThreadedEventLoopGroup.singleton)!
    }

    /// The loop the requests run on unless a test says otherwise (a request gets a connection on
    /// its own loop: requests on one loop reuse one connection).
    static let loop = MultiThreadedEventLoopGroup.singleton.next()

    func run(_ pool: EnginePool, _ body: String = "{}", on loop: (any EventLoop)? = nil) async throws -> RecordingExchange {
        let exchange = RecordingExchange()
        pool.execute(pool.post("/v1/chat/completions", body: Array(body.utf8), accept: "application/json"),
                     on: loop ?? Self.loop, exchange: exchange)
        try await eventually { exchange.done }
        return exchange
    }

    @Test func theRequestIsOneBufferWithItsHead() {
        let pool = EnginePool(url: "http://10.0.0.1:8000/base/", maxConnections: 4, connectTimeoutMs: 100,
                              group: MultiThreadedEventLoopGroup.singleton)!
        let bytes = pool.post("/v1/chat/completions", body: Array("{\"a\":1}".utf8), accept: "text/event-stream")
        #expect(String(buffer: bytes) == "POST /base/v1/chat/completions HTTP/1.1\r\nhost: 10.0.0.1:8000\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: 7\r\n\r\n{\"a\":1}")
        #expect(EnginePool(url: "https://10.0.0.1:8000", maxConnections: 4, connectTimeoutMs: 100, group: MultiThreadedEventLoopGroup.singleton) == nil)
    }

    @Test func keepAliveConnectionsAreReused() async throws {
        let engine = try await ScriptedEngine.start { (Self.ok(), .keepAlive) }
        defer { Task { await engine.stop() } }
        let pool = pool(engine)
        for _ in 0..<20 {
            let e = try await run(pool)
            #expect(e.state.status == 200)
            #expect(e.text == "{\"ok\":true}")
            #expect(e.state.ended)
        }
        #expect(engine.connections == 1)
        #expect(pool.openConnections == 1)
    }

    /// A request gets a connection on its own event loop: an idle one there, else a new one
    /// there rather than an idle one on another loop (which would cost two cross-thread wake-ups
    /// on every request it carries) — unless `max_connections` are open: then the idle one on
    /// the other loop is taken.
    @Test func eachLoopGetsItsOwnConnectionUntilTheLimit() async throws {
        let engine = try await ScriptedEngine.start { (Self.ok(), .keepAlive) }
        defer { Task { await engine.stop() } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { group.shutdownGracefully { _ in } }
        let loops = [group.next(), group.next()]
        #expect(loops[0] !== loops[1])
        let roomy = EnginePool(url: "http://127.0.0.1:\(engine.port)", maxConnections: 8, connectTimeoutMs: 2000, group: group)!
        for i in 0..<20 {
            let e = try await run(roomy, on: loops[i % 2])
            #expect(e.state.status == 200 && e.state.ended)
        }
        #expect(engine.connections == 2)
        #expect(roomy.openConnections == 2)
        roomy.shutdown()
        let one = EnginePool(url: "http://127.0.0.1:\(engine.port)", maxConnections: 1, connectTimeoutMs: 2000, group: group)!
        for i in 0..<20 {
            let e = try await run(one, on: loops[i % 2])
            #expect(e.state.status == 200 && e.state.ended)
        }
        #expect(engine.connections == 3)  // the two above and this pool's one
        #expect(one.openConnections == 1)
        one.shutdown()
    }

    @Test func anIdleConnectionIsClosedAfterTheIdleTimeout() async throws {
        let engine = try await ScriptedEngine.start { (Self.ok(), .keepAlive) }
        defer { Task { await engine.stop() } }
        let pool = EnginePool(url: "http://127.0.0.1:\(engine.port)", maxConnections: 4, connectTimeoutMs: 2000,
                              group: MultiThreadedEventLoopGroup.singleton, idleTimeout: .milliseconds(100))!
        #expect(try await run(pool).state.ended)
        try await eventually { engine.connectionsClosedByClient == 1 }
        #expect(engine.connectionsClosedByClient == 1)
        try await eventually { pool.openConnections == 0 }
        #expect(pool.openConnections == 0)
        // A new request opens a new connection (and the sweep runs again).
        #expect(try await run(pool).state.ended)
        #expect(engine.connections == 2)
        try await eventually { engine.connectionsClosedByClient == 2 }
        #expect(engine.connectionsClosedByClient == 2)
    }

    @Test func aConnectionTheEngineClosesIsNotReused() async throws {
        let engine = try await ScriptedEngine.start { (Self.ok(extra: "connection: close\r\n"), .close) }
        defer { Task { await engine.stop() } }
        let pool = pool(engine)
        for _ in 0..<5 {
            let e = try await run(pool)
            #expect(e.state.ended && e.state.error == nil)
        }
        #expect(engine.connections == 5)
        try await eventually { pool.openConnections == 0 }
        #expect(pool.openConnections == 0)
    }

    @Test func aStaleKeepAliveConnectionIsRetriedOnceOnAFreshOne() async throws {
        // The first request is answered; the second, on the same (reused) connection, finds it
        // closed without a byte of answer; it goes once more on a new connection.
        let n = Mutex(0)
        let engine = try await ScriptedEngine.start {
            let i = n.withLock { $0 += 1; return $0 }
            return i == 2 ? (nil, .close) : (Self.ok(), .keepAlive)
        }
        defer { Task { await engine.stop() } }
        let pool = pool(engine)
        #expect(try await run(pool).state.ended)
        let second = try await run(pool)
        #expect(second.state.ended && second.state.error == nil)
        #expect(second.state.status == 200)
        #expect(engine.connections == 2)
        #expect(n.withLock { $0 } == 3)
    }

    @Test func aFreshConnectionClosedWithoutAnswerIsNotRetried() async throws {
        let n = Mutex(0)
        let engine = try await ScriptedEngine.start {
            n.withLock { $0 += 1 }
            return (nil, .close)
        }
        defer { Task { await engine.stop() } }
        let e = try await run(pool(engine))
        #expect((e.state.error as? HTTPClientError) == .remoteConnectionClosed)
        #expect(n.withLock { $0 } == 1)
        #expect(engine.connections == 1)
    }

    @Test func aRefusedConnectionFailsAtOnce() async throws {
        // A port nothing listens on (bound, then closed).
        let engine = try await ScriptedEngine.start { (Self.ok(), .keepAlive) }
        let port = engine.port
        await engine.stop()
        let pool = EnginePool(url: "http://127.0.0.1:\(port)", maxConnections: 2, connectTimeoutMs: 2000,
                              group: MultiThreadedEventLoopGroup.singleton)!
        let e = try await run(pool)
        #expect(e.state.error != nil)
        #expect("\(e.state.error!)".lowercased().contains("refused"))
        try await eventually { pool.openConnections == 0 }
        #expect(pool.openConnections == 0)
    }

    @Test func maxConnectionsBoundsTheOpenConnections() async throws {
        let engine = try await ScriptedEngine.start { (nil, .stall) }
        defer { Task { await engine.stop() } }
        let pool = pool(engine, max: 2)
        let exchanges = (0..<3).map { _ in RecordingExchange() }
        let calls = exchanges.map { pool.execute(pool.post("/x", body: [], accept: "application/json"), on: pool.group.any(), exchange: $0) }
        try await eventually { engine.connections == 2 }
        #expect(engine.connections == 2)
        #expect(pool.openConnections == 2)
        // The third waits; cancelling one of the first two closes its connection, and the third
        // gets a new one.
        calls[0].fail(reason: HTTPClientError.cancelled)
        try await eventually { engine.connections == 3 }
        #expect(engine.connections == 3)
        // The cancelled exchange is told on its connection's loop, which need not have done so
        // before the engine saw the third connection (opened on another loop).
        try await eventually { exchanges[0].done }
        #expect((exchanges[0].state.error as? HTTPClientError) == .cancelled)
        #expect(exchanges[0].state.events == 1)
        #expect(pool.openConnections == 2)
        // A waiting request that is cancelled leaves the queue and fails.
        let waiting = RecordingExchange()
        let call = pool.execute(pool.post("/x", body: [], accept: "application/json"), on: pool.group.any(), exchange: waiting)
        call.fail(reason: HTTPClientError.cancelled)
        try await eventually { waiting.done }
        #expect((waiting.state.error as? HTTPClientError) == .cancelled)
        calls[1].fail(reason: HTTPClientError.cancelled)
        calls[2].fail(reason: HTTPClientError.cancelled)
        try await eventually { engine.connectionsClosedByClient == 3 }
        #expect(engine.connectionsClosedByClient == 3)
        try await eventually { pool.openConnections == 0 }
        #expect(pool.openConnections == 0)
    }

    @Test func cancellingARequestClosesItsConnection() async throws {
        let engine = try await ScriptedEngine.start { ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", .stall) }
        defer { Task { await engine.stop() } }
        let pool = pool(engine)
        let exchange = RecordingExchange()
        let call = pool.execute(pool.post("/x", body: [], accept: "text/event-stream"), on: pool.group.any(), exchange: exchange)
        try await eventually { exchange.text == "hello" }
        call.fail(reason: HTTPClientError.cancelled)
        call.fail(reason: HTTPClientError.cancelled)  // twice: nothing more
        try await eventually { engine.connectionsClosedByClient == 1 }
        #expect(engine.connectionsClosedByClient == 1)
        #expect(exchange.state.events == 1)
        #expect(!exchange.state.ended)
        try await eventually { pool.openConnections == 0 }
        #expect(pool.openConnections == 0)
    }

    @Test func resumingAHeldPartAndCancellingIsSafe() async throws {
        let engine = try await ScriptedEngine.start {
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", .keepAlive)
        }
        defer { Task { await engine.stop() } }
        let pool = pool(engine)
        let exchange = RecordingExchange(holdFirst: true)
        let call = pool.execute(pool.post("/x", body: [], accept: "text/event-stream"), on: pool.group.any(), exchange: exchange)
        try await eventually { exchange.text == "hello" }
        call.resumeReading()
        call.fail(reason: HTTPClientError.cancelled)
        try await eventually { exchange.done }
        #expect(exchange.state.events == 1)
    }

    @Test func streamsAndAnswersThroughTheFleet() async throws {
        let sse = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"
        let chunk = String(sse.utf8.count, radix: 16) + "\r\n" + sse + "\r\n0\r\n\r\n"
        let engine = try await ScriptedEngine.start {
            ("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + chunk, .keepAlive)
        }
        defer { Task { await engine.stop() } }
        let backend = BackendConfig(name: "scripted", kind: .openai, url: "http://127.0.0.1:\(engine.port)", models: ["chat-model": "m"],
                                    timeouts: Timeouts(connectMs: 1000, firstByteMs: 5000, idleMs: 5000))
        let fleet = Fleet(configs: [backend], http: testHTTP, logger: Logger(label: "t"))
        #expect(fleet.engines[0].pool != nil)
        for _ in 0..<5 {
            guard case .stream(let stream) = try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: true).1 else {
                Issue.record("not a stream"); return
            }
            var text = ""
            var usage: Usage?
            for try await event in stream {
                switch event {
                case .chunk(let c): text += c["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? ""
                case .usage(let u): usage = u
                }
            }
            #expect(text == "hi")
            #expect(usage != nil)
        }
        // Reused: at most one per event loop the calls ran on (each gets a connection on its loop).
        let loops = Array(fleet.engines[0].pool!.group.makeIterator()).count
        #expect(engine.connections <= loops)
    }

    // MARK: ResponseParser

    func parse(_ text: String, byteByByte: Bool) throws -> (status: Int?, body: String, ended: Bool, keepAlive: Bool) {
        var parser = ResponseParser()
        var status: Int?
        var body: [UInt8] = []
        var ended = false
        var carry = ByteBuffer()
        let pieces: [ArraySlice<UInt8>] = byteByByte ? Array(text.utf8).map { [$0][...] } : [Array(text.utf8)[...]]
        for piece in pieces {
            carry.writeBytes(piece)
            while let event = try parser.next(&carry) {
                switch event {
                case .head(let h): status = Int(h.status.code)
                case .body(let b): body += b.readableBytesView
                case .end: ended = true
                }
            }
            carry.discardReadBytes()
        }
        return (status, String(decoding: body, as: UTF8.self), ended, parser.keepAlive)
    }

    @Test(arguments: [false, true]) func contentLengthAnswers(byteByByte: Bool) throws {
        let r = try parse("HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello", byteByByte: byteByByte)
        #expect(r.status == 201 && r.body == "hello" && r.ended && r.keepAlive)
        let empty = try parse("HTTP/1.1 204 No Content\r\n\r\n", byteByByte: byteByByte)
        #expect(empty.status == 204 && empty.body == "" && empty.ended)
        let closing = try parse("HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 2\r\n\r\nok", byteByByte: byteByByte)
        #expect(closing.ended && !closing.keepAlive)
        let old = try parse("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", byteByByte: byteByByte)
        #expect(old.ended && !old.keepAlive)
        let interim = try parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", byteByByte: byteByByte)
        #expect(interim.status == 200 && interim.body == "ok" && interim.ended)
    }

    @Test(arguments: [false, true]) func chunkedAnswers(byteByByte: Bool) throws {
        let r = try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nx-trailer: 1\r\n\r\n",
                          byteByByte: byteByByte)
        #expect(r.status == 200 && r.body == "hello, world!!!" && r.ended && r.keepAlive)
        let open = try parse("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n", byteByByte: byteByByte)
        #expect(open.body == "abc" && !open.ended)
    }

    @Test func untilCloseAnswers() throws {
        var parser = ResponseParser()
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\nabc")
        guard case .head = try parser.next(&buffer) else { Issue.record("no head"); return }
        guard case .body(let b) = try parser.next(&buffer) else { Issue.record("no body"); return }
        #expect(String(buffer: b) == "abc")
        let after = try parser.next(&buffer)
        #expect(after == nil)
        let ended = parser.eof()
        #expect(ended)
        #expect(!parser.keepAlive)
    }

    @Test func malformedAnswersAreErrors() {
        for text in ["HTTP/1.1 2x0 OK\r\n\r\n", "SMTP ready\r\n\r\n", "HTTP/1.1 200 OK\r\ncontent-length: 1a\r\n\r\n",
                     "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"] {
            #expect(throws: (any Error).self) { _ = try parse(text, byteByByte: false) }
        }
    }
}
