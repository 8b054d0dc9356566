import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import Observability
import OpenAIWire
import Storage
import Tenancy

/// The web console under `/console` (issue 13 item 5): server-rendered HTML (swift-mustache,
/// templates in `Resources/console/`), readable without JavaScript, charts as inline SVG.
/// Login exchanges an admin token for a session cookie; every page and form is confined to the
/// session's tenant (an operator picks one); forms carry the session's CSRF token.
struct Console: Sendable {
    let platform: Platform
    let library: MustacheLibrary
    let pages: [ConsolePage]
    let dependencies: ConsoleDependencies
    let api: AdminAPI

    static let cookieName = "llmaas_console"

    var sessions: ConsoleSessions { platform.consoleSessions }

    /// The templates, CSS and script, loaded once from the bundle.
    static func loadResources() -> (library: MustacheLibrary, files: [String: String]) {
        var library = MustacheLibrary()
        var files: [String: String] = [:]
        guard let dir = Bundle.module.url(forResource: "console", withExtension: nil),
              let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return (library, files) }
        for name in names {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
            let text = String(decoding: data, as: UTF8.self)
            if name.hasSuffix(".mustache") {
                do { try library.register(text, named: String(name.dropLast(".mustache".count))) } catch {
                    fatalError("console template \(name) does not parse: \(error)")
                }
            } else {
                files[name] = text
            }
        }
        return (library, files)
    }

    // MARK: Responses

    /// Headers of every console answer: no framing, no referrer, no caching (pages hold tenant
    /// data), and a CSP that allows only our own stylesheet and script (no inline script).
    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on form POSTs.
        HTTPField.Name("Referrer-Policy")!: "same-origin",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        .cacheControl: "no-store",
    ]

    func html(_ template: String, _ values: [String: Any], status: HTTPResponse.Status = .ok, extra: HTTPFields = [:]) -> Response {
        let body = library.render(values, withTemplate: template) ?? "template \(template) is missing from this build"
        var headers = Self.securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    func redirect(_ location: String, extra: HTTPFields = [:]) -> Response {
        var headers = Self.securityHeaders
        headers[.location] = location
        headers.append(contentsOf: extra)
        return Response(status: .seeOther, headers: headers)
    }

    func errorPage(_ status: Int, _ message: String, session: ConsoleSession? = nil) -> Response {
        var values: [String: Any] = ["title": "Error \(status)", "status": status, "message": message, "nav": [] as [Any]]
        if let session { values["csrf"] = session.csrf; values["logged_in"] = true }
        return html("error", values, status: HTTPResponse.Status(code: status))
    }

    /// Runs a handler, answering an `APIError` (404 for another tenant's id, 400 for bad input …)
    /// as an HTML page with its status and message.
    func guarded(session: ConsoleSession? = nil, _ body: () async throws -> Response) async throws -> Response {
        do { return try await body() } catch let e as APIError {
            var r = errorPage(e.status, e.message, session: session)
            for (name, value) in e.headers { if let n = HTTPField.Name(name) { r.headers[n] = value } }
            return r
        }
    }

    // MARK: Cookies and sessions

    static func cookies(_ request: Request) -> [String: String] {
        var out: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                out[kv[0].trimmingCharacters(in: .whitespaces)] = kv[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return out
    }

    /// Secure when the client reached us over TLS (directly, or through a proxy that says so) or
    /// when the configuration asks for it.
    func isSecure(_ request: Request) -> Bool {
        platform.config.console.secureCookies || request.head.scheme == "https"
            || request.headers[HTTPField.Name("x-forwarded-proto")!] == "https"
    }

    func sessionCookie(_ value: String, request: Request, maxAge: Int? = nil) -> HTTPFields {
        var cookie = "\(Self.cookieName)=\(value); Path=/console; HttpOnly; SameSite=Strict"
        if let maxAge { cookie += "; Max-Age=\(maxAge)" }
        if isSecure(request) { cookie += "; Secure" }
        return [.setCookie: cookie]
    }

    /// The session of the request's cookie, if it is alive and its admin token is not revoked.
    /// `console.js`'s refreshes (header `X-Console-Poll`) do not count as activity: a page left
    /// open still expires after `console.idle_minutes`.
    func session(_ request: Request) async -> (id: String, session: ConsoleSession)? {
        let poll = request.headers[HTTPField.Name("X-Console-Poll")!] != nil
        guard let id = Self.cookies(request)[Self.cookieName], !id.isEmpty, let s = sessions.resume(id, touch: !poll) else { return nil }
        guard let token = try? await platform.storage.adminToken(id: s.tokenID), token.revokedAt == nil else {
            sessions.end(id)
            return nil
        }
        return (id, s)
    }

    // MARK: Forms

    /// `application/x-www-form-urlencoded`, every value of every name (1 MiB at most).
    static func form(_ request: Request, _ context: GatewayContext) async throws -> [String: [String]] {
        let bytes = try await readBody(request, limit: 1 << 20)
        var out: [String: [String]] = [:]
        for pair in String(decoding: bytes, as: UTF8.self).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            out[decode(kv[0]), default: []].append(kv.count > 1 ? decode(kv[1]) : "")
        }
        return out
    }

    /// A logged-in page's form POST: without a live session, to the login page; otherwise the
    /// same-origin and CSRF checks, then `handle` with the parsed form (its `APIError`s as HTML pages).
    func postForm(_ router: Hummingbird.Router<GatewayContext>, _ path: RouterPath,
                  _ handle: @escaping @Sendable (Request, GatewayContext, ConsoleSession, [String: [String]]) async throws -> Response) {
        router.post(path) { request, context in
            guard let session = await self.session(request)?.session else { return self.redirect("/console/login") }
            return try await self.guarded(session: session) {
                try self.checkOrigin(request)
                let form = try await Console.form(request, context)
                try self.checkCSRF(form, session)
                return try await handle(request, context, session, form)
            }
        }
    }

    /// Every POST of a logged-in page: the form must carry the session's CSRF token.
    func checkCSRF(_ form: [String: [String]], _ session: ConsoleSession) throws {
        guard let sent = form["csrf"]?.first, constantTimeEquals(sent, session.csrf) else {
            throw APIError(status: 403, message: "The form's security token is missing or stale. Reload the page and submit it again.",
                           type: "invalid_request_error", code: "csrf_failed")
        }
    }

    /// A POST from another site is refused before anything else (login CSRF included): a browser
    /// sends `Origin` with every form POST, and it must name this gateway as the client reached it.
    func checkOrigin(_ request: Request) throws {
        guard let origin = request.headers[.origin] else { return }
        let host = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
        guard let authority = request.head.authority, host == authority else {
            throw APIError(status: 403, message: "This form was sent from another site (Origin \(origin.prefix(100))). Open the console at its own address and submit it there.",
                           type: "invalid_request_error", code: "cross_origin_post")
        }
    }

    // MARK: Tenant scope

    /// The tenant a page shows: the session's own for a tenant admin (another id → 404); for an
    /// operator the `tenant` query (an unknown id → 404), else the first tenant by name.
    func tenant(_ id: String?, _ session: ConsoleSession, _ context: GatewayContext) async throws -> TenantRecord? {
        if let id, !id.isEmpty { return try await api.tenant(id, for: session.principal, context) }
        if let own = session.tenantID { return try await api.tenant(own, for: session.principal, context) }
        return try await platform.storage.tenants().sorted { $0.name < $1.name }.first
    }

    /// The values every page's header reads.
    func common(_ page: ConsolePage?, _ session: ConsoleSession, tenant: TenantRecord?, query: [String: String]) async throws -> [String: Any] {
        let tenants = session.tenantID == nil ? try await platform.storage.tenants().sorted { $0.name < $1.name } : []
        // Sections render for any present value, even "": optional values are left out instead.
        var optional: [String: Any] = [:]
        if page?.tenantScoped ?? true, let name = tenant?.name { optional["heading_tenant"] = name }
        let tenantQuery = tenant.map { "?tenant=" + ($0.id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") } ?? ""
        return optional.merging([
            "title": page?.title ?? "Console",
            "logged_in": true,
            "csrf": session.csrf,
            "operator": session.tenantID == nil,
            "who": session.tenantID == nil ? "operator" : "tenant admin",
            "tenant": tenant.map { ["id": $0.id, "name": $0.name, "tier": $0.tier] as [String: Any] } ?? [:],
            "tenant_query": tenantQuery,
            "tenants": tenants.map { ["id": $0.id, "name": $0.name, "selected": $0.id == tenant?.id] as [String: Any] },
            "page_path": page?.path ?? "/console",
            "live": page?.live ?? false,
            "refresh_seconds": platform.config.console.refreshSeconds,
            "nav": pages.filter { !$0.operatorOnly || session.tenantID == nil }.map {
                ["path": $0.path, "title": $0.title, "active": $0.id == page?.id] as [String: Any]
            },
            "now": ConsoleFormat.time(platform.now()),
        ]) { a, _ in a }
    }

    func render(_ page: ConsolePage, _ session: ConsoleSession, tenant: TenantRecord?, query: [String: String],
                extra: [String: Any] = [:], status: HTTPResponse.Status = .ok) async throws -> Response {
        var values = try await common(page, session, tenant: tenant, query: query)
        let r = ConsoleRequest(platform: platform, session: session, tenant: tenant, query: query, dependencies: dependencies)
        for (k, v) in try await page.build(r) { values[k] = v }
        for (k, v) in extra { values[k] = v }
        return html(page.template, values, status: status)
    }

    func audit(_ session: ConsoleSession, _ context: GatewayContext, _ action: String, tenant: String?, target: String?, status: Int = 200) {
        platform.audit.record(AuditEvent(time: platform.now(), actor: "admin:\(session.tokenID)", tenantID: tenant, action: action, target: target,
                                         outcome: "console", requestID: context.requestID, clientIP: context.clientIP, status: status))
    }
}

/// Registers `/console` on the router. `extraPages` are added after the built-in ones (how the
/// alerts and request-store pages plug in); `performance` feeds the charts (default: the rollups).
func addConsoleRoutes(to router: Hummingbird.Router<GatewayContext>, platform: Platform,
                      extraPages: [ConsolePage] = [], performance: (any PerformanceSource)? = nil) {
    guard platform.config.console.enabled else { return }
    let (library, files) = Console.loadResources()
    let storage = platform.storage, log = platform.requestLog
    let source = performance ?? RollupPerformanceSource(storage: storage, flush: { await log.flush() })
    let console = Console(platform: platform, library: library, pages: ConsolePages.all + extraPages,
                          dependencies: ConsoleDependencies(performance: source), api: AdminAPI(platform: platform))

    for (name, type) in [("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8")] {
        let text = files[name] ?? ""
        router.get(RouterPath(stringLiteral: "/console/static/\(name)")) { _, _ in
            var headers = Console.securityHeaders
            headers[.contentType] = type
            headers[.cacheControl] = "public, max-age=300"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
    }

    router.get("/console/login") { request, _ in
        if await console.session(request) != nil { return console.redirect("/console") }
        return console.html("login", ["title": "Log in"])
    }
    router.post("/console/login") { request, context in
        do { try console.checkOrigin(request) } catch let e as APIError {
            return console.html("login", ["title": "Log in", "error": e.message], status: .forbidden)
        }
        let ip = context.clientIP ?? "-"
        // The API's throttle, checked before the token: a blocked address learns nothing.
        if let wait = platform.throttle.retryAfter(ip, now: platform.now()) {
            return console.html("login", ["title": "Log in", "error": "Too many failed logins from your address. Retry after \(wait) s."],
                                status: .tooManyRequests, extra: [.retryAfter: String(wait)])
        }
        let form = try await Console.form(request, context)
        let token = (form["token"]?.first ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard let principal = await platform.authority.authenticateAdmin(authorization: "Bearer " + token) else {
            let t = platform.now()
            platform.throttle.recordFailure(ip, now: t)
            platform.authFailures.record(AuditEvent(time: t, actor: "anonymous", action: "console.login.failure", target: "/console/login",
                                                    outcome: "invalid admin token", requestID: context.requestID, clientIP: context.clientIP,
                                                    userAgent: request.headers[.userAgent], status: 401))
            return console.html("login", ["title": "Log in",
                                          "error": "Invalid admin token. Paste an admin token (adm-…); create one with 'llmaas admin token create'."],
                                status: .unauthorized)
        }
        let (id, session) = console.sessions.create(for: principal)
        console.audit(session, context, "console.login", tenant: principal.tenantID, target: nil)
        return console.redirect("/console", extra: console.sessionCookie(id, request: request))
    }
    router.post("/console/logout") { request, context in
        guard let found = await console.session(request) else { return console.redirect("/console/login") }
        let (id, session) = found
        return try await console.guarded(session: session) {
            try console.checkOrigin(request)
            try console.checkCSRF(try await Console.form(request, context), session)
            console.sessions.end(id)
            console.audit(session, context, "console.logout", tenant: session.tenantID, target: nil)
            return console.redirect("/console/login", extra: console.sessionCookie("", request: request, maxAge: 0))
        }
    }

    for page in console.pages {
        router.get(RouterPath(stringLiteral: page.path)) { request, context in
            guard let session = await console.session(request)?.session else { return console.redirect("/console/login") }
            return try await console.guarded(session: session) {
                if page.operatorOnly && session.tenantID != nil { throw APIError.notFound("This page does not exist.") }
                var query: [String: String] = [:]
                for (k, v) in request.uri.queryParameters { query[String(k)] = String(v) }
                let tenant = try await console.tenant(query["tenant"], session, context)
                return try await console.render(page, session, tenant: tenant, query: query)
            }
        }
    }

    addConsoleAlertRoutes(to: router, console: console)
    addConsoleRequestRoutes(to: router, console: console)

    // Key forms: the key (or the tenant) must be in the session's scope, else 404 and nothing changes.
    let keysPage = ConsolePages.keys
    console.postForm(router, "/console/keys/create") { request, context, session, form in
        guard let tenant = try await console.tenant(form["tenant"]?.first ?? session.tenantID, session, context) else {
            throw APIError.notFound("There is no tenant to create a key for.")
        }
        let name = (form["name"]?.first ?? "").trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 200 else { throw APIError.invalidValue("name", "a non-empty name of at most 200 characters.") }
        let models = (form["models"] ?? []).flatMap { $0.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" }) }
            .map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        let endpoints = (form["endpoints"] ?? []).filter { !$0.isEmpty }
        let grants = try AdminAPI.grants(from: .object([("models", .array(models.map(JSONValue.string))),
                                                        ("endpoints", .array(endpoints.map(JSONValue.string)))]))
        let (record, token): (APIKeyRecord, APIKeyToken)
        do { (record, token) = try await platform.administration.createKey(tenant: tenant, name: name, grants: grants) } catch {
            throw mapTenancy(error)
        }
        console.audit(session, context, "key.create", tenant: tenant.id, target: record.id, status: 201)
        return try await console.render(keysPage, session, tenant: tenant, query: [:],
                                        extra: ["secret": ["title": "New key \(record.id) (\(record.name))", "value": token.text]], status: .created)
    }
    console.postForm(router, "/console/keys/{id}/rotate") { request, context, session, form in
        let k = try await console.api.key(context.parameters.get("id") ?? "", for: session.principal, context)
        var graceMs: Int64?
        if let g = form["grace_days"]?.first, !g.isEmpty {
            guard let d = Double(g), d >= 0, d <= 365 else { throw APIError.invalidValue("grace_days", "a number of days between 0 and 365.") }
            graceMs = Int64(d * 86_400_000)
        }
        let event: RotationEvent, successor: APIKeyRecord, secret: String
        do {
            event = try await platform.administration.rotate(keyID: k.id, graceMs: graceMs)
            (successor, secret) = try await platform.administration.takeSuccessorSecret(keyID: k.id)
        } catch { throw mapTenancy(error) }
        console.audit(session, context, "key.rotate", tenant: k.tenantID, target: k.id)
        console.audit(session, context, "key.successor.fetch", tenant: k.tenantID, target: successor.id)
        Webhooks(platform: platform).rotated(event)
        let tenant = try await console.api.tenant(k.tenantID, for: session.principal, context)
        return try await console.render(keysPage, session, tenant: tenant, query: [:], extra: [
            "secret": ["title": "Successor \(successor.id) of key \(k.id) (the old key works until \(ConsoleFormat.time(event.oldKeyExpiresAt)))",
                       "value": secret],
        ])
    }
    console.postForm(router, "/console/keys/{id}/revoke") { request, context, session, form in
        let k = try await console.api.key(context.parameters.get("id") ?? "", for: session.principal, context)
        let revoked = try await platform.administration.revoke(keyID: k.id)
        console.audit(session, context, "key.revoke", tenant: k.tenantID, target: k.id)
        let tenant = try await console.api.tenant(k.tenantID, for: session.principal, context)
        return try await console.render(keysPage, session, tenant: tenant, query: [:],
                                        extra: ["notice": "Key \(revoked.id) (\(revoked.name)) is revoked."])
    }
}
