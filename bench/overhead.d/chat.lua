-- wrk script shared by every row of bench/overhead, so all targets see the identical request.
-- The API key comes from BENCH_API_KEY (the gateway's key, LiteLLM's master key); the nginx
-- rows ignore the header, but sending it keeps the request bytes the same for every row.
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "none")
wrk.body = '{"model":"smollm2:135m","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}'
