import Foundation
import Testing
@testable import Catalog

@Suite struct ExtendedSupportFileTests {
    @Test func parsesPerTenantExtensions() throws {
        let catalog = try CatalogFile.parse("""
        models:
          - id: old:1b
            in_production: 2025-06-13
            end_of_support: 2025-12-31
            extended_support: { acme: 2026-06-30, beta-corp: 2026-03-31 }
        """)
        let e = try #require(catalog.resolve("old:1b"))
        #expect(e.extendedSupport == ["acme": day("2026-06-30"), "beta-corp": day("2026-03-31")])
        #expect(e.lifecycle(on: day("2026-04-01"), extendedUntil: e.extendedUntil(tenant: "beta-corp")) == .retired(on: day("2026-04-01")))
        #expect(e.lifecycle(on: day("2026-03-31"), extendedUntil: e.extendedUntil(tenant: "beta-corp")) == .deprecated(since: day("2025-12-31"), removal: day("2026-04-01")))
    }

    @Test(arguments: [
        ("extended_support: [acme]", "models[0].extended_support", "mapping"),
        ("extended_support: { acme: soon }", "models[0].extended_support.acme", "YYYY-MM-DD"),
        ("extended_support: { acme: 2026-03-30 }", "models[0].extended_support.acme", "does not extend support"),
    ])
    func badExtensionsNameTheField(_ line: String, _ path: String, _ words: String) {
        do {
            _ = try CatalogFile.parse("models:\n  - id: old:1b\n    end_of_support: 2025-12-31\n    \(line)")
            Issue.record("should fail")
        } catch let e as CatalogError {
            #expect(e.path == path)
            #expect(e.message.contains(words))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

@Suite struct CatalogWatcherTests {
    let good = "models:\n  - id: a:1b\n    aliases: [a]\n"
    let better = "models:\n  - id: a:1b\n    aliases: [a]\n  - id: b:2b\n"

    func tempFile(_ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-watch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("catalog.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Replaces the file by rename (as editors and config tools do): a new inode, so a change
    /// within the same second is still seen.
    func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func brokenFileKeepsTheOldCatalogAndSaysWhy() throws {
        let path = try tempFile(good)
        var watcher = CatalogWatcher(path: path, current: try CatalogFile.load(path: path))
        #expect(watcher.poll() == .unchanged)

        try write("models:\n  - id: a:1b\n    phase: beta\n", to: path)
        guard case .rejected(let e) = watcher.poll() else { Issue.record("a broken file must be rejected"); return }
        #expect(e.path == "\(path): models[0].phase")
        #expect(e.message == "must be 'production' or 'experimental'")
        #expect(watcher.current.resolve("a")?.id == "a:1b")
        // Reported once, not at every poll.
        #expect(watcher.poll() == .unchanged)

        try write("models: [", to: path)
        guard case .rejected(let yaml) = watcher.poll() else { Issue.record("invalid YAML must be rejected"); return }
        #expect(yaml.path == "\(path): (file)")
        #expect(yaml.message.hasPrefix("not valid YAML"))

        try write(better, to: path)
        guard case .reloaded(let next, let diff) = watcher.poll() else { Issue.record("a fixed file must load"); return }
        #expect(next.entries.map(\.id) == ["a:1b", "b:2b"])
        #expect(diff.description == "added b:2b")
        #expect(watcher.current.entries.count == 2)
        #expect(watcher.poll() == .unchanged)
    }

    @Test func sighupReloadsEvenWhenUnchangedAndMissingFileIsRejected() throws {
        let path = try tempFile(good)
        var watcher = CatalogWatcher(path: path, current: try CatalogFile.load(path: path))
        guard case .reloaded(_, let diff) = watcher.reload() else { Issue.record("reload must load"); return }
        #expect(diff.isEmpty)
        #expect(diff.description == "no model changed")

        try FileManager.default.removeItem(atPath: path)
        guard case .rejected(let e) = watcher.poll() else { Issue.record("a missing file must be rejected"); return }
        #expect(e.message == "cannot read the catalog file")
        #expect(watcher.current.resolve("a:1b") != nil)
    }

    @Test func validationAgainstTheConfigurationKeepsTheOldCatalog() throws {
        let path = try tempFile(better)
        var watcher = CatalogWatcher(path: path, current: try CatalogFile.load(path: path)) { catalog in
            catalog.resolve("b:2b") == nil ? CatalogError(path: "models", message: "'b:2b' is served by backend 'gpu-1' but no longer in the catalog") : nil
        }
        try write(good, to: path)
        guard case .rejected(let e) = watcher.poll() else { Issue.record("must be rejected"); return }
        #expect(e.description == "catalog: \(path): models: 'b:2b' is served by backend 'gpu-1' but no longer in the catalog")
        #expect(watcher.current.resolve("b:2b") != nil)
    }

    @Test func diffNamesChangedModels() throws {
        let old = try CatalogFile.parse(better)
        let new = try CatalogFile.parse("models:\n  - id: a:1b\n    aliases: [a]\n    context_length: 4096\n  - id: c:3b\n")
        #expect(CatalogDiff(from: old, to: new).description == "added c:3b; removed b:2b; changed a:1b")
    }
}
