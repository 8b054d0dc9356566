// The Metering module (issue 4, SPEC S3): pure domain values, no HTTP, no SQL.
//
// - `TokenAccount`: the token counts of one request (input with its system-prompt share,
//   output with its reasoning share), built from an engine's `usage` or estimated.
// - `ThinkSplitter`: splits `<think>…</think>` reasoning out of generated text.
// - `Cost`: integer nano-euros, overflow-checked; exact decimal euro strings.
// - `PriceBook`: per-model prices with effective instants; never re-prices the past.
// - `Energy`: integer micro-watt-hours from a model's kWh per million tokens.
