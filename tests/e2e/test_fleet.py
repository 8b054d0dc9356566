"""Fleet end to end (issue 7): engine kinds translated to OpenAI behaviour through the official
SDK (Ollama's native API, vLLM's metrics), the backends report, and a failure drill through the
gateway. Every engine here is EngineSim — SIMULATED engines, not models."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import openai
import pytest

from conftest import REPO, WAIT_S, ManagedProcess, cli_env, free_ports, start_own_gateway, wait_until, connect_db


@pytest.fixture(scope="module")
def fleet(llmaas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    p_ollama, p_v1, p_v2, p_v3, p_gw = free_ports(5)
    env = cli_env(tmp / "d")
    sims = {
        "ollama": ManagedProcess("ollama", [str(llmaas_bin), "sim", "--mode", "ollama", "--listen", f"127.0.0.1:{p_ollama}",
                                            "--model", "qwen3:8b", "--model", "granite-embedding:278m", "--ttft-ms", "2", "--itl-ms", "2"], tmp, env),
    }
    for name, port in [("v1", p_v1), ("v2", p_v2), ("v3", p_v3)]:
        sims[name] = ManagedProcess(name, [str(llmaas_bin), "sim", "--mode", "vllm", "--listen", f"127.0.0.1:{port}", "--model", "gemma3:4b",
                                           "--ttft-ms", "2", "--itl-ms", "40", "--tokens", "400"], tmp, env)
    data = tmp / "data"
    config = tmp / "gw.yaml"
    config.write_text(f"""listen: 127.0.0.1:{p_gw}
data_dir: {data}
catalog: {REPO / 'deploy/catalog.yaml'}
routing: {{ breaker_threshold: 1, breaker_cooldown_ms: 500 }}
backends:
  - {{ name: ollama-1, kind: ollama, url: "http://127.0.0.1:{p_ollama}", models: {{ "qwen3:8b": "qwen3:8b", "granite-embedding:278m": "granite-embedding:278m" }} }}
  - {{ name: vllm-1, kind: vllm, url: "http://127.0.0.1:{p_v1}", models: {{ "gemma3:4b": "gemma3:4b" }}, probe_interval_ms: 200 }}
  - {{ name: vllm-2, kind: vllm, url: "http://127.0.0.1:{p_v2}", models: {{ "gemma3:4b": "gemma3:4b" }}, probe_interval_ms: 200 }}
  - {{ name: vllm-3, kind: vllm, url: "http://127.0.0.1:{p_v3}", models: {{ "gemma3:4b": "gemma3:4b" }}, probe_interval_ms: 200 }}
""")
    gw = None
    try:
        gw, key, token = start_own_gateway(llmaas_bin, tmp, config, data, p_gw, list(sims.values()), "fleet gateway")
        yield {"url": f"http://127.0.0.1:{p_gw}", "key": key, "token": token, "sims": sims, "db": data / "llmaas.sqlite",
               "ports": {"v1": p_v1, "v2": p_v2, "v3": p_v3}, "bin": llmaas_bin, "tmp": tmp, "env": env}
    finally:
        if gw:
            gw.stop()
        for s in sims.values():
            s.stop()


def sdk(f):
    return openai.OpenAI(base_url=f["url"] + "/v1", api_key=f["key"], max_retries=0, timeout=60)


def test_ollama_is_spoken_as_openai(fleet):
    c = sdk(fleet)
    msgs = [{"role": "user", "content": "hello ollama"}]
    r = c.chat.completions.create(model="qwen3:8b", messages=msgs, max_tokens=6)
    assert r.choices[0].message.content and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert (r.model_extra or {})["backend"] == {"engine_type": "ollama", "machine_name": "ollama-1"}
    chunks = list(c.chat.completions.create(model="qwen3:8b", messages=msgs, max_tokens=6, stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text and chunks[-1].usage.completion_tokens > 0
    comp = c.completions.create(model="qwen3:8b", prompt="Once upon a time", max_tokens=5)
    assert comp.choices[0].text
    emb = c.embeddings.create(model="granite-embedding:278m", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == len(emb.data[1].embedding) > 0


def test_max_completion_tokens_caps_every_engine_kind(fleet, client):
    """max_completion_tokens (what LangChain sends) caps output on Ollama and vLLM kinds here, on
    the sim kind through the session gateway (`client`), and on llama.cpp in test_engine_health
    (issue 11). The EngineSims here would otherwise answer 400 tokens."""
    c = sdk(fleet)
    msgs = [{"role": "user", "content": "write a long story"}]
    for model in ("qwen3:8b", "gemma3:4b"):
        r = c.chat.completions.create(model=model, messages=msgs, max_completion_tokens=5)
        assert r.usage.completion_tokens <= 5, (model, r.usage)
        chunks = list(c.chat.completions.create(model=model, messages=msgs, max_completion_tokens=5, stream=True,
                                                stream_options={"include_usage": True}))
        assert chunks[-1].usage.completion_tokens <= 5, (model, chunks[-1].usage)
    r = client.chat.completions.create(model="sim-chat", messages=msgs, max_completion_tokens=5)
    assert r.usage.completion_tokens <= 5
    # An engine that ignores the cap (EngineSim's "overrun" fault): the stream is ended at the
    # cap, and neither answer bills more than the cap.
    chunks = list(client.chat.completions.create(model="sim-chat", messages=msgs, max_completion_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}, extra_body={"sim_fault": "overrun"}))
    texts = [ch for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert len(texts) == 5 and chunks[-1].usage.completion_tokens <= 5
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["length"]
    r = client.chat.completions.create(model="sim-chat", messages=msgs, max_completion_tokens=5, extra_body={"sim_fault": "overrun"})
    assert r.usage.completion_tokens <= 5


def test_backends_report_shows_state_and_load(fleet):
    r = httpx.get(fleet["url"] + "/admin/v1/backends", headers={"Authorization": f"Bearer {fleet['token']}"})
    assert r.status_code == 200, r.text
    text = json.dumps(r.json())
    for name in ["ollama-1", "vllm-1", "vllm-2", "vllm-3"]:
        assert name in text
    assert httpx.get(fleet["url"] + "/admin/v1/backends").status_code == 401


def test_failure_drill_through_the_gateway(fleet):
    """Streams run on three simulated vLLM machines; one is killed mid-stream, then revived."""
    url = fleet["url"] + "/v1/chat/completions"
    headers = {"Authorization": f"Bearer {fleet['key']}"}
    results = []
    streaming = set()  # the streams that have received their first bytes

    def stream(i):
        body = {"model": "gemma3:4b", "stream": True, "max_tokens": 400, "messages": [{"role": "user", "content": f"drill {i}"}]}
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as r:
            pieces = []
            for piece in r.iter_text():
                pieces.append(piece)
                streaming.add(i)
            results.append((r.status_code, r.headers.get("x-llmaas-backend"), r.headers.get("x-request-id"), "".join(pieces)))

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    # Kill mid-stream: once every stream is under way (400 tokens at 40 ms take 16 s).
    wait_until(lambda: len(streaming) == len(threads), message=lambda: f"all 6 streams under way ({len(streaming)} are)")
    victim = fleet["sims"]["v2"]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    # New requests during the outage: no client error (failover before the first byte).
    c = sdk(fleet)
    during = [c.chat.completions.create(model="gemma3:4b", messages=[{"role": "user", "content": f"during {i}"}], max_tokens=2)
              for i in range(6)]
    assert all(r.choices for r in during)
    assert all((r.model_extra or {})["backend"]["machine_name"] != "vllm-2" for r in during)
    for t in threads:
        t.join(timeout=2 * WAIT_S)
        assert not t.is_alive(), "a stream of the drill never ended"
    cut = [r for r in results if r[1] == "vllm/vllm-2"]
    whole = [r for r in results if r[1] != "vllm/vllm-2"]
    assert all(r[3].rstrip().endswith("data: [DONE]") for r in whole)
    for status, _, rid, text in cut:
        assert '"error"' in text and "upstream_stream_error" in text and "[DONE]" not in text
        row = wait_until(lambda: connect_db(fleet["db"]).execute("SELECT outcome, completion_tokens FROM requests WHERE id = ?",
                                                                      (rid,)).fetchone(),
                         message=f"the ledger row of {rid}")
        assert row and row[0] == "upstream_error" and row[1] > 0

    # Revive it on the same port: routing returns to it.
    fleet["sims"]["v2"] = ManagedProcess("v2b", [str(fleet["bin"]), "sim", "--mode", "vllm", "--listen", f"127.0.0.1:{fleet['ports']['v2']}",
                                                "--model", "gemma3:4b", "--ttft-ms", "2", "--itl-ms", "1", "--tokens", "4"], fleet["tmp"], fleet["env"])
    deadline = time.monotonic() + WAIT_S
    seen = set()
    while "vllm-2" not in seen and time.monotonic() < deadline:
        r = c.chat.completions.create(model="gemma3:4b", messages=[{"role": "user", "content": f"after {time.monotonic()}"}], max_tokens=2)
        seen.add((r.model_extra or {})["backend"]["machine_name"])
        time.sleep(0.05)
    assert "vllm-2" in seen
