import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenAIWire
import Synchronization

// The gateway's own HTTP/1.1 client for plain-HTTP engines (issue 16, stop 27).
//
// AsyncHTTPClient's request path (its pool, state machines, `RequestBag`, delegate and task) was
// ≈ 17 % of the gateway's CPU per request, its objects ≈ 17 KB of heap per open stream, and it
// writes an engine request's head and body with a flush each. This client does what the fleet
// needs and no more: a pool of keep-alive connections per engine (at most the backend's
// `max_connections`, an idle one on the caller's event loop preferred), the request's head and
// body as ONE buffer flushed once, one handler per connection that parses the response itself
// (status line, `content-length`, `chunked`, or until close) and hands head, body parts and end
// to an ``EngineExchange`` on the connection's loop. A connection the engine closed, or one
// that failed or was cancelled, is never reused; a request that fails on a reused connection
// before any byte of the answer came is sent once more on a fresh one (the engine closed an
// idle keep-alive connection as the request went out). Timeouts stay with the callers
// (``EngineAnswer``, ``EngineBody``: one timer each), which cancel the request: cancelling
// closes the connection. https engines, probes, token counting and webhooks keep
// AsyncHTTPClient.

/// Receives one engine response, on the connection's event loop. After ``failed(_:)`` or
/// ``receivedEnd()`` nothing more comes.
protocol EngineExchange: AnyObject, Sendable {
    func received(head: HTTPResponseHead)
    /// A part of the body. false: the exchange keeps the part for later, and the connection
    /// reads no more until ``EngineRequest/resumeReading()`` (backpressure).
    func received(part: ByteBuffer) -> Bool
    func receivedEnd()
    func failed(_ error: any Error)
}

/// What the delegate-style callers need of a running request, whichever client runs it.
protocol EngineCall: Sendable {
    func fail(reason: any Error)
    var eventLoop: any EventLoop { get }
}

extension HTTPClient.Task: EngineCall {}

/// One request to an engine through an ``EnginePool``: its bytes, the exchange that takes the
/// answer, and who holds it now (the pool's queue, or a connection).
final class EngineRequest: EngineCall {
    let pool: EnginePool
    /// The request's head and body; dropped once the answer's first bytes came (a request is only
    /// sent again before that, ``mayRetry()``), so a stream does not keep them for its whole life
    /// (issue 16). Read and dropped on the loop of the connection that holds the request, which
    /// the hand-over to a connection (`loop.execute`) orders.
    nonisolated(unsafe) private(set) var bytes: ByteBuffer
    /// The loop the caller runs on: an idle connection there is preferred, a new one opens there.
    let eventLoop: any EventLoop
    let exchange: any EngineExchange

    private struct State {
        var connection: EngineConnection?
        var cancelled: (any Error)?
        var retried = false
    }
    private let state = Mutex(State())

    init(pool: EnginePool, bytes: ByteBuffer, eventLoop: any EventLoop, exchange: any EngineExchange) {
        self.pool = pool
        self.bytes = bytes
        self.eventLoop = eventLoop
        self.exchange = exchange
    }

    /// Stops the request: the connection it is on is closed, and the exchange fails with
    /// `reason` (unless it had already ended). From any thread, any number of times.
    func fail(reason: any Error) {
        let connection = state.withLock { s -> EngineConnection?? in
            if s.cancelled != nil { return .none }
            s.cancelled = reason
            return .some(s.connection)
        }
        guard let connection else { return }
        if let connection {
            connection.abort(self, reason: reason)
        } else if pool.dequeue(self) {
            // Waiting for a connection: nothing else holds it.
            exchange.failed(reason)
        }
        // else: a connection is taking it right now; `attach` sees the reason.
    }

    /// A connection takes the request (on its loop). nil: go on; else the request was cancelled
    /// meanwhile (its exchange is told here).
    func attach(_ connection: EngineConnection) -> Bool {
        let reason = state.withLock { s -> (any Error)? in
            if let reason = s.cancelled { return reason }
            s.connection = connection
            return nil
        }
        if let reason {
            exchange.failed(reason)
            return false
        }
        return true
    }

    /// The answer's first bytes came: the request is never sent again (on the connection's loop).
    func sent() {
        bytes = ByteBuffer()
    }

    /// The request failed on a reused connection before any byte of the answer: may it be sent
    /// again (once, and not if it was cancelled)?
    func mayRetry() -> Bool {
        state.withLock { s in
            if s.retried || s.cancelled != nil { return false }
            s.retried = true
            s.connection = nil
            return true
        }
    }

    var isCancelled: Bool { state.withLock { $0.cancelled != nil } }
    var cancelReason: (any Error)? { state.withLock { $0.cancelled } }

    /// The exchange took a part it had kept: the connection may read on.
    func resumeReading() {
        guard let connection = state.withLock({ $0.connection }) else { return }
        connection.resume(self)
    }
}

/// The keep-alive connections to one plain-HTTP engine.
final class EnginePool: Sendable {
    let host: String
    let port: Int
    /// The resolved address when the host is an IP literal (no resolver on connect).
    let address: SocketAddress?
    /// `host` header value, and the URL's path prefix (before each request's path).
    let hostHeader: String
    let basePath: String
    let maxConnections: Int
    let connectTimeout: TimeAmount
    let group: any EventLoopGroup

    private struct State {
        /// Idle connections by event loop, oldest first (the last one released is taken first).
        var idle: [ObjectIdentifier: IdleList] = [:]
        /// The sweep of connections idle too long is scheduled.
        var sweeping = false
        var open = 0
        var waiting: [EngineRequest] = []
        var closed = false
    }
    private let state = Mutex(State())

    struct Idle {
        let connection: EngineConnection
        let since: NIODeadline
    }

    /// One loop's idle connections, held by reference and only touched under the pool's lock: a
    /// list changed in place through the dictionary's subscript took a heap-allocated accessor
    /// frame per take and per release (issue 16).
    final class IdleList {
        var connections: [Idle] = []
    }

    /// `loop`'s idle list, made when it has none yet.
    private static func idleList(_ s: inout State, _ loop: ObjectIdentifier) -> IdleList {
        if let list = s.idle[loop] { return list }
        let list = IdleList()
        s.idle[loop] = list
        return list
    }
    /// An idle connection is closed after this long (AsyncHTTPClient's default), by a sweep every
    /// quarter of it that runs only while connections are open.
    let idleTimeout: TimeAmount

    /// nil when `url` is not a plain `http://` URL.
    init?(url: String, maxConnections: Int, connectTimeoutMs: Int, group: any EventLoopGroup, idleTimeout: TimeAmount = .seconds(60)) {
        guard let components = URLComponents(string: url), components.scheme?.lowercased() == "http",
              let host = components.host, !host.isEmpty else { return nil }
        let port = components.port ?? 80
        self.host = host
        self.port = port
        self.address = try? SocketAddress(ipAddress: host, port: port)
        let bracketed = host.contains(":") ? "[\(host)]" : host
        self.hostHeader = components.port == nil ? bracketed : "\(bracketed):\(port)"
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        self.basePath = path
        self.maxConnections = max(1, maxConnections)
        self.connectTimeout = .milliseconds(Int64(max(1, connectTimeoutMs)))
        self.group = group
        self.idleTimeout = idleTimeout
    }

    /// A POST of a JSON body as one buffer: head and body together.
    func post(_ path: String, body: [UInt8], accept: String) -> ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(160 + basePath.utf8.count + path.utf8.count + hostHeader.utf8.count + body.count)
        b.writeStaticString("POST ")
        b.writeString(basePath)
        b.writeString(path)
        b.writeStaticString(" HTTP/1.1\r\nhost: ")
        b.writeString(hostHeader)
        b.writeStaticString("\r\ncontent-type: application/json\r\naccept: ")
        b.writeString(accept)
        b.writeStaticString("\r\ncontent-length: ")
        b.writeString(String(body.count))
        b.writeStaticString("\r\n\r\n")
        b.writeBytes(body)
        return b
    }

    /// Sends `bytes`; the answer goes to `exchange`. Returns the request (to cancel it).
    @discardableResult
    func execute(_ bytes: ByteBuffer, on loop: any EventLoop, exchange: any EngineExchange) -> EngineRequest {
        let request = EngineRequest(pool: self, bytes: bytes, eventLoop: loop, exchange: exchange)
        dispatch(request, fresh: false)
        return request
    }

    private enum Next {
        case use(EngineConnection)
        case connect
        case wait
        case cancelled
        case closed
    }

    /// Gives `request` a connection: an idle one on its event loop (unless `fresh`), a new one on
    /// that loop, an idle one on another loop when `max_connections` are open, or a place in the
    /// queue.
    func dispatch(_ request: EngineRequest, fresh: Bool) {
        let key = ObjectIdentifier(request.eventLoop)
        let next = state.withLock { s -> Next in
            if s.closed { return .closed }
            // (In place: no copy of a bucket.)
            if !fresh, let c = s.idle[key]?.connections.popLast() { return .use(c.connection) }
            // A new connection on the caller's loop rather than an idle one on another loop: a
            // connection on another loop costs two cross-thread wake-ups on every request it
            // carries (the request's write there, its answer back), a new one a handshake once
            // (issue 16; at one client connection the engine's was on the other loop about half
            // the time). An idle one elsewhere is taken when no more may be opened.
            if s.open < maxConnections {
                s.open += 1
                return .connect
            }
            if !fresh, let c = s.idle.values.first(where: { !$0.connections.isEmpty })?.connections.popLast() { return .use(c.connection) }
            // Checked here, under the pool's lock: a request cancelled while it was between
            // connections (a retry) must not wait in the queue.
            if request.isCancelled { return .cancelled }
            s.waiting.append(request)
            return .wait
        }
        switch next {
        case .use(let c): c.start(request)
        case .connect: EngineConnection.open(self, for: request)
        case .wait: break
        case .cancelled: request.exchange.failed(request.cancelReason ?? HTTPClientError.cancelled)
        case .closed: request.exchange.failed(HTTPClientError.alreadyShutdown)
        }
    }

    /// Removes a waiting request from the queue; false if it was not there any more.
    func dequeue(_ request: EngineRequest) -> Bool {
        state.withLock { s in
            guard let i = s.waiting.firstIndex(where: { $0 === request }) else { return false }
            s.waiting.remove(at: i)
            return true
        }
    }

    /// A connection finished a request and may take another (on its loop): the first waiting
    /// request, or the idle list.
    func release(_ connection: EngineConnection) {
        let (waiter, sweep) = state.withLock { s -> (EngineRequest??, Bool) in
            if s.closed { return (.none, false) }
            if !s.waiting.isEmpty { return (.some(s.waiting.removeFirst()), false) }
            Self.idleList(&s, ObjectIdentifier(connection.loop)).connections.append(Idle(connection: connection, since: .now()))
            defer { s.sweeping = true }
            return (.some(nil), !s.sweeping)
        }
        if sweep { scheduleSweep() }
        switch waiter {
        case .none: connection.close()
        case .some(let w?): connection.start(w)
        case .some(nil): break
        }
    }

    /// A connection closed (or never opened): it no longer counts, and a waiting request may
    /// open a new one.
    func closed(_ connection: EngineConnection, wasIdle: Bool) {
        let waiter = state.withLock { s -> EngineRequest? in
            s.open -= 1
            let key = ObjectIdentifier(connection.loop)
            if wasIdle, let list = s.idle[key], let i = list.connections.firstIndex(where: { $0.connection === connection }) {
                list.connections.remove(at: i)
            }
            if !s.closed, !s.waiting.isEmpty, s.open < maxConnections {
                s.open += 1
                return s.waiting.removeFirst()
            }
            return nil
        }
        if let waiter { EngineConnection.open(self, for: waiter) }
    }

    /// Closes, every quarter of the idle timeout, the connections idle for longer; stops when no
    /// connection is open.
    private func scheduleSweep() {
        let period = TimeAmount.nanoseconds(max(idleTimeout.nanoseconds / 4, 1_000_000))
        group.any().scheduleRepeatedTask(initialDelay: period, delay: period) { [self] task in
            let cutoff = NIODeadline.now() - idleTimeout
            let expired = state.withLock { s -> [EngineConnection] in
                var out: [EngineConnection] = []
                for list in s.idle.values {
                    let old = list.connections.prefix(while: { $0.since < cutoff }).count
                    if old > 0 {
                        out += list.connections[..<old].map(\.connection)
                        list.connections.removeFirst(old)
                    }
                }
                if s.open - out.count <= 0 || s.closed {
                    s.sweeping = false
                    task.cancel()
                }
                return out
            }
            // Out of the idle lists already: closed as busy ones (counted once, at their close).
            for c in expired { c.close() }
        }
    }

    /// Connections open now (idle or busy), and idle ones.
    var openConnections: Int { state.withLock { $0.open } }
    var idleConnections: Int { state.withLock { $0.idle.values.reduce(0) { $0 + $1.connections.count } } }

    /// Closes the idle connections; busy ones close when their request ends. Waiting requests fail.
    func shutdown() {
        let (idle, waiting) = state.withLock { s -> ([EngineConnection], [EngineRequest]) in
            s.closed = true
            defer { s.idle = [:]; s.waiting = [] }
            return (s.idle.values.flatMap { $0.connections.map(\.connection) }, s.waiting)
        }
        for c in idle { c.close() }
        for w in waiting { w.exchange.failed(HTTPClientError.alreadyShutdown) }
    }
}

/// One keep-alive connection to an engine, and the only handler in its channel's pipeline. All
/// its state is on its event loop.
final class EngineConnection: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let pool: EnginePool
    let loop: any EventLoop

    private enum Phase { case connecting, open, closed }
    private var phase = Phase.connecting
    private var context: ChannelHandlerContext?
    /// The request being answered (nil: idle).
    private var current: EngineRequest?
    /// Requests answered on this connection (> 0: it is a reused one).
    private var served = 0
    /// Whether any byte of the current answer came.
    private var receivedAny = false
    private var parser = ResponseParser()
    /// Bytes of an incomplete line kept for the next read.
    private var carry: ByteBuffer?
    /// The exchange holds a part: reads wait (``read(context:)`` is held).
    private var paused = false
    private var readPending = false
    /// `pool.closed` was called.
    private var counted = false

    private init(pool: EnginePool, loop: any EventLoop) {
        self.pool = pool
        self.loop = loop
    }

    /// Opens a connection on the request's loop and sends the request on it. (The pool counted
    /// the connection already.)
    static func open(_ pool: EnginePool, for request: EngineRequest) {
        let loop = request.eventLoop
        let connection = EngineConnection(pool: pool, loop: loop)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(pool.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 1 << 16))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(connection) }
            }
        let connected = pool.address.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: pool.host, port: pool.port)
        connection.start(request)
        connected.whenComplete { result in
            switch result {
            case .success: connection.connected()
            case .failure(let error): connection.connectFailed(error)
            }
        }
    }

    // MARK: On the loop

    /// Takes `request` (from any thread).
    func start(_ request: EngineRequest) {
        if loop.inEventLoop {
            startOnLoop(request)
        } else {
            loop.execute { self.startOnLoop(request) }
        }
    }

    private func startOnLoop(_ request: EngineRequest) {
        guard request.attach(self) else {
            // Cancelled meanwhile: an open connection is free again; one opened for this request
            // is closed (the engine may have seen it: it must not wait for a request).
            if phase == .open && current == nil { pool.release(self) }
            if phase == .connecting && current == nil { close() }
            return
        }
        current = request
        receivedAny = false
        parser.reset()
        switch phase {
        case .connecting: break  // sent when connected
        case .open: send(request)
        case .closed: lost(HTTPClientError.remoteConnectionClosed)
        }
    }

    private func send(_ request: EngineRequest) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(request.bytes), promise: nil)
    }

    private func connected() {
        guard phase == .connecting else {
            if phase == .closed { context?.close(promise: nil) }  // aborted before it was set up
            return
        }
        phase = .open
        if let current {
            send(current)
        } else {
            pool.release(self)
        }
    }

    private func connectFailed(_ error: any Error) {
        phase = .closed
        var mapped = error
        if case .connectTimeout? = error as? ChannelError { mapped = HTTPClientError.connectTimeout }
        if let request = current {
            current = nil
            request.exchange.failed(mapped)
        }
        count(wasIdle: false)
    }

    private func count(wasIdle: Bool) {
        guard !counted else { return }
        counted = true
        pool.closed(self, wasIdle: wasIdle)
    }

    /// Cancels `request` if this connection is answering it: the connection closes (the engine
    /// stops generating), and the exchange fails with `reason`. From any thread.
    func abort(_ request: EngineRequest, reason: any Error) {
        guard loop.inEventLoop else {
            loop.execute { self.abort(request, reason: reason) }
            return
        }
        guard current === request else { return }
        current = nil
        close()
        request.exchange.failed(reason)
    }

    /// The exchange took its held part: read on (from any thread).
    func resume(_ request: EngineRequest) {
        guard loop.inEventLoop else {
            loop.execute { self.resume(request) }
            return
        }
        guard current === request, paused else { return }
        paused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Closes the connection (on any thread).
    func close() {
        guard loop.inEventLoop else {
            loop.execute { self.close() }
            return
        }
        let wasIdle = phase == .open && current == nil
        if phase == .closed { return }
        phase = .closed
        context?.close(promise: nil)
        if wasIdle { count(wasIdle: true) }
    }

    /// The connection broke (closed by the engine, an I/O error, an answer we cannot read).
    private func lost(_ error: any Error) {
        let wasIdle = phase == .open && current == nil
        phase = .closed
        if let request = current {
            current = nil
            if !receivedAny && served > 0 && request.mayRetry() {
                // A reused connection the engine had closed: once more, on a fresh one.
                request.pool.dispatch(request, fresh: true)
            } else {
                request.exchange.failed(error)
            }
        }
        context?.close(promise: nil)
        count(wasIdle: wasIdle)
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelInactive(context: ChannelHandlerContext) {
        if phase != .closed || current != nil {
            if current != nil, parser.eof() {
                finishAnswer(reusable: false)
            } else {
                lost(HTTPClientError.remoteConnectionClosed)
            }
        }
        count(wasIdle: false)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        lost(error)
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard let request = current else {
            // Bytes nobody asked for: this connection cannot be trusted any more.
            lost(HTTPClientError.remoteConnectionClosed)
            return
        }
        if !receivedAny {
            receivedAny = true
            request.sent()
        }
        if var kept = carry {
            carry = nil
            kept.writeBuffer(&buffer)
            buffer = kept
        }
        var part: ByteBuffer?
        do {
            while let event = try parser.next(&buffer) {
                switch event {
                case .head(let head):
                    request.exchange.received(head: head)
                case .body(let bytes):
                    if part == nil {
                        part = bytes
                    } else {
                        var bytes = bytes
                        part!.writeBuffer(&bytes)
                    }
                case .end:
                    if let part, !request.exchange.received(part: part) { paused = true }
                    // Bytes past the answer's end: something is wrong, do not reuse.
                    finishAnswer(reusable: parser.keepAlive && buffer.readableBytes == 0)
                    return
                }
                guard current === request else { return }  // the exchange cancelled it
            }
        } catch {
            lost(error)
            return
        }
        if buffer.readableBytes > 0 { carry = ByteBuffer(bytes: buffer.readableBytesView) }
        if let part, !request.exchange.received(part: part) { paused = true }
    }

    /// The answer is whole: the exchange is told, and the connection goes back to the pool (or
    /// closes).
    private func finishAnswer(reusable: Bool) {
        guard let request = current else { return }
        current = nil
        served += 1
        carry = nil
        // A part the exchange still holds is its own now; the next answer reads freely.
        paused = false
        if reusable && phase == .open {
            if readPending, let context {
                readPending = false
                context.read()
            }
            pool.release(self)
        } else {
            close()
            if phase == .closed { count(wasIdle: false) }
        }
        request.exchange.receivedEnd()
    }
}

/// An HTTP/1.1 response parser, incremental over the reads of one connection: the status line
/// and the three headers that frame the body (`content-length`, `transfer-encoding: chunked`,
/// `connection`), then the body as slices of the read buffers (no copy).
struct ResponseParser {
    enum Event {
        case head(HTTPResponseHead)
        case body(ByteBuffer)
        case end
    }

    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkEnd
        case trailers
        case untilClose
        case done
    }

    struct Malformed: Error, CustomStringConvertible {
        let what: String
        var description: String { "the engine's answer is not valid HTTP/1.1 (\(what))" }
    }

    static let maxHead = 64 << 10

    private var state = State.head
    /// Whether the connection may carry another request after this answer.
    private(set) var keepAlive = true

    mutating func reset() {
        state = .head
        keepAlive = true
    }

    /// The connection closed: true if that ends the body (an answer framed by the close).
    mutating func eof() -> Bool {
        if case .untilClose = state {
            state = .done
            return true
        }
        return false
    }

    /// The next event in `buffer`, consuming its bytes; nil when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Event? {
        while true {
            switch state {
            case .head:
                guard let end = Self.find(buffer, "\r\n\r\n") else {
                    if buffer.readableBytes > Self.maxHead { throw Malformed(what: "head too large") }
                    return nil
                }
                let head = try parseHead(buffer, end: end)
                buffer.moveReaderIndex(forwardBy: end + 4)
                if let head { return .head(head) }
            case .body(let remaining):
                if remaining == 0 {
                    state = .done
                    return .end
                }
                let n = min(remaining, buffer.readableBytes)
                if n == 0 { return nil }
                state = .body(remaining: remaining - n)
                return .body(buffer.readSlice(length: n)!)
            case .chunkSize:
                guard let end = Self.find(buffer, "\r\n") else {
                    if buffer.readableBytes > 4096 { throw Malformed(what: "chunk size line too long") }
                    return nil
                }
                var size = 0
                var digits = 0
                for byte in buffer.readableBytesView.prefix(end) {
                    let v: Int
                    switch byte {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): v = Int(byte - UInt8(ascii: "0"))
                    case UInt8(ascii: "a")...UInt8(ascii: "f"): v = Int(byte - UInt8(ascii: "a")) + 10
                    case UInt8(ascii: "A")...UInt8(ascii: "F"): v = Int(byte - UInt8(ascii: "A")) + 10
                    default: v = -1
                    }
                    if v < 0 { break }
                    size = size * 16 + v
                    digits += 1
                    if digits > 15 { throw Malformed(what: "chunk too large") }
                }
                if digits == 0 { throw Malformed(what: "bad chunk size") }
                buffer.moveReaderIndex(forwardBy: end + 2)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, buffer.readableBytes)
                if n == 0 { return nil }
                state = remaining == n ? .chunkEnd : .chunkData(remaining: remaining - n)
                return .body(buffer.readSlice(length: n)!)
            case .chunkEnd:
                guard buffer.readableBytes >= 2 else { return nil }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw Malformed(what: "chunk not followed by CRLF") }
                state = .chunkSize
            case .trailers:
                guard let end = Self.find(buffer, "\r\n") else {
                    if buffer.readableBytes > Self.maxHead { throw Malformed(what: "trailers too large") }
                    return nil
                }
                buffer.moveReaderIndex(forwardBy: end + 2)
                if end == 0 {
                    state = .done
                    return .end
                }
            case .untilClose:
                if buffer.readableBytes == 0 { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .done:
                return nil
            }
        }
    }

    /// The head's status and framing; nil for an interim (1xx) answer, which is skipped. `end`:
    /// where the head's blank line starts in the readable bytes. Scans the bytes in place: no line
    /// array, no copies (it runs once per engine answer; issue 16).
    private mutating func parseHead(_ buffer: ByteBuffer, end: Int) throws -> HTTPResponseHead? {
        let (code, length, chunked, close) = try buffer.withUnsafeReadableBytes { raw in
            try Self.scanHead(UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: end))
        }
        if code >= 100 && code < 200 && code != 101 { return nil }
        keepAlive = !close
        if code == 204 || code == 304 || code == 101 {
            state = .body(remaining: 0)
        } else if chunked {
            state = .chunkSize
        } else if let length {
            state = .body(remaining: length)
        } else {
            state = .untilClose
            keepAlive = false
        }
        return HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: code))
    }

    /// Status code and framing of a head's bytes (its lines split on LF, a CR before it trimmed).
    static func scanHead(_ b: UnsafeBufferPointer<UInt8>) throws -> (code: Int, length: Int?, chunked: Bool, close: Bool) {
        // "HTTP/1.x NNN reason"
        let statusEnd = Self.lineEnd(b, from: 0)
        guard statusEnd >= 12, Self.matches(b, at: 0, "HTTP/1."), b[8] == UInt8(ascii: " ") else {
            throw Malformed(what: "bad status line")
        }
        var code = 0
        for i in 9..<12 {
            let d = b[i]
            guard d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") else { throw Malformed(what: "bad status code") }
            code = code * 10 + Int(d - UInt8(ascii: "0"))
        }
        var length: Int?
        var chunked = false
        var close = b[7] == UInt8(ascii: "0")
        var start = statusEnd + 1
        while start < b.count {
            let stop = Self.lineEnd(b, from: start)
            defer { start = stop + 1 }
            var colon = start
            while colon < stop && b[colon] != UInt8(ascii: ":") { colon += 1 }
            guard colon < stop else { continue }
            var v = colon + 1, e = stop
            while v < e, b[v] == UInt8(ascii: " ") || b[v] == UInt8(ascii: "\t") { v += 1 }
            while e > v, b[e - 1] == UInt8(ascii: " ") || b[e - 1] == UInt8(ascii: "\t") || b[e - 1] == UInt8(ascii: "\r") { e -= 1 }
            let name = start..<colon, value = v..<e
            if Self.equalsLowercased(b, name, "content-length") {
                var n = 0
                for i in value {
                    let d = b[i]
                    guard d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9"), n < (1 << 50) else { throw Malformed(what: "bad content-length") }
                    n = n * 10 + Int(d - UInt8(ascii: "0"))
                }
                if let length, length != n { throw Malformed(what: "two content-lengths") }
                length = n
            } else if Self.equalsLowercased(b, name, "transfer-encoding") {
                if Self.containsLowercased(b, value, "chunked") { chunked = true }
            } else if Self.equalsLowercased(b, name, "connection") {
                if Self.containsLowercased(b, value, "close") { close = true }
                if Self.containsLowercased(b, value, "keep-alive") { close = false }
            }
        }
        return (code, length, chunked, close)
    }

    /// Index of the LF ending the line that starts at `from` (the buffer's end when none).
    private static func lineEnd(_ b: UnsafeBufferPointer<UInt8>, from: Int) -> Int {
        var i = from
        while i < b.count && b[i] != UInt8(ascii: "\n") { i += 1 }
        return i
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }

    private static func matches(_ b: UnsafeBufferPointer<UInt8>, at i: Int, _ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard i + n <= b.count else { return false }
        for k in 0..<n where b[i + k] != s.utf8Start[k] { return false }
        return true
    }

    private static func equalsLowercased(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ name: StaticString) -> Bool {
        guard r.count == name.utf8CodeUnitCount else { return false }
        for (k, i) in r.enumerated() where lower(b[i]) != name.utf8Start[k] { return false }
        return true
    }

    private static func containsLowercased(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard n > 0, r.count >= n else { return false }
        outer: for i in r.lowerBound...(r.upperBound - n) {
            for k in 0..<n where lower(b[i + k]) != word.utf8Start[k] { continue outer }
            return true
        }
        return false
    }

    /// Offset of `pattern` in the buffer's readable bytes.
    private static func find(_ buffer: ByteBuffer, _ pattern: StaticString) -> Int? {
        let p = UnsafeBufferPointer(start: pattern.utf8Start, count: pattern.utf8CodeUnitCount)
        return buffer.withUnsafeReadableBytes { raw in
            ByteSearch.firstIndex(of: p, in: UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count))
        }
    }
}
