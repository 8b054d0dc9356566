import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals
import X509

/// `tls:` — HTTPS on the listener (and on the separate metrics listener): the certificate chain
/// and key files (PEM) and the lowest TLS version accepted.
public struct ListenerTLSConfig: Sendable, Equatable {
    public enum MinVersion: String, Sendable, CaseIterable {
        case v12 = "1.2"
        case v13 = "1.3"
        var nio: TLSVersion { self == .v13 ? .tlsv13 : .tlsv12 }
    }

    /// PEM file of the server certificate, followed by its intermediates.
    public var certPath: String
    /// PEM file of the certificate's private key.
    public var keyPath: String
    public var minVersion: MinVersion = .v13

    public init(certPath: String, keyPath: String, minVersion: MinVersion = .v13) {
        self.certPath = certPath
        self.keyPath = keyPath
        self.minVersion = minVersion
    }
}

/// A certificate chain and its private key, read from PEM files and checked to belong together.
public struct CertificateMaterial: Sendable {
    public let chain: [NIOSSLCertificate]
    public let key: NIOSSLPrivateKey

    /// Reads and checks the pair; the error names the field (`<field>.cert` / `<field>.key`) and says what to fix.
    public static func load(certPath: String, keyPath: String, field: String) throws(ConfigError) -> CertificateMaterial {
        guard let certData = FileManager.default.contents(atPath: certPath) else {
            throw ConfigError(field: field + ".cert", message: "cannot read '\(certPath)' (missing, or not readable by this user)")
        }
        guard let keyData = FileManager.default.contents(atPath: keyPath) else {
            throw ConfigError(field: field + ".key", message: "cannot read '\(keyPath)' (missing, or not readable by this user)")
        }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(Array(certData)) } catch {
            throw ConfigError(field: field + ".cert", message: "'\(certPath)' is not a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw ConfigError(field: field + ".cert", message: "'\(certPath)' holds no PEM certificate") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(bytes: Array(keyData), format: .pem) } catch {
            throw ConfigError(field: field + ".key", message: "'\(keyPath)' is not a PEM private key (an encrypted key is not supported) (\(error))")
        }
        // The key must be the certificate's: compare the public keys (what the handshake would fail on, later and less clearly).
        if let certPublic = try? Certificate(derEncoded: chain[0].toDERBytes()).publicKey,
           let keyPublic = try? Certificate.PrivateKey(pemEncoded: String(decoding: keyData, as: UTF8.self)).publicKey,
           certPublic != keyPublic {
            throw ConfigError(field: field + ".key", message: "'\(keyPath)' is not the private key of the certificate in '\(certPath)'")
        }
        return CertificateMaterial(chain: chain, key: key)
    }
}

/// The listener's certificate, replaceable while serving: each new handshake takes the current
/// one (NIOSSL's per-handshake context callback), connections already open keep theirs. SIGHUP
/// re-reads the files; a bad pair never replaces the one in service (the log says why).
public final class ListenerCertificates: Sendable {
    public let config: ListenerTLSConfig
    private let current: Mutex<CertificateMaterial>
    private let reloads = Atomic<Int>(0)

    public init(config: ListenerTLSConfig) throws(ConfigError) {
        self.config = config
        self.current = Mutex(try CertificateMaterial.load(certPath: config.certPath, keyPath: config.keyPath, field: "tls"))
    }

    /// Re-reads the files; on success new handshakes use them. Returns the error when they are bad.
    @discardableResult
    public func reload() -> ConfigError? {
        do {
            let fresh = try CertificateMaterial.load(certPath: config.certPath, keyPath: config.keyPath, field: "tls")
            current.withLock { $0 = fresh }
            reloads.add(1, ordering: .relaxed)
            return nil
        } catch {
            return error
        }
    }

    /// The pair in service.
    public var material: CertificateMaterial { current.withLock { $0 } }

    /// How many reloads succeeded (tests, logs).
    public var reloadCount: Int { reloads.load(ordering: .relaxed) }

    /// The server TLS configuration: the minimum version, HTTP/1.1 by ALPN, and the callback that
    /// hands every handshake the current certificate.
    public func serverConfiguration() -> TLSConfiguration {
        let material = current.withLock { $0 }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: material.chain.map { .certificate($0) },
                                                           privateKey: .privateKey(material.key))
        tls.minimumTLSVersion = config.minVersion.nio
        tls.applicationProtocols = ["http/1.1"]
        tls.sslContextCallback = { [self] _, promise in
            let now = self.material
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = now.chain.map { .certificate($0) }
            override.privateKey = .privateKey(now.key)
            promise.succeed(override)
        }
        return tls
    }

    /// `base` wrapped in TLS.
    public func serverBuilder(_ base: HTTPServerBuilder) -> HTTPServerBuilder {
        // `.tls` only throws when NIOSSL cannot build a context from the configuration, which
        // `load` already checked; a failure here is a programming error.
        try! .tls(base, tlsConfiguration: serverConfiguration())
    }
}

/// Reloads the listener's certificate on SIGHUP (the catalog reloader listens to the same signal).
struct CertificateReloader: Service {
    let certificates: ListenerCertificates
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                if let error = certificates.reload() {
                    logger.error("TLS certificate not reloaded; the previous one stays in service", metadata: ["error": "\(error)"])
                } else {
                    logger.notice("TLS certificate reloaded", metadata: ["cert": "\(certificates.config.certPath)"])
                }
            }
        }
    }
}
