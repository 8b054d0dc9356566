import Foundation

/// What identifies one version of the catalog file on disk. Size and inode are compared too,
/// because editors often replace a file by rename within the same second.
public struct CatalogFileStamp: Sendable, Equatable {
    public var modified: Double
    public var size: Int
    public var inode: Int

    public init(modified: Double, size: Int, inode: Int) {
        self.modified = modified; self.size = size; self.inode = inode
    }

    /// The file's stamp now, or nil when it cannot be read.
    public static func of(path: String) -> CatalogFileStamp? {
        guard let a = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return CatalogFileStamp(modified: (a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0,
                                size: (a[.size] as? NSNumber)?.intValue ?? -1,
                                inode: (a[.systemFileNumber] as? NSNumber)?.intValue ?? -1)
    }
}

/// What changed between two catalogs, for the reload log line.
public struct CatalogDiff: Sendable, Equatable, CustomStringConvertible {
    public var added: [String]
    public var removed: [String]
    public var changed: [String]

    public init(from old: Catalog, to new: Catalog) {
        let before = Dictionary(old.entries.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.entries.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        added = after.keys.filter { before[$0] == nil }.sorted()
        removed = before.keys.filter { after[$0] == nil }.sorted()
        changed = after.compactMap { id, e in before[id].flatMap { $0 == e ? nil : id } }.sorted()
    }

    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

    public var description: String {
        if isEmpty { return "no model changed" }
        var parts: [String] = []
        if !added.isEmpty { parts.append("added \(added.joined(separator: ", "))") }
        if !removed.isEmpty { parts.append("removed \(removed.joined(separator: ", "))") }
        if !changed.isEmpty { parts.append("changed \(changed.joined(separator: ", "))") }
        return parts.joined(separator: "; ")
    }
}

/// Reloads the catalog file when asked (SIGHUP) or when it changed on disk (polled), and never
/// lets a bad file replace a good catalog: the outcome says exactly what is wrong instead.
/// The service that owns the timer and the signal lives in the gateway; this is the decision.
public struct CatalogWatcher: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// The file did not change since the last look.
        case unchanged
        /// A new catalog, valid, to install; with what changed.
        case reloaded(Catalog, CatalogDiff)
        /// The file changed (or a reload was asked) but is not acceptable; keep serving the old catalog.
        case rejected(CatalogError)

        public static func == (a: Outcome, b: Outcome) -> Bool {
            switch (a, b) {
            case (.unchanged, .unchanged): return true
            case let (.reloaded(x, d), .reloaded(y, e)): return x.entries == y.entries && d == e
            case let (.rejected(x), .rejected(y)): return x == y
            default: return false
            }
        }
    }

    public let path: String
    public private(set) var current: Catalog
    private var stamp: CatalogFileStamp?
    /// Extra checks against the rest of the configuration (e.g. every backend's model is still
    /// in the catalog); returns what is wrong, or nil.
    private let validate: @Sendable (Catalog) -> CatalogError?

    /// - Parameters:
    ///   - current: the catalog loaded at start from `path` (the stamp is taken now).
    public init(path: String, current: Catalog, validate: @escaping @Sendable (Catalog) -> CatalogError? = { _ in nil }) {
        self.path = path
        self.current = current
        self.stamp = CatalogFileStamp.of(path: path)
        self.validate = validate
    }

    /// Reloads only when the file's stamp changed since the last look. A broken version is
    /// reported once, then ignored until the file changes again.
    public mutating func poll() -> Outcome {
        let now = CatalogFileStamp.of(path: path)
        guard now != stamp else { return .unchanged }
        stamp = now
        return load()
    }

    /// Reloads whatever the file holds (SIGHUP), even when it looks unchanged.
    public mutating func reload() -> Outcome {
        stamp = CatalogFileStamp.of(path: path)
        return load()
    }

    private mutating func load() -> Outcome {
        let next: Catalog
        do {
            next = try CatalogFile.load(path: path)
        } catch let e as CatalogError {
            return .rejected(e.inFile(path))
        } catch {
            return .rejected(CatalogError(path: path, message: "\(error)"))
        }
        if let problem = validate(next) { return .rejected(problem.inFile(path)) }
        let diff = CatalogDiff(from: current, to: next)
        current = next
        return .reloaded(next, diff)
    }
}

extension CatalogError {
    /// The same error, its path prefixed with the file (`deploy/catalog.yaml: models[3].phase`).
    func inFile(_ file: String) -> CatalogError {
        path == file || path.hasPrefix(file + ": ") ? self : CatalogError(path: "\(file): \(path)", message: message)
    }
}
