import Foundation

/// Where the gateway may POST a tenant's notices. A tenant admin chooses the URL, so the URL
/// must not reach inside the operator's network (server-side request forgery): https only by
/// default, no credentials in the URL, and no loopback, private, link-local, multicast or cloud
/// metadata address unless the operator allows that network.
public struct WebhookPolicy: Sendable {
    /// Plain http destinations (off by default).
    public var allowHTTP = false
    /// Networks the operator opens although they are internal (e.g. an in-house notifier).
    public var allowedNetworks: [CIDR] = []

    public init(allowHTTP: Bool = false, allowedNetworks: [CIDR] = []) {
        self.allowHTTP = allowHTTP
        self.allowedNetworks = allowedNetworks
    }

    /// Addresses no webhook may reach unless allowed: "this" network, private (RFC 1918, ULA),
    /// shared (CGNAT), loopback, link-local (and so the 169.254.169.254 metadata service),
    /// benchmarking, multicast and reserved ranges.
    static let internalNetworks: [CIDR] = ([
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
        "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "2001:db8::/32", "100::/64",
    ] as [String]).compactMap { CIDR($0) }

    /// The IPv4 address an IPv6 address carries (NAT64 64:ff9b::/96, 6to4 2002::/16), if any.
    static func embeddedV4(_ a: IPAddress) -> IPAddress? {
        let b = a.bytes
        let prefix = [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8]
        if Array(b[0..<12]) == prefix { return IPAddress(v4: b[12..<16]) }
        if b[0] == 0x20 && b[1] == 0x02 { return IPAddress(v4: b[2..<6]) }
        return nil
    }

    /// The forms of IPv4 that resolvers accept besides dotted quads (`0`, `2130706433`,
    /// `0x7f000001`, `127.1`): a host name made of them is an address, not a name.
    static func legacyV4(_ host: String) -> IPAddress? {
        guard !host.isEmpty, host.utf8.count <= 64, host.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == "x" || $0 == "X" }) else { return nil }
        var v4 = in_addr()
        guard inet_aton(host, &v4) != 0 else { return nil }
        return IPAddress(v4: withUnsafeBytes(of: &v4) { Array($0) })
    }

    /// May a webhook connect to this address?
    public func allows(_ address: IPAddress) -> Bool {
        if allowedNetworks.contains(where: { $0.contains(address) }) { return true }
        let candidates = [address] + (Self.embeddedV4(address).map { [$0] } ?? [])
        return !candidates.contains { a in Self.internalNetworks.contains { $0.contains(a) } }
    }

    /// Checks a URL an admin gives; the error says what to fix. Host names are resolved when the
    /// webhook is sent (they may change); an address literal is checked now.
    public func validate(_ text: String) throws(TenancyError) -> URLComponents {
        guard text.utf8.count <= 2048, let u = URLComponents(string: text), let scheme = u.scheme?.lowercased(),
              let host = u.host, !host.isEmpty else {
            throw .invalid("'\(text.prefix(200))' is not a URL; give an https URL such as https://hooks.example.com/llmaas")
        }
        guard scheme == "https" || (scheme == "http" && allowHTTP) else {
            throw .invalid(allowHTTP ? "a webhook URL must use https or http" : "a webhook URL must use https (the operator has not allowed plain http)")
        }
        guard u.user == nil && u.password == nil else {
            throw .invalid("a webhook URL must not carry credentials (user:password@); authenticate the notice on your side by its content")
        }
        if let port = u.port, !(1...65535).contains(port) { throw .invalid("the webhook URL's port must be between 1 and 65535") }
        if let literal = IPAddress(host) ?? Self.legacyV4(host), !allows(literal) {
            throw .invalid("a webhook URL must not point to a loopback, private, link-local or metadata address (\(host))")
        }
        return u
    }
}
