import Testing
@testable import OpenAIWire

/// Rerank (Cohere's shape, cosine ranking) and the transcription form (issue 17).
@Suite struct RerankAndAudioWireTests {
    func parse(_ endpoint: Endpoint, _ text: String) throws(APIError) -> InferenceRequest {
        try InferenceRequest(endpoint: endpoint, bytes: Array(text.utf8))
    }

    func error(_ endpoint: Endpoint, _ text: String) -> APIError? {
        do { _ = try parse(endpoint, text); return nil } catch { return error }
    }

    @Test func documentsAsStringsOrObjects() throws {
        let r = try parse(.rerankV2, #"{"model":"m","query":"q","documents":["a",{"text":"b","title":"x"}],"top_n":1,"return_documents":true}"#)
        #expect(Rerank.documents(r.body) == ["a", "b"])
        #expect(r.endpoint.spec.texts(r.body).map(\.text) == ["q", "a", "b"])
        #expect(r.endpoint.spec.inspectedTexts(r.body).isEmpty)
        #expect(Rerank.engineBody(r.body)["documents"] == ["a", "b"])
        #expect(Rerank.embeddingsBody(r.body)["input"] == ["q", "a", "b"])
    }

    @Test func validationErrorsNameTheParameter() {
        let cases: [(String, String?, Int)] = [
            (#"{"model":"m","documents":["a"]}"#, "query", 400),
            (#"{"model":"m","query":"","documents":["a"]}"#, "query", 400),
            (#"{"model":"m","query":"q"}"#, "documents", 400),
            (#"{"model":"m","query":"q","documents":[]}"#, "documents", 400),
            (#"{"model":"m","query":"q","documents":"a"}"#, "documents", 400),
            (#"{"model":"m","query":"q","documents":["a",3]}"#, "documents[1]", 400),
            (#"{"model":"m","query":"q","documents":[{"title":"t"}]}"#, "documents[0].text", 400),
            (#"{"model":"m","query":"q","documents":[""]}"#, "documents[0]", 400),
            (#"{"model":"m","query":"q","documents":["a"],"top_n":0}"#, "top_n", 400),
            (#"{"model":"m","query":"q","documents":["a"],"top_n":"2"}"#, "top_n", 400),
            (#"{"model":"m","query":"q","documents":["a"],"return_documents":"yes"}"#, "return_documents", 400),
            (#"{"model":"m","query":"q","documents":["a"],"max_chunks_per_doc":10}"#, "max_chunks_per_doc", 400),
        ]
        for (body, param, status) in cases {
            let e = error(.rerank, body)
            #expect(e?.status == status, "\(body)")
            #expect(e?.param == param, "\(body): \(String(describing: e?.param))")
        }
        let many = "[" + (0..<1001).map { _ in "\"d\"" }.joined(separator: ",") + "]"
        #expect(error(.rerank, #"{"model":"m","query":"q","documents":\#(many)}"#)?.code == "too_many_documents")
        // rank_fields: v1 only, and only the text.
        #expect(error(.rerank, #"{"model":"m","query":"q","documents":[{"text":"a"}],"rank_fields":["text"]}"#) == nil)
        #expect(error(.rerank, #"{"model":"m","query":"q","documents":[{"text":"a"}],"rank_fields":["title"]}"#)?.param == "rank_fields")
        #expect(error(.rerankV2, #"{"model":"m","query":"q","documents":["a"],"rank_fields":["text"]}"#)?.code == "unknown_parameter")
    }

    @Test func cosineRanking() {
        #expect(Rerank.cosine([1, 0], [1, 0]) == 1)
        #expect(Rerank.cosine([1, 0], [0, 1]) == 0)
        #expect(Rerank.cosine([1, 0], [-2, 0]) == -1)
        #expect(Rerank.cosine([0, 0], [1, 0]) == 0)
        #expect(Rerank.cosine([1], [1, 2]) == 0)
        let ranked = Rerank.rank(query: [1, 1, 0], documents: [[0, 0, 1], [1, 1, 0], [1, 0, 0], [2, 2, 0]])
        #expect(ranked.map(\.index) == [1, 3, 2, 0])  // equal scores keep the documents' order
        #expect(abs(ranked[0].score - 1) < 1e-12)
        #expect(ranked[3].score == 0.5)  // orthogonal: (1 + 0) / 2
    }

    @Test func rankingFromAnEmbeddingsAnswer() {
        let answer: JSONValue = ["data": [
            ["index": 2, "embedding": [0, 1]],
            ["index": 0, "embedding": [1, 0]],  // the query
            ["index": 1, "embedding": [-1, 0]],
        ]]
        let ranked = Rerank.rank(embeddings: answer, documentCount: 2)
        #expect(ranked?.map(\.index) == [1, 0])
        #expect(ranked?.map(\.score) == [0.5, 0])
        #expect(Rerank.rank(embeddings: answer, documentCount: 3) == nil)
    }

    @Test func rankingFromAnEngineAnswer() {
        let vllm: JSONValue = ["results": [["index": 1, "relevance_score": .double(0.25)], ["index": 0, "relevance_score": .double(0.75)]]]
        #expect(Rerank.ranking(engine: vllm, documentCount: 2) == [.init(index: 0, score: 0.75), .init(index: 1, score: 0.25)])
        let llamacpp: JSONValue = ["results": [["index": 0, "score": .double(-1.5)]]]
        #expect(Rerank.ranking(engine: llamacpp, documentCount: 1) == [.init(index: 0, score: -1.5)])
        #expect(Rerank.ranking(engine: ["results": [["index": 5, "relevance_score": 1]]], documentCount: 2) == nil)
        #expect(Rerank.ranking(engine: ["results": [["index": 0, "relevance_score": 1], ["index": 0, "relevance_score": 1]]], documentCount: 2) == nil)
    }

    @Test func cohereAnswer() throws {
        let request = try parse(.rerankV2, #"{"model":"m","query":"q","documents":["a",{"text":"b"},"c"],"top_n":2,"return_documents":true}"#)
        let ranked = Rerank.normalized([.init(index: 2, score: 0.9), .init(index: 0, score: 0.5), .init(index: 1, score: 0.1)])
        let answer = RerankEndpoint(version: 2).clientAnswer(ranked, request: request.body, usage: Usage(promptTokens: 12, completionTokens: 0))
        #expect(answer["results"] == [["index": 2, "relevance_score": .double(0.9), "document": ["text": "c"]],
                                      ["index": 0, "relevance_score": .double(0.5), "document": ["text": "a"]]])
        #expect(answer["meta"]?["api_version"]?["version"] == "2")
        #expect(answer["meta"]?["billed_units"]?["reranked_tokens"] == 12)
        #expect(answer["meta"]?["tokens"]?["input_tokens"] == 12)
        // Without return_documents, no document; without top_n, every document.
        let plain = try parse(.rerank, #"{"model":"m","query":"q","documents":["a","b","c"]}"#)
        let v1 = RerankEndpoint(version: 1).clientAnswer(ranked, request: plain.body, usage: Usage(promptTokens: 3, completionTokens: 0, estimated: true))
        #expect(v1["results"]?.arrayValue?.count == 3)
        #expect(v1["results"]?.arrayValue?.allSatisfy { $0["document"] == nil } == true)
        #expect(v1["meta"]?["api_version"]?["version"] == "1")
        #expect(v1["meta"]?["billed_units"]?["estimated"] == true)
    }

    @Test func endpointsRegistry() {
        #expect(Endpoint.rerank.path == "/v1/rerank" && Endpoint.rerankV2.path == "/v2/rerank")
        #expect(Endpoint.rerank.grantName == "rerank" && Endpoint.rerankV2.grantName == "rerank")
        #expect(Endpoint.rerank != Endpoint.rerankV2)
        #expect(Endpoint.grantNames == ["chat", "completions", "embeddings", "rerank", "audio"])
        #expect(Endpoint(id: "audio.transcriptions") == .transcriptions)
        #expect(Endpoint.transcriptions.spec.bodyFormat == .multipart)
        #expect(Endpoint.transcriptions.spec.billedUnit == .audioSeconds)
    }

    // MARK: multipart

    @Test func multipartRoundTrip() throws {
        let parts = [Multipart.Part(name: "model", data: Array("whisper-1".utf8)),
                     Multipart.Part(name: "file", filename: "a \"b\".wav", contentType: "audio/wav", data: [0, 13, 10, 45, 45, 255])]
        let body = Multipart.encode(parts, boundary: "XyZ")
        let back = try Multipart.parse(body, contentType: "multipart/form-data; boundary=\"XyZ\"")
        #expect(back.count == 2)
        #expect(back[0] == parts[0])
        #expect(back[1].filename == "a %22b%22.wav")
        #expect(back[1].data == [0, 13, 10, 45, 45, 255])
        #expect(back[1].contentType == "audio/wav")
    }

    @Test func multipartErrors() {
        #expect(throws: APIError.self) { try Multipart.parse([], contentType: "application/json") }
        #expect(throws: APIError.self) { try Multipart.parse(Array("no delimiters".utf8), contentType: "multipart/form-data; boundary=b") }
        let noName = Array("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n".utf8)
        #expect(throws: APIError.self) { try Multipart.parse(noName, contentType: "multipart/form-data; boundary=b") }
    }

    @Test func transcriptionForm() throws {
        func form(_ fields: [(String, String)], file: [UInt8]? = [1, 2]) throws(APIError) -> (JSONValue, Multipart.Part) {
            var parts = fields.map { Multipart.Part(name: $0.0, data: Array($0.1.utf8)) }
            if let file { parts.append(Multipart.Part(name: "file", filename: "a.wav", data: file)) }
            return try TranscriptionEndpoint.body(of: parts)
        }
        let (body, file) = try form([("model", "whisper-1"), ("response_format", "srt"), ("temperature", "0.2"), ("language", "de")])
        #expect(file.data == [1, 2])
        let request = try InferenceRequest(endpoint: .transcriptions, body: body)
        #expect(request.model == "whisper-1")
        #expect(TranscriptionEndpoint.format(request.body) == "srt")
        func refused(_ fields: [(String, String)], file: [UInt8]? = [1]) -> APIError? {
            do {
                let (b, _) = try form(fields, file: file)
                _ = try InferenceRequest(endpoint: .transcriptions, body: b)
                return nil
            } catch { return error }
        }
        #expect(refused([("model", "w")], file: nil)?.param == "file")
        #expect(refused([("model", "w")], file: [])?.param == "file")
        #expect(refused([])?.param == "model")
        #expect(refused([("model", "w"), ("response_format", "mp3")])?.param == "response_format")
        #expect(refused([("model", "w"), ("temperature", "1.5")])?.param == "temperature")
        #expect(refused([("model", "w"), ("temperature", "warm")])?.param == "temperature")
        #expect(refused([("model", "w"), ("language", "English")])?.param == "language")
        #expect(refused([("model", "w"), ("stream", "true")])?.code == "unknown_parameter")
        #expect(refused([("model", "w")], file: [UInt8](repeating: 0, count: TranscriptionEndpoint.maxFileBytes + 1))?.status == 413)
        #expect(TranscriptionEndpoint.usage(durationMs: 61_001) == ["type": "duration", "seconds": 62])
    }
}
