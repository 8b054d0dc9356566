import NIOCore
import NIOHTTP1

/// Sends an engine request's head and body in one write (issue 16).
///
/// AsyncHTTPClient writes a request's head with a flush of its own and then its body (its
/// `HTTP1ClientChannelHandler` flushes the head before it asks the body for its bytes), so every
/// POST to an engine cost two `write`s on the socket — two trips through the kernel's TCP stack,
/// and two wake-ups of the engine — where one would do. This handler sits between that handler
/// and the HTTP encoder of each engine connection and holds back a flush that follows a head
/// alone: the body's own flush, which for a `.bytes` body comes in the same event-loop tick,
/// then sends both. A held flush is never lost: it is done at the end of the tick anyway (a
/// body that comes later, or no body at all, waits for nothing). A request with no body (head
/// and end written together) is flushed at once, as before.
final class RequestHeadFlush: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// A head was written since the last flush, and nothing after it.
    private var headAlone = false
    /// A flush is held back (its catch-up is scheduled at the end of the tick).
    private var held = false

    init() {}

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: headAlone = true
        case .body, .end: headAlone = false
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        guard headAlone else {
            held = false
            context.flush()
            return
        }
        if held { return }
        held = true
        // Not lost: if the body has not flushed by the end of this tick, the head goes alone.
        context.eventLoop.assumeIsolated().execute { [self] in
            guard held else { return }
            held = false
            context.flush()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        held = false  // a catch-up still scheduled does nothing on a removed handler
    }

    /// Adds the handler to an HTTP/1.1 engine connection made by AsyncHTTPClient (its
    /// `http1_1ConnectionDebugInitializer`, the one hook it offers on a new connection's pipeline):
    /// right after the request encoder, so it sees the request's parts.
    /// Synchronous on the channel's loop (where AsyncHTTPClient calls it), so the connection is
    /// handed to the pool in the same tick as without the handler.
    static func install(on channel: any Channel) -> EventLoopFuture<Void> {
        @Sendable func add() throws {
            let pipeline = channel.pipeline.syncOperations
            let encoder = try pipeline.handler(type: HTTPRequestEncoder.self)
            try pipeline.addHandler(RequestHeadFlush(), position: .after(encoder))
        }
        if channel.eventLoop.inEventLoop { return channel.eventLoop.makeCompletedFuture(Result { try add() }) }
        return channel.eventLoop.submit(add)
    }
}
