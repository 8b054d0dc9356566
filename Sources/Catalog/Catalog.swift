import OpenAIWire

/// The set of models the platform knows, with their aliases. Immutable: a reload builds a new one.
public struct Catalog: Sendable {
    public let entries: [CatalogEntry]
    private let byName: [String: Int]

    /// Builds a catalog; fails when two models share an id or an alias.
    public init(entries: [CatalogEntry]) throws(CatalogError) {
        var byName: [String: Int] = [:]
        for (i, e) in entries.enumerated() {
            for name in [e.id] + e.aliases {
                if let other = byName[name] {
                    throw CatalogError(path: "models[\(i)]", message: "the name '\(name)' is already used by models[\(other)] (\(entries[other].id))")
                }
                byName[name] = i
            }
        }
        for (i, e) in entries.enumerated() {
            if let s = e.successor, byName[s] == nil {
                throw CatalogError(path: "models[\(i)].successor", message: "'\(s)' is not a model of the catalog")
            }
        }
        self.entries = entries
        self.byName = byName
    }

    /// The entry for a model id or alias.
    public func resolve(_ name: String) -> CatalogEntry? {
        byName[name].map { entries[$0] }
    }
}

/// A catalog file problem, naming the field (`models[3].end_of_support`) and what is wrong.
public struct CatalogError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let message: String
    public init(path: String, message: String) { self.path = path; self.message = message }
    public var description: String { "catalog: \(path): \(message)" }
}
