import Logging
import OpenAIWire
import Testing
@testable import Fleet

/// What the gateway changes in a request for an engine kind, and how it reads an engine's errors
/// (issue 11). No engine is called.
@Suite struct EngineAdapterTests {
    func engine(_ kind: EngineKind) -> Engine {
        Engine(config: BackendConfig(name: "e", kind: kind, url: "http://127.0.0.1:1", models: ["m": "m"]), http: testHTTP,
               logger: Logger(label: "t"))
    }

    func prepared(_ kind: EngineKind, _ text: String, stream: Bool = false) throws -> JSONValue {
        var body = try JSONValue.parse(text)
        engine(kind).prepare(&body, UpstreamRequest(endpoint: .chat, body: body, stream: stream))
        return body
    }

    @Test func llamaCppGetsMaxTokensForMaxCompletionTokens() throws {
        let b = try prepared(.llamacpp, #"{"model":"m","messages":[],"max_completion_tokens":5}"#)
        #expect(b["max_tokens"]?.intValue == 5 && b["max_completion_tokens"] == nil)
        let both = try prepared(.llamacpp, #"{"model":"m","messages":[],"max_completion_tokens":5,"max_tokens":3}"#)
        #expect(both["max_tokens"]?.intValue == 3)
        let legacy = try prepared(.llamacpp, #"{"model":"m","messages":[],"max_tokens":7}"#)
        #expect(legacy["max_tokens"]?.intValue == 7)
    }

    @Test(arguments: [EngineKind.vllm, .openai, .sim])
    func openAIKindsKeepMaxCompletionTokens(_ kind: EngineKind) throws {
        let b = try prepared(kind, #"{"model":"m","messages":[],"max_completion_tokens":5}"#)
        #expect(b["max_completion_tokens"]?.intValue == 5)
    }

    @Test func tracebackGivesItsExceptionLine() {
        let traceback = """
        Traceback (most recent call last):
          File "/venv/lib/python3.11/site-packages/llama_cpp/server/errors.py", line 171, in custom_route_handler
            response = await original_route_handler(request)
                       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        ValueError: Requested tokens (9000) exceed context window of 8192
        """
        #expect(Engine.firstLine(of: traceback) == "ValueError: Requested tokens (9000) exceed context window of 8192")
        #expect(Engine.firstLine(of: "grammar parse failed:\nexpecting ')' at line 1") == "grammar parse failed: expecting ')' at line 1")
        #expect(!Engine.firstLine(of: "File \"/x/y.py\", line 3\nboom at /x/y.py").contains(".py"))
    }
}
