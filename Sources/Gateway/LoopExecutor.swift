import NIOCore
import Synchronization

/// A Swift task executor that runs jobs on one NIO event loop (issue 16).
///
/// A request's pipeline runs in a task that prefers the event loop of the client's connection
/// (`withTaskExecutorPreference` / `addTask(executorPreference:)`): every resumption — after the
/// engine's answer arrived on another loop, after the group commit's writer thread — comes back to
/// that loop directly, where the answer is written, instead of to whichever loop resumed it (and a
/// write hop back to the connection's loop).
///
/// It also runs a job as a *task executor's* job, i.e. on the generic executor: jobs that
/// NIO's global-executor hook runs are run as the event loop's serial executor's, so each return
/// to nonisolated code (`swift_task_switch` to the generic executor) re-enqueued the task on the
/// loop — a few per request, ~4 % of the gateway's CPU in `bench/profile --perf`.
final class LoopExecutor: TaskExecutor {
    let loop: any EventLoop

    private init(loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }

    /// One executor per event loop, made on first use and kept (event loops live as long as the
    /// process; a loop of a group that was shut down is never asked for again).
    private static let executors = Mutex<[ObjectIdentifier: LoopExecutor]>([:])

    static func of(_ loop: any EventLoop) -> LoopExecutor {
        let id = ObjectIdentifier(loop)
        return executors.withLock { all in
            if let e = all[id] { return e }
            let e = LoopExecutor(loop: loop)
            all[id] = e
            return e
        }
    }
}
