"""Engine trouble and client hang-ups, with EngineSim and the real llama.cpp engine.

* lossless pass-through of unknown fields (checked on the sim's `/sim/stats`);
* an engine that is down, hangs, fails with 500 or cuts a stream;
* a client that closes a stream early must stop the generation upstream.

Assertions are about behaviour; the time limits below only keep a broken gateway from
hanging the suite.
"""

import json
import re
import time

import httpx
import openai
import pytest

from conftest import WAIT_S

MESSAGES = [{"role": "user", "content": "Hello"}]


def poll(predicate, timeout: float, interval: float = 0.1):
    """Call predicate() until it returns something truthy; return that (or the last value)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def last_request(stats: dict) -> dict:
    lr = stats["last_request"]
    return json.loads(lr) if isinstance(lr, str) else lr


# -- pass-through ---------------------------------------------------------------------


def test_unknown_fields_reach_the_engine_verbatim(gw, http: httpx.Client):
    # Raw bytes so that `2.50` is sent as written (json.dumps would print 2.5).
    body = (
        '{"model": "sim-chat", "messages": [{"role": "user", "content": "pass-through"}],'
        ' "max_tokens": 4, "top_k": 40, "vendor_ext": {"a": [1, 2.50, "x"]}}'
    )
    r = http.post(
        "/v1/chat/completions", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200, r.text

    stats = gw.sim_stats()
    assert re.search(r"\[\s*1\s*,\s*2\.50\s*,", stats.text), (
        "the number 2.50 did not reach the engine as written: " + stats.text[:1000]
    )
    req = last_request(stats.json())
    assert req["top_k"] == 40
    assert req["vendor_ext"] == {"a": [1, 2.5, "x"]}
    assert req["model"] == "sim-chat"
    assert req["messages"] == [{"role": "user", "content": "pass-through"}]


def test_unknown_fields_via_sdk_extra_body(gw, client: openai.OpenAI):
    completion = client.chat.completions.create(
        model="sim-chat",
        messages=MESSAGES,
        max_tokens=4,
        extra_body={"top_k": 40, "vendor_ext": {"a": [1, 2.50, "x"]}},
    )
    assert (completion.model_extra or {}).get("backend") == {
        "engine_type": "sim",
        "machine_name": "sim-1",
    }
    req = last_request(gw.sim_stats().json())
    assert req["top_k"] == 40
    assert req["vendor_ext"] == {"a": [1, 2.5, "x"]}


def test_engine_receives_its_served_model_name(gw, client: openai.OpenAI):
    """Catalog model `sim-slow` is served by sim-2 under the name `sim-chat`."""
    raw = client.chat.completions.with_raw_response.create(
        model="sim-slow", messages=MESSAGES, max_tokens=2, timeout=30
    )
    assert raw.headers.get("x-llmaas-backend") == "sim/sim-2"
    assert last_request(gw.sim_stats(gw.slow_sim_url).json())["model"] == "sim-chat"


# -- engine trouble -------------------------------------------------------------------


def test_backend_down_is_502_or_503(client: openai.OpenAI):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="down-model", messages=MESSAGES, timeout=30)
    assert e.value.status_code in (502, 503), e.value.body
    assert isinstance(e.value, openai.InternalServerError)
    assert e.value.response.headers.get("x-request-id")


def test_engine_that_hangs_is_504(gw, client: openai.OpenAI):
    # sim-1 has timeouts.first_byte_ms 1500; the sim never answers this request.
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(
            model="hang-model", messages=MESSAGES, extra_body={"sim_fault": "hang"}, timeout=30
        )
    assert e.value.status_code == 504, e.value.body
    row = gw.wait_request_row(e.value.response.headers["x-request-id"])
    assert row["outcome"] == "engine_timeout"


def test_engine_500_is_502(gw, client: openai.OpenAI):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(
            model="sim-chat", messages=MESSAGES, extra_body={"sim_fault": "500"}, timeout=30
        )
    assert e.value.status_code == 502, e.value.body
    row = gw.wait_request_row(e.value.response.headers["x-request-id"])
    assert row["outcome"] == "upstream_error"


def test_stream_cut_by_engine(gw, client: openai.OpenAI):
    raw = client.chat.completions.with_raw_response.create(
        model="sim-chat",
        messages=MESSAGES,
        stream=True,
        extra_body={"sim_fault": "cut"},
        timeout=30,
    )
    request_id = raw.headers["x-request-id"]
    stream = raw.parse()
    with pytest.raises(openai.APIError) as e:
        for _ in stream:
            pass
    assert e.value.code == "upstream_stream_error"
    assert e.value.type == "server_error"

    row = gw.wait_request_row(request_id)
    assert row["outcome"] == "upstream_error"
    assert row["model"] == "sim-chat"


def test_gateway_serves_sim_after_faults(client: openai.OpenAI):
    completion = client.chat.completions.create(model="sim-chat", messages=MESSAGES, max_tokens=4)
    assert completion.choices[0].message.content


# -- client hang-up -------------------------------------------------------------------


def test_hang_up_cancels_sim_generation(gw, client: openai.OpenAI):
    """sim-2 makes a token every 50 ms; 2000 tokens would take 100 s."""
    before = gw.sim_stats(gw.slow_sim_url).json()

    raw = client.chat.completions.with_raw_response.create(
        model="sim-slow", messages=MESSAGES, max_tokens=2000, stream=True, timeout=30
    )
    request_id = raw.headers["x-request-id"]
    stream = raw.parse()
    it = iter(stream)
    for _ in range(3):
        next(it)
    stream.close()

    def cancelled():
        s = gw.sim_stats(gw.slow_sim_url).json()
        return s if s["cancelled"] > before["cancelled"] else None

    after = poll(cancelled, timeout=WAIT_S)
    assert after, "the engine never saw the request cancelled: " + json.dumps(
        gw.sim_stats(gw.slow_sim_url).json()
    )[:500]
    assert after["cancelled"] == before["cancelled"] + 1
    generated = after["tokens_generated"] - before["tokens_generated"]
    assert generated < 500, f"{generated} tokens generated after the client hung up"

    row = gw.wait_request_row(request_id)
    assert row["outcome"] == "client_closed"


LONG_PROMPT = [
    {
        "role": "user",
        "content": "Write a very long, detailed essay about the history of Europe, "
        "century by century, with many examples.",
    }
]
# SmolLM2 ends that essay after ~520 tokens; banning its end-of-turn token (id 2,
# <|im_end|>) makes it run to max_tokens. 1800 tokens take ~30 s on 2 CPU cores, longer than
# the follow-up request's timeout; prompt (51 tokens) + 1800 fits the engine's 2048 context.
NO_EOS = {"logit_bias": {"2": -100}}


def test_hang_up_stops_llamacpp_generation(gw, client: openai.OpenAI):
    """llama.cpp serves one request at a time: the follow-up request completes within its
    timeout only if the generation of the abandoned stream stopped."""
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2:135m",
        messages=LONG_PROMPT,
        max_tokens=1800,
        temperature=0,
        stream=True,
        extra_body=NO_EOS,
        timeout=30,
    )
    request_id = raw.headers["x-request-id"]
    stream = raw.parse()
    it = iter(stream)
    for _ in range(3):
        next(it)
    stream.close()

    quick = client.chat.completions.create(
        model="smollm2:135m", messages=MESSAGES, max_tokens=4, timeout=20
    )
    assert quick.choices[0].message.content is not None

    row = gw.wait_request_row(request_id)
    assert row["outcome"] == "client_closed"
