// The Quotas module (issue 4, SPEC S4): pure domain values, no HTTP, no SQL.
//
// - `Tier` / `Limits`: the billing tiers of SPEC S4 as default configuration, per-key overrides.
// - `RateLimiter`: requests per minute, output tokens per hour and per day, concurrent requests;
//   reserve at admission, settle to the real count, OpenAI-style `X-RateLimit-*` headers.
// - `BudgetGuard`: monthly cap and prepaid credit; 80 % / 100 % threshold crossings.
