import AsyncHTTPClient
import Foundation
import NIOCore
import Observability
import OpenAIWire
import Tenancy

/// Tells a tenant what happened (a key rotation, a lifecycle notice, a budget threshold, an
/// alert) by POSTing JSON to its webhook URL, and the operator about global alerts on
/// `alerts.operator_webhook_url`. Never carries a secret. Every webhook is signed
/// (`X-LLMaaS-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, see
/// ``WebhookSignature``) with the tenant's signing secret (created on first use; the tenant's admin
/// rotates it to read it) or the operator's secret from the config. Delivery is attempted
/// `alerts.webhook_attempts` times with exponential backoff on the platform clock, off the request
/// path, and audited.
struct Webhooks: Sendable {
    let platform: Platform

    func rotated(_ event: RotationEvent) {
        send(tenantID: event.tenantID, event: "key.rotated", payload: .object([
            ("key_id", .string(event.keyID)), ("successor_id", .string(event.successorID)),
            ("old_key_expires_at", .int(Int(event.oldKeyExpiresAt))), ("automatic", .bool(event.automatic)),
            ("action", .string("Fetch the successor's secret once with POST /admin/v1/keys/\(event.keyID)/successor or 'llmaas key successor'.")),
        ]))
    }

    /// An incident fired or resolved: to its tenant's webhook, or the operator's for a global rule.
    func alert(_ n: AlertNotification) {
        let payload: JSONValue = .object([("incident", Alerting.incidentJSON(n.incident))])
        if let tenant = n.incident.tenantID {
            send(tenantID: tenant, event: n.event.rawValue, payload: payload)
        } else {
            sendOperator(event: n.event.rawValue, payload: payload)
        }
    }

    func send(tenantID: String, event: String, payload: JSONValue) {
        let platform = self.platform
        Task {
            guard let tenant = try? await platform.storage.tenant(id: tenantID), let url = tenant.webhookURL else { return }
            var body = payload
            body.set("event", .string(event))
            body.set("tenant_id", .string(tenantID))
            body.set("time", .int(Int(platform.now())))
            // What the tenant may read: delivered or not, never why (a refused connection, a timeout
            // or an HTTP status would let a tenant map ports behind the gateway).
            let outcome: String
            switch await Self.destination(url, policy: platform.config.webhooks) {
            case .refused(let why):
                platform.logger.warning("webhook refused", metadata: ["tenant": "\(tenantID)", "reason": "\(why)"])
                outcome = "refused: destination not allowed"
            case .target(let target, let host):
                guard let secret = try? await Self.tenantSecret(platform, tenantID: tenantID) else {
                    outcome = "not delivered: no signing secret"
                    break
                }
                outcome = await Self.deliver(platform, target: target, host: host, body: body, event: event, secret: secret) ? "delivered" : "not delivered"
            }
            platform.audit.record(AuditEvent(time: platform.now(), actor: "system", tenantID: tenantID, action: "webhook.\(event)",
                                             target: url, outcome: outcome))
        }
    }

    /// To the operator's webhook (the operator's own URL from the config: no destination policy).
    func sendOperator(event: String, payload: JSONValue) {
        let platform = self.platform
        guard let url = platform.config.alerts.operatorWebhookURL, let secret = platform.config.alerts.operatorWebhookSecret else { return }
        Task {
            var body = payload
            body.set("event", .string(event))
            body.set("time", .int(Int(platform.now())))
            let ok = await Self.deliver(platform, target: url, host: nil, body: body, event: event, secret: secret)
            platform.audit.record(AuditEvent(time: platform.now(), actor: "system", tenantID: nil, action: "webhook.\(event)",
                                             target: url, outcome: ok ? "delivered" : "not delivered"))
        }
    }

    /// POSTs the signed body; retries with backoff (1 s, 2 s, 4 s, … capped at 60 s) on the
    /// platform clock until a 2xx or `alerts.webhook_attempts` attempts. Each attempt is signed
    /// anew (its own timestamp).
    static func deliver(_ platform: Platform, target: String, host: String?, body: JSONValue, event: String, secret: String) async -> Bool {
        let bytes = body.serialized()
        let attempts = platform.config.alerts.webhookAttempts
        let delivery = "whd_" + UUID().uuidString.lowercased()
        for attempt in 0..<attempts {
            if attempt > 0 {
                let backoff = min(Int64(1000) << Int64(min(attempt - 1, 6)), 60_000)
                do { try await platform.clock.sleep(untilMs: platform.now() + backoff) } catch { return false }
            }
            var request = HTTPClientRequest(url: target)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.headers.add(name: "x-llmaas-event", value: event)
            request.headers.add(name: "x-llmaas-delivery", value: delivery)
            request.headers.add(name: WebhookSignature.header, value: WebhookSignature.sign(body: bytes, secret: secret, unixSeconds: platform.now() / 1000))
            if let host { request.headers.add(name: "host", value: host) }
            request.body = .bytes(ByteBuffer(bytes: bytes))
            if let response = try? await platform.webhookHTTP.execute(request, timeout: .seconds(5)) {
                _ = try? await response.body.collect(upTo: 1 << 16)
                if (200..<300).contains(response.status.code) { return true }
            }
        }
        return false
    }

    /// The tenant's signing secret, created (sealed in the database) on first use.
    static func tenantSecret(_ platform: Platform, tenantID: String) async throws -> String {
        if let sealed = try await platform.storage.webhookSecret(tenantID: tenantID) {
            return try await platform.authority.unsealWebhookSecret(sealed, tenantID: tenantID)
        }
        let fresh = try await platform.authority.sealWebhookSecret(WebhookSignature.generateSecret(), tenantID: tenantID)
        return try await platform.authority.unsealWebhookSecret(try await platform.storage.setWebhookSecretIfAbsent(tenantID: tenantID, sealed: fresh, at: platform.now()),
                                                                tenantID: tenantID)
    }

    /// A new signing secret for the tenant (replacing any other); returned once, stored sealed.
    static func rotateTenantSecret(_ platform: Platform, tenantID: String) async throws -> String {
        let secret = WebhookSignature.generateSecret()
        try await platform.storage.setWebhookSecret(tenantID: tenantID, sealed: try await platform.authority.sealWebhookSecret(secret, tenantID: tenantID), at: platform.now())
        return secret
    }

    enum Destination: Equatable {
        /// Where to connect, and the Host header when the URL was rewritten to a checked address.
        case target(String, host: String?)
        case refused(String)
    }

    /// Checks the URL against the policy and resolves its host; every address it resolves to must
    /// be allowed. A plain-http URL is rewritten to the checked address (with its Host header) so
    /// that a second resolution cannot lead elsewhere; an https URL keeps its name, and its
    /// certificate binds the connection to it.
    static func destination(_ url: String, policy: WebhookPolicy) async -> Destination {
        let components: URLComponents
        do { components = try policy.validate(url) } catch { return .refused(error.description) }
        guard let host = components.host else { return .refused("no host") }
        let addresses = await resolve(host)
        guard let first = addresses.first else { return .refused("'\(host)' does not resolve") }
        if let bad = addresses.first(where: { !policy.allows($0.address) }) { return .refused("'\(host)' resolves to \(bad.text), an internal address") }
        guard components.scheme?.lowercased() == "http" else { return .target(url, host: nil) }
        var rewritten = components
        rewritten.percentEncodedHost = first.address.isV4Mapped ? first.text : "[\(first.text)]"
        let hostHeader = components.port.map { "\(host):\($0)" } ?? host
        return .target(rewritten.string ?? url, host: hostHeader)
    }

    /// All addresses of a host name (or the address a literal names), off the cooperative pool.
    static func resolve(_ host: String) async -> [(address: IPAddress, text: String)] {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var hints = addrinfo()
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                guard getaddrinfo(name, nil, &hints, &list) == 0 else { continuation.resume(returning: []); return }
                defer { freeaddrinfo(list) }
                var out: [(IPAddress, String)] = []
                var node = list
                while let n = node {
                    var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                    if getnameinfo(n.pointee.ai_addr, n.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                        if let a = IPAddress(text) { out.append((a, text)) }
                    }
                    node = n.pointee.ai_next
                }
                continuation.resume(returning: out)
            }
        }
    }
}
