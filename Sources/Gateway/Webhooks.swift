import AsyncHTTPClient
import Foundation
import NIOCore
import Observability
import OpenAIWire
import Tenancy

/// Tells a tenant what happened (a key rotation, a lifecycle notice) by POSTing JSON to its
/// webhook URL. Never carries a secret. Delivery is attempted three times, off the request path,
/// and audited.
struct Webhooks: Sendable {
    let platform: Platform

    func rotated(_ event: RotationEvent) {
        send(tenantID: event.tenantID, event: "key.rotated", payload: .object([
            ("key_id", .string(event.keyID)), ("successor_id", .string(event.successorID)),
            ("old_key_expires_at", .int(Int(event.oldKeyExpiresAt))), ("automatic", .bool(event.automatic)),
            ("action", .string("Fetch the successor's secret once with POST /admin/v1/keys/\(event.keyID)/successor or 'llmaas key successor'.")),
        ]))
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
                var request = HTTPClientRequest(url: target)
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                if let host { request.headers.add(name: "host", value: host) }
                request.body = .bytes(ByteBuffer(bytes: body.serialized()))
                var delivered = false
                for attempt in 0..<3 {
                    if attempt > 0 { try? await Task.sleep(for: .seconds(attempt)) }
                    if let response = try? await platform.webhookHTTP.execute(request, timeout: .seconds(5)) {
                        _ = try? await response.body.collect(upTo: 1 << 16)
                        if (200..<300).contains(response.status.code) { delivered = true; break }
                    }
                }
                outcome = delivered ? "delivered" : "not delivered"
            }
            platform.audit.record(AuditEvent(time: platform.now(), actor: "system", tenantID: tenantID, action: "webhook.\(event)",
                                             target: url, outcome: outcome))
        }
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
