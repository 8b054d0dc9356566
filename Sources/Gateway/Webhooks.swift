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
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body.serialized()))
            var outcome = "failed"
            for attempt in 0..<3 {
                if attempt > 0 { try? await Task.sleep(for: .seconds(attempt)) }
                if let response = try? await platform.http.execute(request, timeout: .seconds(5)) {
                    _ = try? await response.body.collect(upTo: 1 << 16)
                    if (200..<300).contains(response.status.code) { outcome = "delivered"; break }
                    outcome = "HTTP \(response.status.code)"
                }
            }
            platform.audit.record(AuditEvent(time: platform.now(), actor: "system", tenantID: tenantID, action: "webhook.\(event)",
                                             target: url, outcome: outcome))
        }
    }
}
