import Clocks
import EngineSim
import Logging
import OpenAIWire
import Testing
@testable import Fleet

/// A stream's silence is watched by one watchdog per engine (issue 16: no sleeping task per
/// stream): a stream silent for longer than `idle_ms` fails with a streaming timeout, after the
/// usage of what it relayed; streams that keep talking are untouched, and ended streams are no
/// longer watched.
@Suite(.serialized) struct IdleWatchTests {
    /// Polls (bounded) until the engine watches no stream: the reader unregisters as it ends.
    func unwatched(_ engine: Engine) async -> Bool {
        for _ in 0..<1000 where engine.idleWatch.watching != 0 { try? await Task.sleep(for: .milliseconds(10)) }
        return engine.idleWatch.watching == 0
    }

    @Test func silentStreamTimesOutOthersDoNot() async throws {
        // First token at once, then a minute of silence: the watchdog (idle 300 ms) must cut it.
        let sims = SimFleet(configs: [SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 60_000, defaultTokens: 4),
                                      SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 5, defaultTokens: 4)])
        try await sims.start()
        let silent = BackendConfig(name: "silent", kind: .sim, url: "http://127.0.0.1:\(sims.boundPorts[0])", models: ["quiet": "sim-chat"],
                                   timeouts: Timeouts(connectMs: 2000, firstByteMs: 10_000, idleMs: 300))
        let talking = BackendConfig(name: "talking", kind: .sim, url: "http://127.0.0.1:\(sims.boundPorts[1])", models: ["chatty": "sim-chat"],
                                    timeouts: Timeouts(connectMs: 2000, firstByteMs: 10_000, idleMs: 300))
        let fleet = Fleet(configs: [silent, talking], http: testHTTP, logger: Logger(label: "t"))

        let (engine, response) = try await fleet.send(model: "quiet", endpoint: .chat, body: chatBody(stream: true), stream: true)
        guard case .stream(let events) = response else { Issue.record("not a stream"); return }
        var chunks = 0
        var usage: Usage?
        do {
            for try await e in events {
                switch e {
                case .chunk: chunks += 1
                case .usage(let u): usage = u
                }
            }
            Issue.record("a silent stream must fail")
        } catch let e as EngineError {
            guard case .timeout(_, let ms, let streaming) = e else { Issue.record("not a timeout: \(e)"); return }
            #expect(ms == 300 && streaming)
        }
        #expect(chunks >= 1)
        #expect(usage?.estimated == true)  // what was relayed is billed, marked estimated
        #expect(await unwatched(engine))

        // A stream that keeps talking (a token every 5 ms) completes under the same idle limit.
        let (chatty, ok) = try await fleet.send(model: "chatty", endpoint: .chat, body: chatBody(stream: true), stream: true)
        guard case .stream(let okEvents) = ok else { Issue.record("not a stream"); return }
        var okUsage: Usage?
        for try await e in okEvents { if case .usage(let u) = e { okUsage = u } }
        #expect(okUsage != nil && okUsage?.estimated == false)
        #expect(await unwatched(chatty))
        await sims.shutdown()
    }

    /// A reader that is slow to take the engine's bytes (a slow client: the part not taken holds
    /// the connection's reads) does not make the stream look silent, however long it takes; once
    /// it takes the part, the silence counts again from then.
    @Test func aPartWaitingForTheReaderIsNotSilence() async throws {
        let sims = SimFleet(configs: [SimConfig(models: ["sim-chat"], ttftMs: 1, itlMs: 20, defaultTokens: 6)])
        try await sims.start()
        let config = BackendConfig(name: "slow-reader", kind: .sim, url: "http://127.0.0.1:\(sims.boundPorts[0])", models: ["m": "sim-chat"],
                                   timeouts: Timeouts(connectMs: 2000, firstByteMs: 10_000, idleMs: 300))
        let clock = ManualClock(nowMs: 1_000_000)
        let fleet = Fleet(configs: [config], http: testHTTP, logger: Logger(label: "t"), clock: clock)
        let (engine, response) = try await fleet.send(model: "m", endpoint: .chat, body: chatBody(stream: true), stream: true)
        guard case .stream(let events) = response else { Issue.record("not a stream"); return }
        var it = events.relayed.makeAsyncIterator()
        _ = try await it.next()  // the first event, then nothing taken for a while
        let activity = events.reader.body.activity
        // The engine goes on sending: a part arrives and waits for the reader (bounded poll).
        for _ in 0..<1000 where !events.reader.body.hasWaitingPart { try? await Task.sleep(for: .milliseconds(5)) }
        #expect(events.reader.body.hasWaitingPart)
        clock.advance(byMs: 10_000)  // far past idle_ms: still not silent, a part is waiting
        #expect(activity.silentMs == 0)
        var usage: Usage?
        while let e = try await it.next() { if case .usage(let u) = e { usage = u } }
        #expect(usage != nil && usage?.estimated == false)
        #expect(await unwatched(engine))
        await sims.shutdown()
    }
}
