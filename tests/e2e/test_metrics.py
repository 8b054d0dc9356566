"""Metrics (issue 13, item 1) through the real gateway: chat, a stream and embeddings with the
official openai SDK against llama.cpp, then the Prometheus exposition read back — on the shared
gateway through the operator's /admin/v1/metrics (the same registry as /metrics), and on a
gateway of this module's own with a scrape token and a separate metrics listener."""

import json
import re

import httpx
import pytest

from conftest import free_ports, run_cli, start_own_gateway, yaml_quote

MODEL = "smollm2:135m"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """[(name, {label: value}, value)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def total(samples, name, **labels):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items()))


@pytest.fixture(scope="module")
def admin(gw):
    done = run_cli(gw.bin, ["admin", "token", "create", "--config", str(gw.config_path), "--json"], gw.data_dir)
    token = json.loads(done.stdout)["token"]
    with httpx.Client(base_url=f"{gw.url}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        yield c


def scrape(admin):
    r = admin.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def test_chat_stream_and_embeddings_show_in_the_metrics(gw, client, admin):
    before = scrape(admin)
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello"}], max_tokens=8)
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Count to five"}],
                                            max_tokens=12, stream=True, stream_options={"include_usage": True})
    streamed_usage = None
    for chunk in stream:
        if chunk.usage:
            streamed_usage = chunk.usage
    emb = client.embeddings.create(model=MODEL, input=["one text", "another text"], encoding_format="float")
    after = scrape(admin)

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    chat_labels = dict(model=MODEL, backend="local-1", endpoint="chat.completions")
    assert delta("gen_ai_server_request_duration_seconds_count", status_class="2xx", **chat_labels) == 2
    assert delta("gen_ai_server_request_duration_seconds_count", status_class="2xx", model=MODEL, endpoint="embeddings") == 1
    # Tokens by type: exactly what the answers reported.
    assert delta("gen_ai_client_token_usage_sum", token_type="input", **chat_labels) \
        == chat.usage.prompt_tokens + streamed_usage.prompt_tokens
    assert delta("gen_ai_client_token_usage_sum", token_type="output", **chat_labels) \
        == chat.usage.completion_tokens + streamed_usage.completion_tokens
    assert delta("gen_ai_client_token_usage_sum", token_type="input", model=MODEL, endpoint="embeddings") == emb.usage.prompt_tokens
    # The stream's time to first token, once, and no longer than the whole request.
    assert delta("gen_ai_server_time_to_first_token_seconds_count", **chat_labels) == 1
    ttft = delta("gen_ai_server_time_to_first_token_seconds_sum", **chat_labels)
    assert 0 < ttft <= delta("gen_ai_server_request_duration_seconds_sum", **chat_labels)
    # The gateway's own share of each request, energy of the real model, the ledger's commits.
    assert delta("llmaas_gateway_overhead_seconds_count", model=MODEL) == 3
    assert delta("llmaas_energy_microwatthours_total", model=MODEL, backend="local-1") > 0
    assert delta("llmaas_ledger_commit_seconds_count") >= 1
    # Sampled at scrape time: every configured backend, the managed engine up with its breaker closed.
    assert total(after, "llmaas_backend_up", backend="local-1") == 1
    assert total(after, "llmaas_backend_breaker_state", backend="local-1") == 0
    assert {l["backend"] for n, l, _ in after if n == "llmaas_backend_up"} == {"local-1", "sim-1", "sim-2", "dead-1"}
    # The old counters are still there (same registry).
    assert any(n == "llmaas_audit_entries_written_total" for n, _, _ in after)


@pytest.fixture(scope="module")
def own(llmaas_bin, gw, tmp_path_factory):
    """A gateway with a scrape token and a separate metrics listener, in front of the shared sim."""
    tmp = tmp_path_factory.mktemp("metrics-gw")
    port, metrics_port = free_ports(2)
    config = tmp / "gateway.yaml"
    config.write_text(f"""\
listen: {yaml_quote(f"127.0.0.1:{port}")}
data_dir: {yaml_quote(str(tmp / "data"))}
catalog: {yaml_quote(str(gw.catalog_path))}
metrics:
  scrape_token: "scrape-0123456789abcdef0123"
  listen: {yaml_quote(f"127.0.0.1:{metrics_port}")}
  tenant_label_limit: 10
backends:
  - name: sim-1
    kind: sim
    url: {yaml_quote(gw.sim_url)}
    models: {{ "sim-chat": "sim-chat" }}
""")
    process, key, admin_token = start_own_gateway(llmaas_bin, tmp, config, tmp / "data", port, [], "the metrics gateway")
    try:
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}", key, admin_token
    finally:
        process.stop()


def test_scrape_token_and_the_separate_listener(own):
    url, metrics_url, key, admin_token = own
    assert httpx.get(f"{url}/admin/v1/tenants", headers={"Authorization": f"Bearer {admin_token}"}, timeout=10).status_code == 200
    r = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                   json={"model": "sim-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert r.status_code == 200, r.text
    for headers in ({}, {"Authorization": "Bearer wrong-0123456789abcdef0123"}, {"Authorization": f"Bearer {key}"}):
        r = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_scrape_token"
        assert r.json()["error"]["type"] == "authentication_error"
    with_token = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer scrape-0123456789abcdef0123"}, timeout=10)
    assert with_token.status_code == 200
    assert with_token.headers["content-type"].startswith("text/plain; version=0.0.4")
    separate = httpx.get(f"{metrics_url}/metrics", timeout=10)
    assert separate.status_code == 200
    for text in (with_token.text, separate.text):
        samples = parse(text)
        assert total(samples, "gen_ai_server_request_duration_seconds_count", model="sim-chat", status_class="2xx") == 1
        # Hummingbird's middleware records the admin API through the same registry (bootstrapped by `serve`).
        assert any(n.startswith("http_server_request_duration") and l.get("http_route") == "/admin/v1/tenants"
                   for n, l, _ in samples), [(n, l) for n, l, _ in samples if n.startswith(("http", "hb"))][:5]
    # The metrics listener serves nothing else.
    assert httpx.get(f"{metrics_url}/v1/models", timeout=10).status_code == 404
