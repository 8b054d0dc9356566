-- wrk script shared by every row of bench/overhead, so all targets see the same kind of request.
-- The API key comes from BENCH_API_KEY (the gateway's key, LiteLLM's master key); the nginx
-- rows ignore the header, but sending it keeps the request bytes alike for every row.
-- Each request's prompt carries a counter: a real workload does not send the same prompt over
-- and over, and the gateway's prompt shield blocks the 30th identical prompt in a row.
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "none")

local counter = 0

-- BENCH_PROMPT_BYTES pads the prompt with ordinary prose to about that many bytes (default: the
-- short prompt alone), to see what the shield costs on longer prompts.
local pad = ""
local want = tonumber(os.getenv("BENCH_PROMPT_BYTES") or "0")
local prose = "The quarterly report shows steady growth in the northern region, while costs in logistics rose slightly. "
  .. "Please keep the tone friendly and summarise the main figures for the team meeting on Monday. "
while #pad + 40 < want do pad = pad .. prose end

function request()
  counter = counter + 1
  local body = '{"model":"smollm2:135m","messages":[{"role":"user","content":"' .. pad .. 'Say hello, request ' .. counter .. '"}],"max_tokens":16}'
  return wrk.format(nil, nil, nil, body)
end
