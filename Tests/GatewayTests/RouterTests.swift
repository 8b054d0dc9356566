import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import OpenAIWire
import Testing
@testable import Gateway

/// The gateway's router in process (Hummingbird's router test framework, no socket): error
/// shapes, authentication, strict input, the admin document. No engine is configured.
@Suite(.serialized) struct RouterTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func withRouter(_ body: @Sendable (any TestClientProtocol, Platform) async throws -> Void) async throws {
        var config = GatewayConfig()
        config.dataDir = NSTemporaryDirectory() + "llmaas-router-\(UUID().uuidString)"
        config.catalogPath = Self.repo + "/deploy/catalog.yaml"
        config.tiers["bronze"] = config.tiers["tier-1"].map { var t = $0; t.name = "bronze"; t.priority = 7; return t }
        let platform = try await Platform.open(config: config, logger: Logger(label: "router-test"))
        let app = Application(router: buildRouter(platform))
        do {
            try await app.test(.router) { client in try await body(client, platform) }
        } catch {
            await platform.shutdown()
            throw error
        }
        await platform.shutdown()
        try? FileManager.default.removeItem(atPath: config.dataDir)
    }

    static func error(_ response: TestResponse) throws -> JSONValue {
        let json = try JSONValue.parse(Array(response.body.readableBytesView))
        return try #require(json["error"])
    }

    @Test func unknownRouteAndMissingKeyAreOpenAIErrors() async throws {
        try await withRouter { client, _ in
            try await client.execute(uri: "/v2/nothing", method: .get) { r in
                #expect(r.status == .notFound)
                let e = try Self.error(r)
                #expect(e["message"]?.stringValue?.contains("/v2/nothing") == true)
                #expect(r.headers[HTTPField.Name("x-request-id")!]?.hasPrefix("req_") == true)
            }
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: "{}")) { r in
                let e = try Self.error(r)
                #expect(r.status == .unauthorized)
                #expect(e["type"]?.stringValue == "authentication_error")
            }
            try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/ready", method: .get) { r in #expect(r.status == .serviceUnavailable) }  // no engine
        }
    }

    @Test func adminDocumentListsTheConfiguredTiers() async throws {
        try await withRouter { client, _ in
            try await client.execute(uri: "/admin/v1/openapi.yaml", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(r.status == .ok)
                #expect(text.contains("\"bronze\"") && text.contains("\"tier-1\"") && !text.contains("__CONFIGURED_TIERS__"))
            }
        }
    }

    @Test func adminInputIsStrict() async throws {
        try await withRouter { client, platform in
            let (_, token) = try await platform.authority.createAdminToken(name: "router-test")
            let auth: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
            try await client.execute(uri: "/admin/v1/tenants", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"name":"acme","colour":"red"}"#)) { r in
                let e = try Self.error(r)
                #expect(r.status == .badRequest)
                #expect(e["param"]?.stringValue == "colour")
            }
            try await client.execute(uri: "/admin/v1/tenants", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"name":"acme","name":"evil"}"#)) { r in
                #expect(r.status == .badRequest)
            }
            try await client.execute(uri: "/admin/v1/tenants", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"name":"acme","tier":"bronze","settings":{"webhook_url":"http://10.0.0.1/"}}"#)) { r in
                let e = try Self.error(r)
                #expect(r.status == .badRequest)
                #expect(e["param"]?.stringValue == "settings.webhook_url")
            }
            // Nothing was left behind by the refused creations.
            let leftover = try await platform.storage.tenant(named: "acme")
            #expect(leftover == nil)
            try await client.execute(uri: "/admin/v1/tenants", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"name":"acme","tier":"bronze"}"#)) { r in
                #expect(r.status == .created)
            }
        }
    }
}
