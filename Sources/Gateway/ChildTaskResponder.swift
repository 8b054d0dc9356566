import Hummingbird

/// Answers each request in a child task of the connection's task, on the connection's event loop.
///
/// A Swift task's allocator keeps every slab it used until the task ends. Hummingbird runs the
/// middlewares, the router and the route in the connection's task, which then writes the response
/// body — for a stream, for as long as the stream lasts — so the slabs those frames used stayed
/// allocated for the whole stream (heaptrack: ≈ 7 KB per open stream, issue 16). In a child task
/// they are freed when the response is returned, before its body is written.
struct ChildTaskResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == GatewayContext {
    typealias Context = GatewayContext
    let inner: Inner

    func respond(to request: Request, context: Context) async throws -> Response {
        let executor = LoopExecutor.of(context.channel.eventLoop)
        return try await withThrowingTaskGroup(of: Response.self) { group in
            group.addTask(executorPreference: executor) { try await inner.respond(to: request, context: context) }
            return try await group.next()!
        }
    }
}
