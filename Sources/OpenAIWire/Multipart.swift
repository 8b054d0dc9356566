/// `multipart/form-data` (RFC 7578): read what a client uploaded, write what an engine is sent.
/// Plain byte scanning; a part's body is kept as bytes (an audio file is not text).
public enum Multipart {
    /// One part of a form: a field (`name`, text in `data`) or a file (with `filename`).
    public struct Part: Sendable, Equatable {
        public var name: String
        public var filename: String?
        public var contentType: String?
        public var data: [UInt8]

        public init(name: String, filename: String? = nil, contentType: String? = nil, data: [UInt8]) {
            self.name = name; self.filename = filename; self.contentType = contentType; self.data = data
        }

        public var text: String { String(decoding: data, as: UTF8.self) }
    }

    /// The boundary of a `multipart/form-data; boundary=…` content type; nil for another type.
    public static func boundary(contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: " \t") }
        guard let type = parts.first, type.lowercased() == "multipart/form-data" else { return nil }
        for p in parts.dropFirst() {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0].trimmingCharacters(in: " \t").lowercased() == "boundary" else { continue }
            var b = kv[1].trimmingCharacters(in: " \t")
            if b.count >= 2, b.hasPrefix("\""), b.hasSuffix("\"") { b = String(b.dropFirst().dropLast()) }
            return b.isEmpty || b.utf8.count > 70 ? nil : b
        }
        return nil
    }

    /// The parts of a body; errors say what is wrong with the form (400).
    public static func parse(_ body: [UInt8], contentType: String?) throws(APIError) -> [Part] {
        guard let contentType, let boundary = boundary(contentType: contentType) else {
            throw APIError.invalidRequest("The body must be multipart/form-data with a boundary (Content-Type: multipart/form-data; boundary=…), as sent by the OpenAI SDKs and `curl -F`.",
                                          code: "invalid_content_type")
        }
        let delimiter = Array("--\(boundary)".utf8)
        var positions: [Int] = []
        var from = 0
        while let at = find(delimiter, in: body, from: from) {
            // A delimiter starts the body or follows CRLF.
            if at == 0 || (at >= 2 && body[at - 2] == 13 && body[at - 1] == 10) { positions.append(at) }
            from = at + delimiter.count
        }
        guard positions.count >= 2 else { throw malformed("no boundary delimiters") }
        var parts: [Part] = []
        for (k, start) in positions.dropLast().enumerated() {
            var i = start + delimiter.count
            if i + 1 < body.count, body[i] == 45, body[i + 1] == 45 { break }  // "--": the close delimiter
            // Skip transport padding up to CRLF.
            while i < body.count, body[i] == 32 || body[i] == 9 { i += 1 }
            guard i + 1 < body.count, body[i] == 13, body[i + 1] == 10 else { throw malformed("a boundary line does not end with CRLF") }
            i += 2
            let end = positions[k + 1] - 2  // the CRLF before the next delimiter
            guard let headerEnd = find([13, 10, 13, 10], in: body, from: i), headerEnd <= end else {
                throw malformed("a part has no header block")
            }
            let headerText = String(decoding: body[i..<headerEnd], as: UTF8.self)
            var name: String?, filename: String?, type: String?
            for line in headerText.split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let key = line[..<colon].trimmingCharacters(in: " \t").lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
                if key == "content-disposition" {
                    name = parameter("name", in: value)
                    filename = parameter("filename", in: value)
                } else if key == "content-type" {
                    type = value
                }
            }
            guard let name else { throw malformed("a part has no Content-Disposition name") }
            parts.append(Part(name: name, filename: filename, contentType: type, data: Array(body[(headerEnd + 4)..<max(headerEnd + 4, end)])))
        }
        return parts
    }

    /// A body with these parts and this boundary.
    public static func encode(_ parts: [Part], boundary: String) -> [UInt8] {
        var out: [UInt8] = []
        for p in parts {
            var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(escape(p.name))\""
            if let f = p.filename { head += "; filename=\"\(escape(f))\"" }
            head += "\r\n"
            if let t = p.contentType { head += "Content-Type: \(t)\r\n" }
            head += "\r\n"
            out += Array(head.utf8)
            out += p.data
            out += [13, 10]
        }
        out += Array("--\(boundary)--\r\n".utf8)
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\"", with: "%22").replacingOccurrences(of: "\r", with: "%0D").replacingOccurrences(of: "\n", with: "%0A")
    }

    static func malformed(_ detail: String) -> APIError {
        APIError.invalidRequest("The multipart/form-data body is malformed: \(detail). Send the form as the OpenAI SDKs or `curl -F` do.",
                                code: "invalid_multipart")
    }

    /// `name="value"` (or unquoted) in a Content-Disposition value.
    static func parameter(_ key: String, in value: String) -> String? {
        for item in value.split(separator: ";").dropFirst() {
            let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0].trimmingCharacters(in: " \t").lowercased() == key else { continue }
            var v = kv[1].trimmingCharacters(in: " \t")
            if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
            return v
        }
        return nil
    }

    /// The first index ≥ `from` where `needle` starts in `hay` (over raw buffers: batch files are
    /// up to 100 MB).
    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        hay.withUnsafeBufferPointer { h in needle.withUnsafeBufferPointer { n in ByteSearch.firstIndex(of: n, in: h, from: from) } }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    fileprivate func range(of target: String) -> Range<Substring.Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}
