import Catalog
import Foundation
import HTTPTypes
import Metering
import Observability
import OpenAIWire
import Quotas
import Storage
import Synchronization
import Tenancy

/// Admission and settlement (DESIGN §1 steps 3 and 7): the month's budget and prepaid credit,
/// the tier's rate windows (reserving the expected output), then, when the request ends, the
/// real token counts → cost (integer n€) and energy (µWh) → the ledger row.
public final class Billing: Sendable {
    let tiers: [String: Tier]
    let limiter: RateLimiter
    let priceBook: PriceBook
    let defaultMaxTokens: Int
    let storage: Storage
    let now: @Sendable () -> Int64
    /// Told of each refusal: its reason (the limit's name or the budget's refusal code) and tenant.
    let onRefusal: @Sendable (String, String) -> Void
    /// Per tenant: the month's spend and the credit balance, loaded once, then kept up to date.
    private let budgets = Mutex<[String: BudgetState]>([:])
    /// With replicas (`cluster:`): the shared limits, and how long a loaded budget is trusted
    /// (other replicas spend too). Nil: one gateway, everything in process.
    let cluster: ClusterCoordinator?
    let budgetTTLms: Int64

    struct BudgetState {
        var month: String
        var spentMonth: Int64
        var balance: Int64
        /// When it was read from the database (replicas re-read it after `budgetTTLms`).
        var loadedAt: Int64 = 0
        /// The spend up to which the 80/100 % thresholds were looked at (a re-read that shows
        /// other replicas' spend is looked at on the next settlement).
        var checkedSpend: Int64 = 0
    }

    public init(config: GatewayConfig, catalog: Catalog, storage: Storage, now: @escaping @Sendable () -> Int64,
                cluster: ClusterCoordinator? = nil,
                onRefusal: @escaping @Sendable (String, String) -> Void = { _, _ in }) {
        self.cluster = cluster
        self.budgetTTLms = cluster.map { Int64($0.config.budgetCacheMs) } ?? .max
        self.onRefusal = onRefusal
        self.tiers = config.tiers
        self.limiter = RateLimiter(now: now)
        // Catalog prices from the beginning of time, then the configured changes at their dates.
        self.priceBook = PriceBook(PriceBook(catalog: catalog.entries).entries + config.priceChanges)
        self.defaultMaxTokens = config.defaultMaxTokens
        self.storage = storage
        self.now = now
    }

    /// A tenant's tier; one no longer configured counts as the default tier.
    public func tier(_ name: String) -> Tier { tiers[name] ?? tiers[Administration.defaultTier] ?? Tier.tier1 }

    /// A request's claim on its tenant's windows, released or settled exactly once.
    struct Admission: Sendable {
        let reservation: Reservation
        let tenant: String
        let tier: Tier
        /// The claim on the limits shared with other replicas (nil: one gateway).
        var ticket: ClusterTicket? = nil
        /// n€ held of the tenant's credit and cap across replicas, released once its ledger row
        /// is committed (0: nothing held — one gateway, or neither a credit nor a cap applies).
        var moneyHeld: Int64 = 0
    }

    /// Replicas: money held by requests settled but whose ledger row is not committed yet, by
    /// request id (released by ``ledgerCommitted(_:)``).
    private let awaitingLedger = Mutex<[String: (tenant: String, amount: Int64)]>([:])

    /// The most a request can cost (n€) before it is sent: its `max_tokens` (or the default) at
    /// the dearer of the output and reasoning prices, plus a bound on its prompt tokens (one per
    /// byte of its texts, plus the chat template's) at the input price. Only with replicas and for
    /// token-billed endpoints (nil otherwise: nothing is held).
    func worstCaseCost(_ inference: InferenceRequest, model: CatalogEntry) -> Int64? {
        guard cluster != nil, inference.endpoint.spec.billedUnit == .tokens else { return nil }
        let output = max(0, inference.maxTokens ?? defaultMaxTokens)
        let prompt = inference.promptTexts.reduce(64) { $0 + $1.utf8.count + 16 }
        let prices = priceBook.price(model: model.id, at: now(), default: model.prices)
        let plain = (try? Cost.compute(input: prompt, output: output, reasoning: 0, prices: prices).total.nanoEuros) ?? .max
        let thinking = (try? Cost.compute(input: prompt, output: output, reasoning: output, prices: prices).total.nanoEuros) ?? .max
        return max(plain, thinking)
    }

    /// Budget first (a month over its cap, or a prepaid balance spent, refuses everything), then
    /// the rate windows, reserving `max_tokens` (or the default) of output.
    /// `batch`: a batch line (issue 17), charged to the day window only (``RateLimiter/admitBatch``).
    /// `worstCase`: with replicas, the n€ to hold of the tenant's credit and cap (``worstCaseCost``).
    func admit(_ p: Principal, expectedOutput: Int?, batch: Bool = false, worstCase: Int64? = nil) async throws(APIError) -> Admission {
        let tier = self.tier(p.tier)
        let t = now()
        let state = await budget(p.tenantID)
        if case .refused(let refusal) = BudgetGuard.check(spentThisMonthNano: state.spentMonth, creditBalanceNano: state.balance, tier: tier, nowMs: t) {
            var e = APIError.rateLimited(refusal.message, retryAfter: Int(((refusal.resetsAtMs ?? t + 3_600_000) - t + 999) / 1000),
                                         code: refusal.code.rawValue)
            e.headers += rateHeaders(p)
            onRefusal(refusal.code.rawValue, p.tenantID)
            throw e
        }
        // The tenant's tier windows, and the key's own narrower ones when it has overrides.
        var subjects: [(subject: String, limits: Limits)] = [("tenant:\(p.tenantID)", tier.limits)]
        if let k = p.grants.limits, !k.isEmpty {
            subjects.append(("key:\(p.keyID)", tier.limits.overridden(by: LimitOverrides(
                requestsPerMinute: k.requestsPerMinute, outputTokensPerHour: k.outputTokensPerHour,
                outputTokensPerDay: k.outputTokensPerDay, concurrentRequests: k.concurrentRequests))))
        }
        // Replicas: the tenant's limits as a whole first (slices of the shared windows); the
        // replica's own limiter then only keeps its view for the headers (it cannot refuse what
        // the shared windows admitted: its usage is a part of theirs).
        var ticket: ClusterTicket?
        if let cluster {
            let shared: Result<ClusterTicket, Refusal>
            do { shared = try await cluster.admit(subjects, expectedOutput: expectedOutput ?? defaultMaxTokens, batch: batch) } catch {
                throw APIError.unavailable("The shared limits cannot be checked right now (database unreachable). Retry in a few seconds.", retryAfter: 2)
            }
            switch shared {
            case .success(let tk): ticket = tk
            case .failure(let refusal):
                var e = APIError.rateLimited(refusal.message, retryAfter: refusal.retryAfterSeconds)
                e.headers += rateHeaders(p)
                onRefusal(refusal.limit.rawValue, p.tenantID)
                throw e
            }
        }
        let decision = batch ? limiter.admitBatch(subjects, expectedOutput: expectedOutput ?? defaultMaxTokens, now: t)
                             : limiter.admit(subjects, expectedOutput: expectedOutput ?? defaultMaxTokens, now: t)
        switch decision {
        case .success(let r):
            var admission = Admission(reservation: r, tenant: p.tenantID, tier: tier, ticket: ticket)
            if let cluster, let worstCase, tier.prepaid || tier.monthlyCapNano != nil {
                try await holdMoney(cluster, &admission, p, need: worstCase)
            }
            return admission
        case .failure(let refusal):
            if let ticket { cluster?.settle(ticket, actualOutput: 0) }
            var e = APIError.rateLimited(refusal.message, retryAfter: refusal.retryAfterSeconds)
            e.headers += rateHeaders(p)
            onRefusal(refusal.limit.rawValue, p.tenantID)
            throw e
        }
    }

    /// Replicas: holds the request's worst-case cost of the tenant's credit and cap as a whole,
    /// or refuses with the single gateway's codes (its message when the balance or the cap is used
    /// up; otherwise one that says the worst case does not fit in what is left).
    private func holdMoney(_ cluster: ClusterCoordinator, _ admission: inout Admission, _ p: Principal, need: Int64) async throws(APIError) {
        let tier = admission.tier
        let held: Result<Void, Storage.MoneyBudget>
        do { held = try await cluster.holdMoney(tenantID: p.tenantID, need: need, prepaid: tier.prepaid, cap: tier.monthlyCapNano) } catch {
            release(admission)
            throw APIError.unavailable("The shared limits cannot be checked right now (database unreachable). Retry in a few seconds.", retryAfter: 2)
        }
        switch held {
        case .success:
            admission.moneyHeld = need
        case .failure(let budget):
            release(admission)
            let t = now()
            let refusal = BudgetGuard.reservationRefused(creditLeft: budget.creditLeft, capLeft: budget.capLeft, held: budget.held,
                                                         need: need, tier: tier, nowMs: t)
            var e = APIError.rateLimited(refusal.message, retryAfter: Int(((refusal.resetsAtMs ?? t + 3_600_000) - t + 999) / 1000),
                                         code: refusal.code.rawValue)
            e.headers += rateHeaders(p)
            onRefusal(refusal.code.rawValue, p.tenantID)
            throw e
        }
    }

    /// Replicas: the request `requestID` was settled; its hold is released once its ledger row
    /// is committed (then its real cost is in the spend every replica reads).
    func holdUntilLedger(requestID: String, _ a: Admission) {
        guard a.moneyHeld > 0 else { return }
        awaitingLedger.withLock { $0[requestID] = (a.tenant, a.moneyHeld) }
    }

    /// Ledger rows were committed: the holds of their requests are released.
    func ledgerCommitted(_ requestIDs: [String]) {
        guard let cluster else { return }
        let done = awaitingLedger.withLock { pending in requestIDs.compactMap { pending.removeValue(forKey: $0) } }
        for d in done { cluster.releaseMoney(tenantID: d.tenant, amount: d.amount) }
    }

    /// The request failed before producing anything: give back its reservation.
    func release(_ a: Admission) {
        if a.moneyHeld > 0 { cluster?.releaseMoney(tenantID: a.tenant, amount: a.moneyHeld) }
        if limiter.release(a.reservation), let ticket = a.ticket { cluster?.settle(ticket, actualOutput: 0) }
    }

    /// The request ended with these counts: settle the windows, price it, count its energy, and
    /// return what the ledger row records. Crossing 80 % or 100 % of the month's cap is returned
    /// for a webhook.
    func settle(_ a: Admission, account: TokenAccount, model: CatalogEntry) async -> (cost: Int64, energy: Int64?, crossed: [Int]) {
        await settle(a, work: .tokens(account), model: model)
    }

    /// As ``settle(_:account:model:)`` for work in any unit (reranked tokens, audio).
    func settle(_ a: Admission, work: MeteredWork, model: CatalogEntry) async -> (cost: Int64, energy: Int64?, crossed: [Int]) {
        if limiter.settle(a.reservation, actualOutput: work.outputTokens), let ticket = a.ticket {
            cluster?.settle(ticket, actualOutput: work.outputTokens)
        }
        let t = now()
        let prices = a.reservation.batch ? batchPrices(model, at: t) : priceBook.price(model: model.id, at: t, default: model.prices)
        let cost = (try? work.cost(at: prices).nanoEuros) ?? Int64.max
        let energy = work.energy(model: model)?.microWattHours
        _ = await budget(a.tenant)  // loaded (admission did it already, unless the month just turned)
        let crossed = budgets.withLock { b -> [Int] in
            guard var s = b[a.tenant] else { return [] }
            let month = UTCMonth.monthKey(ms: t)
            if s.month != month { s = BudgetState(month: month, spentMonth: 0, balance: s.balance) }
            s.spentMonth += cost
            s.balance -= cost
            // From the spend already looked at: includes other replicas' spend seen by a re-read.
            let old = min(s.checkedSpend, s.spentMonth - cost)
            s.checkedSpend = s.spentMonth
            b[a.tenant] = s
            return BudgetGuard.crossed(before: old, after: s.spentMonth, cap: a.tier.monthlyCapNano)
        }
        return (cost, energy, crossed)
    }

    /// The batch price of a model (issue 17): the catalog's `batch_prices`, else half the
    /// interactive price in force at `t`.
    public func batchPrices(_ model: CatalogEntry, at t: Int64) -> Prices {
        model.batchPrices ?? priceBook.price(model: model.id, at: t, default: model.prices).halved
    }

    /// The tenant's spend this month and credit balance (credits minus all spend), cached.
    func budget(_ tenantID: String) async -> BudgetState {
        let t = now()
        let month = UTCMonth.monthKey(ms: t)
        let cached = budgets.withLock({ $0[tenantID] })
        if let s = cached, s.month == month, t - s.loadedAt < budgetTTLms { return s }
        let start = UTCMonth.monthStartMs(containing: t)
        let spentMonth = (try? await storage.spend(tenantID: tenantID, from: start, to: Int64.max)) ?? 0
        let spentAll = (try? await storage.spend(tenantID: tenantID, from: 0, to: Int64.max)) ?? 0
        let credit = (try? await storage.creditTotal(tenantID: tenantID)) ?? 0
        var fresh = BudgetState(month: month, spentMonth: spentMonth, balance: credit - spentAll, loadedAt: t, checkedSpend: spentMonth)
        return budgets.withLock { b in
            if let old = b[tenantID], old.month == month {
                // Single gateway: keep the state kept up to date in memory. Replicas: the re-read
                // wins (it has every replica's committed spend); what was already looked at stays.
                guard budgetTTLms != .max, t - old.loadedAt >= budgetTTLms else { return old }
                fresh.checkedSpend = min(old.checkedSpend, fresh.spentMonth)
            }
            b[tenantID] = fresh
            return fresh
        }
    }

    /// Forget a tenant's cached budget (credit added, tier changed).
    public func invalidate(tenantID: String) { budgets.withLock { _ = $0.removeValue(forKey: tenantID) } }

    /// `X-RateLimit-*` of the caller's tenant, on every response.
    func rateHeaders(_ p: Principal) -> [(String, String)] {
        limiter.headers(for: "tenant:\(p.tenantID)", limits: tier(p.tier).limits)
    }

    /// Splits a request's prompt tokens into the system share, in proportion to the characters of
    /// system/developer messages (the engine reports one prompt count).
    static func systemShare(_ inference: InferenceRequest, promptTokens: Int) -> Int {
        var system = 0, total = 0
        for t in inference.endpoint.spec.texts(inference.body) {
            total += t.text.utf8.count
            if t.role == "system" || t.role == "developer" { system += t.text.utf8.count }
        }
        return total == 0 ? 0 : Int((Int64(promptTokens) * Int64(system)) / Int64(total))
    }
}

/// Settles one admitted request: real counts (the engine's, else `<think>`/`reasoning_content`
/// split and the 4-characters estimate, marked), cost, energy, into the ledger row; and the
/// usage the client sees (always with `completion_tokens_details.reasoning_tokens`).
struct Settler: Sendable {
    let platform: Platform
    let admission: Billing.Admission
    let inference: InferenceRequest
    let entry: CatalogEntry

    func settle(_ record: inout RequestRecord, engineUsage: Usage?, output: String, reasoning: String) async -> Usage {
        // The prompt's text is only read to estimate its tokens when the engine gave no counts.
        let promptText = engineUsage == nil ? inference.promptTexts.joined(separator: "\n") : ""
        var account = TokenAccount.resolve(engineUsage: engineUsage, promptText: promptText, outputText: output,
                                           reasoningContent: reasoning.isEmpty ? nil : reasoning)
        // The client's cap is an upper bound on what it pays (admission reserved exactly that),
        // whatever an engine that ignores it produced.
        let cap = inference.maxTokens ?? Int.max
        account = TokenAccount(inputTokens: account.inputTokens, systemPromptTokens: Billing.systemShare(inference, promptTokens: account.inputTokens),
                               outputTokens: min(account.outputTokens, cap), reasoningTokens: min(account.reasoningTokens, cap),
                               estimated: account.estimated)
        let (cost, energy, crossed) = await platform.billing.settle(admission, account: account, model: entry)
        platform.billing.holdUntilLedger(requestID: record.id, admission)
        record.promptTokens = account.inputTokens
        record.completionTokens = account.outputTokens
        record.reasoningTokens = account.reasoningTokens
        record.systemTokens = account.systemPromptTokens
        record.costNano = cost
        record.energyMicroWh = energy
        record.estimated = account.estimated ? 1 : 0
        notify(crossed)
        return account.usage
    }

    /// Settles a request billed in its endpoint's own unit: a rerank by the tokens it read
    /// (the engine's count, else the 4-characters estimate, marked), a transcription by its
    /// audio's duration. Returns the usage the client sees (the reranked tokens as prompt tokens).
    func settle(_ record: inout RequestRecord, unit: BilledUnit, engineUsage: Usage?, audioMs: Int?) async -> Usage {
        let work: MeteredWork
        var usage = Usage(promptTokens: 0, completionTokens: 0)
        switch unit {
        case .audioSeconds:
            let ms = audioMs ?? 0
            work = .audio(durationMs: ms)
            record.audioMs = ms
        case .rerankedTokens, .tokens:
            if let engineUsage, !engineUsage.estimated || engineUsage.promptTokens > 0 {
                usage = Usage(promptTokens: engineUsage.promptTokens, completionTokens: 0, estimated: engineUsage.estimated)
            } else {
                usage = Usage(promptTokens: Usage.estimateTokens(inference.promptTexts.joined(separator: "\n")), completionTokens: 0, estimated: true)
            }
            work = .rerankedTokens(usage.promptTokens)
            record.rerankedTokens = usage.promptTokens
        }
        let (cost, energy, crossed) = await platform.billing.settle(admission, work: work, model: entry)
        platform.billing.holdUntilLedger(requestID: record.id, admission)
        record.costNano = cost
        record.energyMicroWh = energy
        record.estimated = usage.estimated ? 1 : 0
        notify(crossed)
        return usage
    }

    /// Budget thresholds crossed by this request: one webhook each (once per month and threshold).
    func notify(_ crossed: [Int]) {
        for threshold in crossed {
            let tenant = admission.tenant, month = UTCMonth.monthKey(ms: platform.now())
            let platform = self.platform
            Task {
                if (try? await platform.storage.recordBudgetNotice(tenantID: tenant, month: month, threshold: threshold, at: platform.now())) == true {
                    Webhooks(platform: platform).send(tenantID: tenant, event: "budget.threshold", payload: .object([
                        ("threshold_percent", .int(threshold)), ("month", .string(month)),
                        ("cap_eur", .string(Metering.Cost.euroString(admission.tier.monthlyCapNano ?? 0))),
                    ]))
                }
            }
        }
    }
}
