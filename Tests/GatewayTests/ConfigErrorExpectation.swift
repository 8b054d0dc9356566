@testable import Gateway
import Testing

/// `yaml` must fail to load with a `ConfigError` naming `field` (the config suites of each section).
func expectConfigError(_ yaml: String, field: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try GatewayConfig.parse(yaml)
        Issue.record("should fail: \(yaml)", sourceLocation: sourceLocation)
    } catch let e as ConfigError {
        #expect(e.field == field, "\(e)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
}
