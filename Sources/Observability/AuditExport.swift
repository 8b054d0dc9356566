import Foundation
import Storage

/// Audit entries as JSON lines or CSV (RFC 4180 quoting), for auditors.
public enum AuditExport {
    public enum Format: String, Sendable { case jsonl, csv }

    static let columns = ["seq", "time", "actor", "tenant_id", "action", "target", "outcome", "request_id", "client_ip",
                          "user_agent", "model", "status", "tokens", "prev_hash", "hash"]

    static func values(_ e: AuditRecord) -> [String?] {
        [String(e.seq), String(e.time), e.actor, e.tenantID, e.action, e.target, e.outcome, e.requestID, e.clientIP,
         e.userAgent, e.model, e.status.map(String.init), e.tokens.map(String.init), e.prevHash, e.hash]
    }

    public static func render(_ entries: [AuditRecord], _ format: Format) -> String {
        switch format {
        case .csv:
            var out = columns.joined(separator: ",") + "\r\n"
            for e in entries {
                out += values(e).map { v -> String in
                    guard let v else { return "" }
                    return v.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : v
                }.joined(separator: ",") + "\r\n"
            }
            return out
        case .jsonl:
            var out = ""
            for e in entries {
                let fields = zip(columns, values(e)).map { name, value -> String in
                    let isNumber = ["seq", "time", "status", "tokens"].contains(name)
                    guard let value else { return "\"\(name)\":null" }
                    return "\"\(name)\":" + (isNumber ? value : quote(value))
                }
                out += "{" + fields.joined(separator: ",") + "}\n"
            }
            return out
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
