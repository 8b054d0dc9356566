import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OpenAIWire
import Testing
@testable import Fleet

/// A scripted HTTP/1.1 engine on loopback: it reads each request whole (head and
/// `content-length` body, which AsyncHTTPClient writes separately) and answers with raw bytes,
/// then keeps the connection, stalls or closes it. Counts the connections it accepted.
final class ScriptedEngine: Sendable {
    enum Then: Sendable { case keepAlive, stall, close }
    /// What to send for a request: raw bytes (nil: nothing at all), then what to do.
    typealias Script = @Sendable () -> (bytes: String?, then: Then)

    let channel: any Channel
    private let accepted: NIOLockedValueBox<Int>
    private let closedByPeer: NIOLockedValueBox<Int>

    var port: Int { channel.localAddress!.port! }
    var connections: Int { accepted.withLockedValue { $0 } }
    var connectionsClosedByClient: Int { closedByPeer.withLockedValue { $0 } }

    private init(channel: any Channel, accepted: NIOLockedValueBox<Int>, closedByPeer: NIOLockedValueBox<Int>) {
        self.channel = channel
        self.accepted = accepted
        self.closedByPeer = closedByPeer
    }

    static func start(_ script: @escaping Script) async throws -> ScriptedEngine {
        let accepted = NIOLockedValueBox(0)
        let closedByPeer = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(script: script, closedByPeer: closedByPeer))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedEngine(channel: channel, accepted: accepted, closedByPeer: closedByPeer)
    }

    func stop() async { try? await channel.close() }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let script: Script
        let closedByPeer: NIOLockedValueBox<Int>
        var received: [UInt8] = []
        var stalled = false
        var closing = false

        init(script: @escaping Script, closedByPeer: NIOLockedValueBox<Int>) {
            self.script = script
            self.closedByPeer = closedByPeer
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += Self.unwrapInboundIn(data).readableBytesView
            while !stalled, let end = requestEnd() {
                received.removeFirst(end)
                let (bytes, then) = script()
                if let bytes { context.writeAndFlush(NIOAny(ByteBuffer(string: bytes)), promise: nil) }
                switch then {
                case .keepAlive: break
                case .stall: stalled = true
                case .close:
                    closing = true
                    context.close(promise: nil)
                    return
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !closing { closedByPeer.withLockedValue { $0 += 1 } }
        }

        /// Where the first whole request in `received` ends, if it is all there.
        func requestEnd() -> Int? {
            let separator: [UInt8] = Array("\r\n\r\n".utf8)
            guard received.count >= 4, let headEnd = (0...(received.count - 4)).first(where: { Array(received[$0..<$0 + 4]) == separator }) else {
                return nil
            }
            let head = String(decoding: received[..<headEnd], as: UTF8.self).lowercased()
            let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            let end = headEnd + 4 + length
            return received.count >= end ? end : nil
        }
    }
}

/// The non-streamed engine call (``EngineAnswer``, ``Engine/fetchJSON(_:body:request:)``): its
/// bounds, its error mapping and its connection reuse, against a scripted engine.
@Suite(.serialized) struct EngineAnswerTests {
    static let answer = #"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#

    static func ok(_ body: String = answer) -> String {
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    func fleet(_ engine: ScriptedEngine, firstByteMs: Int = 5000) -> Fleet {
        let backend = BackendConfig(name: "scripted", kind: .openai, url: "http://127.0.0.1:\(engine.port)", models: ["chat-model": "m"],
                                    timeouts: Timeouts(connectMs: 1000, firstByteMs: firstByteMs, idleMs: 5000))
        return Fleet(configs: [backend], http: testHTTP, logger: Logger(label: "t"))
    }

    func send(_ fleet: Fleet) async throws(EngineError) -> UpstreamResponse {
        try await fleet.send(model: "chat-model", endpoint: .chat, body: chatBody(), stream: false).1
    }

    @Test func wholeAnswersReuseOneEngineConnection() async throws {
        let engine = try await ScriptedEngine.start { (Self.ok(), .keepAlive) }
        defer { Task { await engine.stop() } }
        let fleet = fleet(engine)
        for _ in 0..<20 {
            guard case .complete(let json, let usage) = try await send(fleet) else { Issue.record("not complete"); return }
            #expect(json["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "hi")
            #expect(usage.completionTokens == 1)
        }
        // Whatever event loop each call ran on, an idle connection was taken again (a request
        // that requires its loop would get a connection closed after use: one per request). Each
        // loop gets its own connection, and a call may start before the previous one's
        // connection is back in the pool (the answer is whole before the connection is
        // released), hence up to two per event loop of the client.
        let loops = Array(testHTTP.eventLoopGroup.makeIterator()).count
        #expect(engine.connections <= 2 * loops)
    }

    @Test func anErrorStatusBecomesTheEnginesMessage() async throws {
        let body = #"{"error":{"message":"max_tokens is too large","type":"invalid_request_error","param":"max_tokens","code":null}}"#
        let engine = try await ScriptedEngine.start {
            ("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)", .keepAlive)
        }
        defer { Task { await engine.stop() } }
        do {
            _ = try await send(fleet(engine))
            Issue.record("a 400 must fail")
        } catch {
            #expect(error.apiError.status == 400)
            #expect(error.apiError.message.contains("max_tokens is too large"))
            #expect(error.apiError.param == "max_tokens")
        }
    }

    @Test func noHeadWithinTheFirstByteTimeoutIs504() async throws {
        let engine = try await ScriptedEngine.start { (nil, .stall) }
        defer { Task { await engine.stop() } }
        do {
            _ = try await send(fleet(engine, firstByteMs: 200))
            Issue.record("no head must time out")
        } catch {
            #expect(error.apiError.status == 504)
        }
    }

    @Test func aBodyThatStopsComingTimesOutToo() async throws {
        // The head and half the body, then nothing: the body's read is bounded as well.
        let full = Self.ok()
        let engine = try await ScriptedEngine.start { (String(full.prefix(full.utf8.count - 40)), .stall) }
        defer { Task { await engine.stop() } }
        do {
            _ = try await send(fleet(engine, firstByteMs: 200))
            Issue.record("a stalled body must time out")
        } catch {
            #expect(error.apiError.status == 504)
        }
    }

    @Test func aConnectionCutMidBodyIsReported() async throws {
        let full = Self.ok()
        let engine = try await ScriptedEngine.start { (String(full.prefix(full.utf8.count - 40)), .close) }
        defer { Task { await engine.stop() } }
        do {
            _ = try await send(fleet(engine))
            Issue.record("a cut body must fail")
        } catch {
            guard case .unreachable(_, let detail) = error else { Issue.record("expected unreachable, got \(error)"); return }
            #expect(detail.hasPrefix("connection lost while reading the answer"))
            #expect(error.apiError.status == 502)
        }
    }

    @Test func aBodyThatIsNotJSONIsMalformed() async throws {
        let engine = try await ScriptedEngine.start { (Self.ok("<html>gateway error</html>"), .keepAlive) }
        defer { Task { await engine.stop() } }
        do {
            _ = try await send(fleet(engine))
            Issue.record("HTML must fail")
        } catch {
            guard case .malformed = error else { Issue.record("expected malformed, got \(error)"); return }
        }
    }

    @Test func cancellingTheCallerClosesTheEngineConnection() async throws {
        let engine = try await ScriptedEngine.start { (nil, .stall) }
        defer { Task { await engine.stop() } }
        let fleet = fleet(engine)
        let call = Task { try await send(fleet) }
        // Wait until the request is at the engine, then hang up as a client would.
        for _ in 0..<600 where engine.connections == 0 { try await Task.sleep(for: .milliseconds(10)) }
        call.cancel()
        _ = await call.result
        for _ in 0..<600 where engine.connectionsClosedByClient == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(engine.connectionsClosedByClient == 1)
    }
}
