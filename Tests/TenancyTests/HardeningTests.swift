import Testing
import TestSupport
@testable import Tenancy

/// Parsers that take admin input never trap (issue 10: an empty or all-slash client IP crashed the
/// gateway). Property tests: deterministic pseudo-random inputs, a fixed seed, bounded counts.
@Suite struct HardeningTests {
    @Test(arguments: ["", "/", "//", "/8", "1.2.3.4/", "1.2.3.4/33", "::1/129", "::1/-1", "1.2.3.4/+8", "1.2.3.4/ 8", "1.2.3.4/8/9",
                      "1.2.3.4/0x8", "[::1]/8x", "%", "[", "]", "1.2.3", "256.1.1.1", String(repeating: "1", count: 500)])
    func cidrRefusesMalformed(_ text: String) {
        #expect(CIDR(text) == nil)
        #expect(throws: TenancyError.self) { try Grants(clientIPs: [text]).validate() }
    }

    @Test func cidrAcceptsAndMatches() throws {
        let v4 = try #require(CIDR("10.0.0.0/8"))
        #expect(v4.contains(try #require(IPAddress("10.200.1.1"))))
        #expect(!v4.contains(try #require(IPAddress("11.0.0.1"))))
        let host = try #require(CIDR("192.0.2.7"))
        #expect(host.prefix == 128)
        let v6 = try #require(CIDR("2001:db8::/32"))
        #expect(v6.contains(try #require(IPAddress("2001:db8:1::5"))))
        #expect(!v6.contains(try #require(IPAddress("2001:db9::1"))))
        #expect(CIDR("0.0.0.0/0") != nil && CIDR("::/0") != nil)
    }

    /// 200 000 random strings over the characters CIDR text is made of: no trap, and whatever
    /// parses has a prefix in range.
    @Test func cidrFuzz() {
        var rng = SeededRandom(state: 20261205)
        let alphabet = Array("0123456789abcdefABCDEF:./%[]- x+")
        for _ in 0..<200_000 {
            let text = rng.text(from: alphabet, maxLength: 48)
            if let c = CIDR(text) { #expect((0...128).contains(c.prefix)) }
            _ = Grants(clientIPs: [text]).allows(ip: text)
        }
    }

    @Test func grantsFromRandomJSONNeverTrap() {
        var rng = SeededRandom(state: 7)
        let alphabet = Array("{}[]\",:0123456789abc!*?/. ")
        for _ in 0..<50_000 {
            _ = Grants.decode(rng.text(from: alphabet, maxLength: 40))
        }
        _ = Grants.decode(#"{"models":[],"deny_models":[],"endpoints":[],"client_ips":["","/"]}"#).allows(ip: "1.2.3.4")
    }

    @Test(arguments: [
        ("https://hooks.example.com/x", true), ("http://hooks.example.com/x", false), ("ftp://example.com/", false),
        ("https://user:pass@example.com/", false), ("https://127.0.0.1/", false), ("https://[::1]:8443/", false),
        ("https://0:443/", false), ("https://0x7f000001/", false), ("https://2130706433/", false), ("https://127.1/", false), ("https://169.254.169.254/latest", false), ("https://10.1.2.3/", false), ("https://192.168.1.1/", false),
        ("https://[fd00:ec2::254]/", false), ("https://[::ffff:127.0.0.1]/", false), ("https://[64:ff9b::a00:1]/", false),
        ("https://93.184.216.34/hook", true), ("not a url", false), ("https://", false),
    ])
    func webhookURLs(_ url: String, _ ok: Bool) {
        let policy = WebhookPolicy()
        let valid = (try? policy.validate(url)) != nil
        #expect(valid == ok, "\(url)")
    }

    @Test func operatorCanOpenANetwork() throws {
        let open = WebhookPolicy(allowHTTP: true, allowedNetworks: [try #require(CIDR("127.0.0.1/32"))])
        #expect((try? open.validate("http://127.0.0.1:9000/hook")) != nil)
        #expect((try? open.validate("http://127.0.0.2:9000/hook")) == nil)
        #expect(open.allows(try #require(IPAddress("127.0.0.1"))))
        #expect(!open.allows(try #require(IPAddress("10.0.0.1"))))
    }
}
