import Clocks
import Foundation
import Logging
import Synchronization

/// Starts a local llama.cpp server (`python -m llama_cpp.server`), restarts it if it dies, and
/// stops it on shutdown. The engine also exits by itself when the gateway dies (it watches its
/// parent), so a killed gateway never leaves an orphan holding the port.
public final class ManagedEngine: Sendable {
    public let backend: BackendConfig
    let managed: ManagedEngineConfig
    let clock: any PlatformClock
    let logFile: String
    let logger: Logger
    private let state = Mutex<State>(State())

    struct State {
        var process: Process?
        var stopping = false
    }

    public init(backend: BackendConfig, managed: ManagedEngineConfig, logFile: String, logger: Logger, clock: any PlatformClock = SystemClock()) {
        self.clock = clock
        self.backend = backend
        self.managed = managed
        self.logFile = logFile
        self.logger = logger
    }

    /// The engine's command line: host and port from the backend URL, one alias per served name.
    public func arguments() throws -> [String] {
        guard let url = URL(string: backend.url), let host = url.host, let port = url.port else {
            throw ManagedEngineError("backend '\(backend.name)': url must name a host and a port, e.g. http://127.0.0.1:8081")
        }
        let alias = Set(backend.models.values).sorted().first ?? "model"
        // Exit when the parent (this gateway) is gone: a killed gateway must not leave an orphan.
        let bootstrap = """
        import os, sys, threading, time, runpy
        parent = os.getppid()
        def watch():
            while True:
                time.sleep(0.5)
                if os.getppid() != parent:
                    os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
        sys.argv = ["llama_cpp.server"] + sys.argv[1:]
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
        """
        // --interrupt_requests false: by default a new request cuts the running stream.
        // --embedding true: the same model also serves /v1/embeddings (chat keeps working).
        return ["-c", bootstrap, "--model", managed.modelFile, "--model_alias", alias,
                "--host", host, "--port", String(port), "--interrupt_requests", "false", "--embedding", "true",
                "--n_ctx", "8192"] + managed.extraArgs
    }

    /// Runs the supervision loop until ``stop()``: start, wait for exit, restart with backoff.
    public func run() async {
        var backoffMs = 500
        while !state.withLock({ $0.stopping }) {
            let started = clock.now()
            do {
                let code = try await runOnce()
                if state.withLock({ $0.stopping }) { return }
                logger.warning("managed engine exited; restarting", metadata: ["backend": "\(backend.name)", "status": "\(code)"])
            } catch {
                logger.error("managed engine could not start", metadata: ["backend": "\(backend.name)", "error": "\(error)"])
            }
            if clock.now() - started > 30_000 { backoffMs = 500 }
            try? await Task.sleep(for: .milliseconds(backoffMs))
            backoffMs = min(backoffMs * 2, 10_000)
        }
    }

    private func runOnce() async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: managed.python)
        process.arguments = try arguments()
        if !FileManager.default.fileExists(atPath: logFile) { _ = FileManager.default.createFile(atPath: logFile, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        return try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { p in
                try? log.close()
                continuation.resume(returning: p.terminationStatus)
            }
            do {
                let proceed = state.withLock { s -> Bool in
                    if s.stopping { return false }
                    s.process = process
                    return true
                }
                guard proceed else {
                    process.terminationHandler = nil
                    continuation.resume(returning: 0)
                    return
                }
                try process.run()
                logger.info("managed engine started", metadata: ["backend": "\(backend.name)", "pid": "\(process.processIdentifier)"])
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
    }

    /// Stops the engine: SIGTERM, then SIGKILL after 5 s.
    public func stop() async {
        let process = state.withLock { s -> Process? in
            s.stopping = true
            return s.process
        }
        guard let process, process.isRunning else { return }
        process.terminate()
        for _ in 0..<50 where process.isRunning { try? await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

public struct ManagedEngineError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
