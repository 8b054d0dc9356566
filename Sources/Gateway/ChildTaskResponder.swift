import Hummingbird

/// Answers each request in a child task of the connection's task, on the connection's event loop.
///
/// A Swift task's allocator keeps every slab it used until the task ends. Hummingbird runs the
/// middlewares, the router and the route in the connection's task, which then writes the response
/// body — for a stream, for as long as the stream lasts — so the slabs those frames used stayed
/// allocated for the whole stream (heaptrack: ≈ 7 KB per open stream, issue 16). In a child task
/// they are freed when the response is returned, before its body is written.
///
/// A stream whose engine has answered but not yet sent its first token is returned through the
/// context's ``PendingSlot`` (the child's response is then a placeholder): the wait for that token
/// runs here, in the connection's task, after the child task — and its slabs — ended (issue 16).
struct ChildTaskResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == GatewayContext {
    typealias Context = GatewayContext
    let inner: Inner

    func respond(to request: Request, context: Context) async throws -> Response {
        let executor = LoopExecutor.of(context.channel.eventLoop)
        let slot = PendingSlot()
        var context = context
        context.pendingSlot = slot
        let response = try await withThrowingTaskGroup(of: Response.self) { [context] group in
            group.addTask(executorPreference: executor) { try await inner.respond(to: request, context: context) }
            return try await group.next()!
        }
        guard let pending = slot.stream else { return response }
        slot.stream = nil
        // In a small child task of its own: the wait's frames (the engine body's reads) are freed
        // with it instead of deepening the connection's task, which then writes the stream.
        return await withTaskGroup(of: Response.self) { group in
            group.addTask(executorPreference: executor) { await pending.resolve() }
            return await group.next()!
        }
    }
}
