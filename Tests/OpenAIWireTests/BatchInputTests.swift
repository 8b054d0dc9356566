import OpenAIWire
import Testing

/// The batch input file's line-by-line validation and the batch status machine (issue 17).
@Suite struct BatchInputTests {
    static func line(_ id: String, url: String = "/v1/chat/completions", body: String? = nil, method: String = "POST") -> String {
        let b = body ?? #"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#
        return #"{"custom_id":"\#(id)","method":"\#(method)","url":"\#(url)","body":\#(b)}"#
    }

    static func parse(_ lines: [String], max: Int = 100) throws(APIError) -> BatchInput {
        try BatchInput(jsonl: Array(lines.joined(separator: "\n").utf8), maxRequests: max)
    }

    static func error(_ lines: [String], max: Int = 100) -> APIError? {
        do { _ = try parse(lines, max: max); return nil } catch { return error }
    }

    @Test func aValidFileGivesItsLinesAndEndpoint() throws {
        let input = try Self.parse([Self.line("a"), Self.line("b"), "", ""])  // trailing blank lines ignored
        #expect(input.endpoint == .chat)
        #expect(input.lines.map(\.customID) == ["a", "b"])
        #expect(input.lines.map(\.number) == [1, 2])
        let crlf = try BatchInput(jsonl: Array((Self.line("x") + "\r\n" + Self.line("y") + "\r\n").utf8), maxRequests: 10)
        #expect(crlf.lines.count == 2)
        let emb = try Self.parse([Self.line("e", url: "/v1/embeddings", body: #"{"model":"m","input":"t"}"#)])
        #expect(emb.endpoint == .embeddings)
    }

    @Test func everyErrorNamesItsLine() throws {
        let cases: [([String], String, String)] = [
            ([Self.line("a"), "{oops"], "Line 2", "not valid JSON"),
            ([Self.line("a"), Self.line("a")], "Line 2", "custom_id 'a' is used by an earlier line"),
            ([Self.line("a"), Self.line("b", url: "/v1/completions", body: #"{"model":"m","prompt":"p"}"#)], "Line 2", "same endpoint"),
            ([Self.line("a", method: "GET")], "Line 1", "'method' must be \"POST\""),
            ([Self.line("a", url: "/v1/images/generations")], "Line 1", "'url' must be one of"),
            ([Self.line("a"), Self.line("b", body: #"{"model":"m"}"#)], "Line 2", "messages"),
            ([Self.line("a", body: #"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#)], "Line 1", "cannot stream"),
            ([Self.line("a"), "", Self.line("b")], "Line 2", "empty"),
            ([#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{},"extra":1}"#], "Line 1", "unknown field 'extra'"),
            ([#"{"method":"POST","url":"/v1/chat/completions","body":{}}"#], "Line 1", "custom_id"),
            (["[1,2]"], "Line 1", "expected a JSON object"),
            ([Self.line(String(repeating: "x", count: 513))], "Line 1", "longer than 512"),
        ]
        for (lines, at, what) in cases {
            let e = try #require(Self.error(lines), "\(lines) should be refused")
            #expect(e.status == 400 && e.param == "file" && e.type == "invalid_request_error")
            #expect(e.message.contains(at) && e.message.contains(what), "\(e.message)")
        }
    }

    @Test func theRequestLimitIsEnforcedAtTheFirstLineBeyondIt() throws {
        let e = try #require(Self.error((0..<4).map { Self.line("r\($0)") }, max: 3))
        #expect(e.code == "too_many_requests" && e.message.contains("Line 4") && e.message.contains("more than 3"))
        #expect(try Self.parse((0..<3).map { Self.line("r\($0)") }, max: 3).lines.count == 3)
    }

    @Test func anEmptyFileIsRefused() {
        #expect(Self.error([])?.message.contains("no request") == true)
        #expect(Self.error(["", "  "])?.message.contains("no request") == true)
    }

    @Test func statusMachine() {
        typealias S = BatchStatus
        #expect(S.validating.canMove(to: .inProgress) && S.validating.canMove(to: .failed))
        #expect(S.inProgress.canMove(to: .finalizing) && S.finalizing.canMove(to: .completed))
        #expect(S.inProgress.canMove(to: .cancelling) && S.cancelling.canMove(to: .cancelled))
        #expect(S.inProgress.canMove(to: .expired))
        #expect(!S.completed.canMove(to: .cancelling) && !S.cancelled.canMove(to: .inProgress) && !S.failed.canMove(to: .inProgress))
        #expect(!S.inProgress.canMove(to: .completed), "a batch completes only through finalizing")
        for s in S.allCases where s.isTerminal { #expect(S.allCases.allSatisfy { !s.canMove(to: $0) }) }
        #expect(S(rawValue: "in_progress") == .inProgress && S.inProgress.timestampField == "in_progress_at")
    }
}
