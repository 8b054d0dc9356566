import Foundation
import NIOSSL
/// The kinds of engine the fleet can talk to.
public enum EngineKind: String, Sendable, CaseIterable {
    /// Any OpenAI-compatible server (vLLM's and Ollama's `/v1` included, without their extras).
    case openai
    /// llama-cpp-python's server: no usage in streams, per-token embeddings, 500 on bad input.
    case llamacpp
    /// EngineSim, the simulated engine used for tests and benchmarks.
    case sim
    /// vLLM: OpenAI API plus Prometheus `/metrics` (queue, running, KV-cache use), `/health`,
    /// `reasoning_content` in messages and deltas.
    case vllm
    /// Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/tags`, `/api/ps`),
    /// translated to and from OpenAI's shape; no metrics, so the gateway counts its own load.
    case ollama
}

public struct Timeouts: Sendable, Equatable {
    /// Connecting to the engine.
    public var connectMs: Int
    /// From sending the request to the response head (for a non-streamed answer: the whole answer).
    public var firstByteMs: Int
    /// Longest silence allowed between two chunks of a stream.
    public var idleMs: Int

    public init(connectMs: Int = 2000, firstByteMs: Int = 120_000, idleMs: Int = 60_000) {
        self.connectMs = connectMs
        self.firstByteMs = firstByteMs
        self.idleMs = idleMs
    }
}

/// A llama.cpp server the gateway starts and supervises itself.
public struct ManagedEngineConfig: Sendable, Equatable {
    public var modelFile: String
    public var python: String
    public var extraArgs: [String]

    public init(modelFile: String, python: String, extraArgs: [String] = []) {
        self.modelFile = modelFile
        self.python = python
        self.extraArgs = extraArgs
    }
}

public struct BackendConfig: Sendable, Equatable {
    public var name: String
    public var kind: EngineKind
    /// Base URL without `/v1`, e.g. `http://127.0.0.1:8081`.
    public var url: String
    /// Catalog model id → the engine's served name.
    public var models: [String: String]
    public var timeouts: Timeouts
    public var managed: ManagedEngineConfig?
    /// Requests the gateway sends at once before it calls the backend full (its batch size).
    public var capacity: Int
    /// Active health probe (and metrics scrape) period.
    public var probeIntervalMs: Int
    /// Ask the engine which models it has (`/v1/models`, `/api/tags`) and serve every catalog
    /// model whose name matches, in addition to `models`.
    public var discoverModels: Bool
    /// CA and client certificate for an `https://` engine (nil: the system's trust roots, no client certificate).
    public var tls: BackendTLS?
    /// Connections the gateway keeps open to this engine at most (its HTTP pool). Every request
    /// in flight holds one (a stream for its whole life), and token counting, probes and metrics
    /// scrapes use more, so it must be at least `capacity`; a request past the limit waits for a
    /// free connection.
    public var maxConnections: Int

    /// The pool size when the configuration does not set one: twice the capacity (a llama.cpp
    /// stream counts its tokens over a second connection while it holds the first) plus room for
    /// probes, scrapes and connections being closed.
    public static func defaultMaxConnections(capacity: Int) -> Int { 2 * max(1, capacity) + 16 }

    public init(name: String, kind: EngineKind, url: String, models: [String: String], timeouts: Timeouts = Timeouts(),
                managed: ManagedEngineConfig? = nil, capacity: Int = 8, probeIntervalMs: Int = 2000, discoverModels: Bool = false,
                maxConnections: Int? = nil) {
        self.name = name
        self.kind = kind
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.models = models
        self.timeouts = timeouts
        self.managed = managed
        self.capacity = max(1, capacity)
        self.probeIntervalMs = max(50, probeIntervalMs)
        self.discoverModels = discoverModels
        self.maxConnections = max(self.capacity, maxConnections ?? Self.defaultMaxConnections(capacity: self.capacity))
    }
}

/// TLS to one engine (`backends[].tls`): a CA bundle to trust instead of the system roots, and a
/// client certificate and key for mutual TLS. Paths of PEM files.
public struct BackendTLS: Sendable, Equatable {
    public var ca: String?
    public var cert: String?
    public var key: String?

    public init(ca: String? = nil, cert: String? = nil, key: String? = nil) {
        self.ca = ca
        self.cert = cert
        self.key = key
    }

    /// What is wrong with one of the files: the sub-field (`ca`, `cert`, `key`) and why.
    public struct Problem: Error, Sendable {
        public let field: String
        public let message: String
    }

    /// The client TLS configuration (TLS 1.2 at least; certificate and host name verified).
    public func clientConfiguration() throws(Problem) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let ca {
            guard let data = FileManager.default.contents(atPath: ca) else { throw Problem(field: "ca", message: "cannot read '\(ca)' (missing, or not readable by this user)") }
            let roots: [NIOSSLCertificate]
            do { roots = try NIOSSLCertificate.fromPEMBytes(Array(data)) } catch { throw Problem(field: "ca", message: "'\(ca)' is not a PEM certificate bundle (\(error))") }
            guard !roots.isEmpty else { throw Problem(field: "ca", message: "'\(ca)' holds no PEM certificate") }
            tls.trustRoots = .certificates(roots)
        }
        if let cert, let key {
            guard let certData = FileManager.default.contents(atPath: cert) else { throw Problem(field: "cert", message: "cannot read '\(cert)'") }
            guard let keyData = FileManager.default.contents(atPath: key) else { throw Problem(field: "key", message: "cannot read '\(key)'") }
            let chain: [NIOSSLCertificate]
            do { chain = try NIOSSLCertificate.fromPEMBytes(Array(certData)) } catch { throw Problem(field: "cert", message: "'\(cert)' is not a PEM certificate (\(error))") }
            guard !chain.isEmpty else { throw Problem(field: "cert", message: "'\(cert)' holds no PEM certificate") }
            do { tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(keyData), format: .pem)) } catch {
                throw Problem(field: "key", message: "'\(key)' is not a PEM private key (\(error))")
            }
            tls.certificateChain = chain.map { .certificate($0) }
        }
        return tls
    }
}
