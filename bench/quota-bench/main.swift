// The hot-path cost of admission + settlement (issue 4), in one process: per request, a rate
// admission over the tenant's windows (reserving max_tokens), the budget check, and at the end
// the settlement, token account, cost and energy. Release build:
//   swift build -c release --product quota-bench && .build/release/quota-bench
import Catalog
import Dispatch
import Foundation
import Metering
import OpenAIWire
import Quotas

let tenants = 64
let rounds = 200_000
let limiter = RateLimiter(now: { Int64(Date().timeIntervalSince1970 * 1000) })
let tier = Tier.tier1
let model = CatalogEntry(id: "m", energyKWhPerMTok: 0.5)
var samples: [Double] = []
samples.reserveCapacity(rounds)
var sink: Int64 = 0
for i in 0..<rounds {
    let t0 = DispatchTime.now().uptimeNanoseconds
    let subject = "tenant:\(i % tenants)"
    _ = BudgetGuard.check(spentThisMonthNano: 1_000, creditBalanceNano: 1_000_000, tier: tier, nowMs: 1_795_910_400_000)
    guard case .success(let r) = limiter.admit(subject: subject, limits: Limits(requestsPerMinute: 1_000_000, outputTokensPerHour: 1 << 40,
                                                                               outputTokensPerDay: 1 << 41, concurrentRequests: 1 << 20),
                                               expectedOutput: 256) else { fatalError("refused") }
    let account = TokenAccount.resolve(engineUsage: Usage(promptTokens: 120, completionTokens: 80, reasoningTokens: 20), outputText: "")
    let cost = try! Cost.of(account, at: .reference)
    let energy = Energy.of(account, model: model)
    _ = limiter.settle(r, actualOutput: account.outputTokens)
    sink &+= cost.nanoEuros &+ (energy?.microWattHours ?? 0)
    samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
}
samples.sort()
func pct(_ p: Double) -> Double { samples[min(samples.count - 1, Int(Double(samples.count) * p))] }
print("| step | n | p50 µs | p99 µs | mean µs |")
print("|---|---:|---:|---:|---:|")
print(String(format: "| budget check + admit + settle + cost + energy | %d | %.2f | %.2f | %.2f |", rounds, pct(0.5), pct(0.99),
             samples.reduce(0, +) / Double(samples.count)))
if sink == 42 { print("") }
