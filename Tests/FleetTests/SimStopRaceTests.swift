import EngineSim
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Stopping a SIMULATED engine while connections are still being accepted must not crash: NIO
/// drops a connection that reaches a closed listener, and its writer must have been finished
/// ("Deinited NIOAsyncWriter without calling finish()" otherwise, signal 4 on an NIO thread).
@Suite(.serialized) struct SimStopRaceTests {
    /// Opens a TCP connection, sends a request, reads until the server closes or answers.
    static func poke(_ port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        // Bounded: a connection nobody closes must not hang the suite.
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return }
        let request = Array("GET /health HTTP/1.1\r\nhost: x\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var buffer = [UInt8](repeating: 0, count: 512)
        _ = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    }

    @Test func stopWhileConnectionsArriveDoesNotCrash() async throws {
        for _ in 0..<30 {
            let sim = EngineSim(config: SimConfig(models: ["sim-chat"], ttftMs: 0, itlMs: 0, defaultTokens: 1))
            let (ports, cont) = AsyncStream.makeStream(of: Int.self)
            let run = Task { try await sim.run(port: 0) { cont.yield($0) } }
            var it = ports.makeAsyncIterator()
            let port = try #require(await it.next())
            // A burst of connections, and the stop in the middle of it.
            let done = DispatchGroup()
            for _ in 0..<24 {
                done.enter()
                Thread.detachNewThread { Self.poke(port); done.leave() }
            }
            sim.stop()
            _ = await run.result
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async { done.wait(); c.resume() }
            }
        }
    }
}
