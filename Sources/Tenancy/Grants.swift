import Foundation
import OpenAIWire

/// What one API key may do (SPEC S2.2): model patterns allowed and denied, endpoints, client IPs.
/// An empty allow list means every model; denials always win.
public struct Grants: Codable, Sendable, Equatable {
    /// Globs over catalog ids (`qwen3:*`); a leading `!` denies (`!qwen3:235b`).
    public var models: [String]
    public var denyModels: [String]
    /// Grant names of endpoints (`chat`, `completions`, `embeddings`, … ``endpointNames``); empty = all.
    public var endpoints: [String]
    /// CIDR blocks (IPv4 or IPv6); empty = any address.
    public var clientIPs: [String]
    /// This key's own rate limits, under its tenant's tier (nil: the tier's only).
    public var limits: KeyLimits?

    public static let all = Grants(models: [], denyModels: [], endpoints: [], clientIPs: [])

    public init(models: [String] = [], denyModels: [String] = [], endpoints: [String] = [], clientIPs: [String] = [],
                limits: KeyLimits? = nil) {
        self.limits = limits
        // `!glob` in the allow list is a denial.
        self.models = models.filter { !$0.hasPrefix("!") }
        self.denyModels = denyModels + models.filter { $0.hasPrefix("!") }.map { String($0.dropFirst()) }
        self.endpoints = endpoints
        self.clientIPs = clientIPs
    }

    enum CodingKeys: String, CodingKey {
        case models, endpoints, limits
        case denyModels = "deny_models"
        case clientIPs = "client_ips"
    }

    /// The grant names of the endpoints the gateway serves (``Endpoint/all``).
    public static let endpointNames: [String] = Endpoint.grantNames

    /// Checks the values an operator gave; the message says what to fix.
    public func validate() throws(TenancyError) {
        for e in endpoints where !Self.endpointNames.contains(e) {
            throw .invalid("unknown endpoint '\(e)' in grants (use \(Self.endpointNames.joined(separator: ", ")))")
        }
        for c in clientIPs where CIDR(c) == nil {
            throw .invalid("'\(c)' is not a CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32, 192.0.2.7/32)")
        }
        for g in models + denyModels where g.isEmpty {
            throw .invalid("an empty model pattern in grants")
        }
        if let l = limits, [l.requestsPerMinute, l.outputTokensPerHour, l.outputTokensPerDay, l.concurrentRequests].contains(where: { ($0 ?? 1) < 1 }) {
            throw .invalid("key limits must be positive whole numbers")
        }
    }

    public func allows(model ids: [String]) -> Bool {
        if ids.contains(where: { id in denyModels.contains { Glob.matches($0, id) } }) { return false }
        return models.isEmpty || ids.contains { id in models.contains { Glob.matches($0, id) } }
    }

    public func allows(endpoint: String) -> Bool { endpoints.isEmpty || endpoints.contains(endpoint) }

    public func allows(ip: String?) -> Bool {
        guard !clientIPs.isEmpty else { return true }
        guard let ip, let address = IPAddress(ip) else { return false }
        return clientIPs.contains { CIDR($0)?.contains(address) ?? false }
    }

    public var json: String { String(decoding: (try? JSONEncoder().encode(self)) ?? Data("{}".utf8), as: UTF8.self) }

    public static func decode(_ text: String?) -> Grants {
        guard let text, let g = try? JSONDecoder().decode(Grants.self, from: Data(text.utf8)) else { return .all }
        return g
    }
}

/// Per-key rate limits (SPEC S4's tier limits, narrowed for one key).
public struct KeyLimits: Codable, Sendable, Equatable {
    public var requestsPerMinute: Int?
    public var outputTokensPerHour: Int?
    public var outputTokensPerDay: Int?
    public var concurrentRequests: Int?

    public init(requestsPerMinute: Int? = nil, outputTokensPerHour: Int? = nil, outputTokensPerDay: Int? = nil, concurrentRequests: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.outputTokensPerHour = outputTokensPerHour
        self.outputTokensPerDay = outputTokensPerDay
        self.concurrentRequests = concurrentRequests
    }

    public var isEmpty: Bool { requestsPerMinute == nil && outputTokensPerHour == nil && outputTokensPerDay == nil && concurrentRequests == nil }

    enum CodingKeys: String, CodingKey {
        case requestsPerMinute = "requests_per_minute"
        case outputTokensPerHour = "output_tokens_per_hour"
        case outputTokensPerDay = "output_tokens_per_day"
        case concurrentRequests = "concurrent_requests"
    }
}

/// `*` (any run) and `?` (one character) globs, no other syntax.
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

/// An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into ::ffff:0:0/96).
public struct IPAddress: Equatable, Sendable {
    public let bytes: [UInt8]

    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        var t = text
        if t.hasPrefix("[") && t.hasSuffix("]") { t = String(t.dropFirst().dropLast()) }
        if let percent = t.firstIndex(of: "%") { t = String(t[..<percent]) }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, t, &v4) == 1 {
            bytes = Self.v4Mapped(withUnsafeBytes(of: &v4) { Array($0) })
        } else if inet_pton(AF_INET6, t, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            return nil
        }
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// An IPv4 address from its 4 bytes.
    public init<Bytes: Collection>(v4 octets: Bytes) where Bytes.Element == UInt8 { bytes = Self.v4Mapped(octets) }

    static func v4Mapped<Bytes: Collection>(_ octets: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + octets
    }

    /// An IPv4 address (kept as `::ffff:a.b.c.d`).
    public var isV4Mapped: Bool { bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF }
}

public struct CIDR: Sendable {
    public let network: IPAddress
    public let prefix: Int

    /// `address` or `address/bits`; nil for anything else (empty text, a lone `/`, bits out of
    /// range or not plain digits). Never traps: the text comes from admins and the CLI.
    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        let slash = text.firstIndex(of: "/")
        let addressText = String(text[..<(slash ?? text.endIndex)])
        guard let address = IPAddress(addressText) else { return nil }
        let isV4 = address.isV4Mapped && addressText.contains(".") && !addressText.contains(":")
        let max = isV4 ? 32 : 128
        var bits = max
        if let slash {
            let digits = text[text.index(after: slash)...]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits), n <= max else { return nil }
            bits = n
        }
        network = address
        prefix = isV4 ? bits + 96 : bits
    }

    public func contains(_ address: IPAddress) -> Bool {
        var remaining = prefix
        for i in 0..<16 where remaining > 0 {
            let take = min(8, remaining)
            let mask: UInt8 = take == 8 ? 0xFF : ~(0xFF >> UInt8(take))
            if network.bytes[i] & mask != address.bytes[i] & mask { return false }
            remaining -= take
        }
        return true
    }
}
