"""Batch API (issue 17) with the official `openai` SDK: files + batches against the real llama.cpp
engine (SmolLM2-135M) through the session gateway, tenant isolation by trying, validation errors,
and a restart drill (SIGKILL mid-batch) on a gateway of its own in front of EngineSim
(SIMULATED engine, so the batch's speed is under the test's control)."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import time

import httpx
import openai
import pytest

from conftest import (DB_ERRORS, READY_TIMEOUT_S, WAIT_S, KEY_RE, ManagedProcess, cli_env, free_ports, run_cli, start_own_gateway,
                      connect_db, wait_http_ok, wait_until)

# Catalog reference prices (n€/token) and the default batch price: half of each.
IN, OUT = 900, 4000
BATCH_IN, BATCH_OUT = IN // 2, OUT // 2


def jsonl(lines) -> bytes:
    return ("\n".join(json.dumps(l) for l in lines) + "\n").encode()


def chat_line(i: int, model: str, max_tokens: int = 4) -> dict:
    return {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"Say the number {i}."}],
                     "max_tokens": max_tokens, "temperature": 0}}


def upload(client: openai.OpenAI, data: bytes, name: str = "batch.jsonl"):
    return client.files.create(file=(name, io.BytesIO(data)), purpose="batch")


def wait_batch(client: openai.OpenAI, batch_id: str, timeout: float, statuses=("completed",)):
    def done():
        b = client.batches.retrieve(batch_id)
        return b if b.status in statuses or b.status in ("failed", "expired", "cancelled") else None
    b = wait_until(done, timeout=timeout, interval=0.5, message=lambda: f"batch {batch_id} to end: {client.batches.retrieve(batch_id)}")
    assert b.status in statuses, b
    return b


def results(client: openai.OpenAI, file_id) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(l) for l in client.files.content(file_id).text.splitlines() if l.strip()]


def ledger(db_path, where: str, args=()) -> list[dict]:
    db = connect_db(db_path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(f"SELECT * FROM requests WHERE {where}", args).fetchall()]
    finally:
        db.close()


def other_tenant_client(gw, name: str) -> openai.OpenAI:
    made = run_cli(gw.bin, ["tenant", "create", name, "--config", str(gw.config_path)], gw.data_dir)
    assert made.returncode == 0, made.stderr
    key = run_cli(gw.bin, ["key", "create", "--tenant", name, "--config", str(gw.config_path), "--json"], gw.data_dir)
    assert key.returncode == 0, key.stderr
    return openai.OpenAI(base_url=gw.base_url, api_key=json.loads(key.stdout)["key"], max_retries=0, timeout=60.0)


# --------------------------------------------------------------------------------------
# the real engine


def test_batch_of_200_completes_on_llamacpp_at_half_price(gw, client):
    n = 200
    lines = [chat_line(i, "smollm2:135m", max_tokens=3) for i in range(n)]
    f = upload(client, jsonl(lines))
    assert f.object == "file" and f.purpose == "batch" and f.bytes == len(jsonl(lines)) and f.status == "processed"
    assert client.files.retrieve(f.id).id == f.id
    assert f.id in [x.id for x in client.files.list(purpose="batch").data]
    assert client.files.content(f.id).content == jsonl(lines)

    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                              metadata={"job": "e2e-200"})
    assert b.object == "batch" and b.status in ("validating", "in_progress") and b.request_counts.total == n
    assert b.metadata == {"job": "e2e-200"} and b.expires_at - b.created_at == 86400
    b = wait_batch(client, b.id, timeout=20 * WAIT_S)
    assert b.request_counts.total == n and b.request_counts.completed == n and b.request_counts.failed == 0, b.request_counts
    assert b.in_progress_at and b.finalizing_at and b.completed_at and b.error_file_id is None
    assert b.id in [x.id for x in client.batches.list(limit=100).data]
    print(f"batch of {n} on llama.cpp: in_progress → completed in {b.completed_at - b.in_progress_at} s (whole seconds)")

    out = results(client, b.output_file_id)
    assert sorted(o["custom_id"] for o in out) == sorted(l["custom_id"] for l in lines)
    assert [o["custom_id"] for o in out] == [l["custom_id"] for l in lines]  # input order
    for o in out:
        assert o["error"] is None and o["id"].startswith("batch_req_")
        assert o["response"]["status_code"] == 200
        body = o["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == "smollm2:135m"
        assert body["choices"][0]["message"]["content"] is not None
        assert body["id"] == o["response"]["request_id"]

    # The ledger: one row per line, flagged batch, priced at half the interactive price.
    ids = [o["response"]["request_id"] for o in out]
    rows = wait_until(lambda: (r := ledger(gw.db_path, f"id IN ({','.join('?' * n)})", tuple(ids))) and len(r) == n and r,
                      message="the 200 ledger rows")
    for r in rows:
        assert r["batch"] == 1 and r["status"] == 200 and r["model"] == "smollm2:135m"
        assert r["cost_nano"] == r["prompt_tokens"] * BATCH_IN + r["completion_tokens"] * BATCH_OUT, r
        assert r["completion_tokens"] <= 3
    # /v1/usage shows the batch share.
    usage = httpx.get(f"{gw.base_url}/usage", headers={"Authorization": f"Bearer {gw.key}"}, timeout=30).json()
    assert usage["batch"]["requests"] >= n
    assert int(usage["batch"]["cost_nano_eur"]) >= sum(r["cost_nano"] for r in rows)
    # The audit log has the batch's life (the audit log is written in batches: the last entry may
    # land a moment after the batch reads completed).
    def audited():
        db = connect_db(gw.db_path)
        try:
            return {a for (a,) in db.execute("SELECT action FROM audit_log WHERE target IN (?, ?)", (b.id, f.id))}
        finally:
            db.close()
    want = {"file.upload", "batch.create", "batch.in_progress", "batch.completed"}
    wait_until(lambda: want <= audited(), message=lambda: f"the batch's audit entries {want} (have {audited()})")

    # Output files are the tenant's too; deleting works and then they are gone.
    assert client.files.retrieve(b.output_file_id).purpose == "batch_output"
    assert client.files.delete(b.output_file_id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(b.output_file_id)


def test_embeddings_batch(gw, client):
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "smollm2:135m", "input": f"text {i}"}} for i in range(5)]
    f = upload(client, jsonl(lines))
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
    b = wait_batch(client, b.id, timeout=10 * WAIT_S)
    out = results(client, b.output_file_id)
    assert sorted(o["custom_id"] for o in out) == [f"e{i}" for i in range(5)]
    assert all(o["response"]["body"]["data"][0]["embedding"] for o in out)


def test_another_tenant_gets_404_for_files_and_batches(gw, client):
    f = upload(client, jsonl([chat_line(i, "smollm2:135m", 2) for i in range(2)]))
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    other = other_tenant_client(gw, "batch-intruder")
    for call in (lambda: other.files.retrieve(f.id), lambda: other.files.content(f.id), lambda: other.files.delete(f.id),
                 lambda: other.batches.retrieve(b.id), lambda: other.batches.cancel(b.id),
                 lambda: other.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")):
        with pytest.raises(openai.NotFoundError):
            call()
    assert f.id not in [x.id for x in other.files.list().data]
    assert b.id not in [x.id for x in other.batches.list().data]
    # Still the owner's, untouched.
    assert client.files.retrieve(f.id).id == f.id
    wait_batch(client, b.id, timeout=10 * WAIT_S)


def test_invalid_files_and_batches_get_clear_errors(gw, client):
    good = chat_line(0, "smollm2:135m")
    cases = [
        (b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "smollm2:135m", "messages": [{"role": "user", "content": "x"}]}}\n{not json}\n',
         "Line 2", "not valid JSON"),
        (jsonl([good, good]), "Line 2", "custom_id"),
        (jsonl([good, {**chat_line(1, "smollm2:135m"), "url": "/v1/completions", "body": {"model": "smollm2:135m", "prompt": "x"}}]),
         "Line 2", "same endpoint"),
        (jsonl([{**good, "method": "GET"}]), "Line 1", "POST"),
        (jsonl([{**good, "url": "/v1/images"}]), "Line 1", "url"),
        (jsonl([good, {**chat_line(1, "smollm2:135m"), "body": {"model": "smollm2:135m"}}]), "Line 2", "messages"),
        (jsonl([good, {**chat_line(1, "smollm2:135m"), "body": {**good["body"], "stream": True}}]), "Line 2", "stream"),
        (b"", "no request", ""),
    ]
    for data, where, what in cases:
        with pytest.raises(openai.BadRequestError) as e:
            upload(client, data)
        err = e.value.body
        assert where in err["message"] and what in err["message"], err
        assert e.value.status_code == 400 and err["param"] == "file"
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("x.jsonl", io.BytesIO(jsonl([good]))), purpose="fine-tune")
    assert e.value.body["param"] == "purpose"
    f = upload(client, jsonl([good]))
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="48h")
    assert e.value.body["param"] == "completion_window" and "24h" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
    assert e.value.body["param"] == "endpoint"
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")


def test_a_file_larger_than_the_request_body_limit_uploads(gw, client):
    """The session gateway's request bodies are limited to 20 MiB (limits.max_body_bytes); batch files
    to batch.max_file_bytes (100 MiB): a 21 MiB file uploads, and reads back byte for byte."""
    filler = "x" * 30_000
    lines = [{"custom_id": f"big-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "smollm2:135m", "messages": [{"role": "user", "content": filler}], "max_tokens": 1}} for i in range(740)]
    data = jsonl(lines)
    assert len(data) > 21 * 2**20
    f = upload(client, data)
    assert f.bytes == len(data)
    assert client.files.content(f.id).content == data
    assert client.files.delete(f.id).deleted


# --------------------------------------------------------------------------------------
# restart drill (SIMULATED engine)

N_RESTART = 300
CONCURRENCY = 2


def restart_config(path, port, data, catalog, sim_port):
    path.write_text(f"""listen: 127.0.0.1:{port}
data_dir: {data}
catalog: {catalog}
tiers:
  tier-1: {{ output_tokens_per_day: 100000000 }}
batch: {{ worker_concurrency: {CONCURRENCY}, poll_interval_ms: 50, max_file_bytes: 200000, max_requests: 1000 }}
backends:
  - {{ name: sim-batch, kind: sim, url: "http://127.0.0.1:{sim_port}", models: {{ "sim-chat": "sim-chat" }} }}
""")


def test_sigkill_mid_batch_resumes_without_loss_or_repeat(llmaas_bin, tmp_path):
    """SIMULATED engine (EngineSim, ~100 ms per request). The gateway is killed with SIGKILL in the
    middle of a batch and restarted on the same data: the batch completes, the output file has
    every custom_id exactly once, and the ledger holds exactly one row per line."""
    p_gw, p_sim = free_ports(2)
    data = tmp_path / "data"
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text('models:\n  - { id: "sim-chat", phase: "production", in_production: "2025-01-01", capabilities: ["chat", "completions"] }\n')
    config = tmp_path / "gw.yaml"
    restart_config(config, p_gw, data, catalog, p_sim)
    sim = ManagedProcess("sim-batch", [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{p_sim}", "--model", "sim-chat",
                                       "--ttft-ms", "20", "--itl-ms", "10", "--tokens", "8"], tmp_path, cli_env(data))
    gw_proc = None
    try:
        wait_http_ok(f"http://127.0.0.1:{p_sim}/health", time.monotonic() + 30, [sim], "sim /health")
        gw_proc, key, _ = start_own_gateway(llmaas_bin, tmp_path, config, data, p_gw, [sim], "batch gateway")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{p_gw}/v1", api_key=key, max_retries=0, timeout=60)

        # The file size limit is the configured one: 413 naming it.
        with pytest.raises(openai.APIStatusError) as e:
            upload(client, b"x" * 300_000)
        assert e.value.status_code == 413 and "200000" in e.value.body["message"]

        lines = [chat_line(i, "sim-chat", max_tokens=8) for i in range(N_RESTART)]
        f = upload(client, jsonl(lines))
        b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        db_path = data / "llmaas.sqlite"

        def done_lines():
            db = connect_db(db_path)
            try:
                return db.execute("SELECT COUNT(*) FROM batch_lines WHERE batch_id = ? AND state = 'done'", (b.id,)).fetchone()[0]
            except DB_ERRORS:
                return 0
            finally:
                db.close()

        wait_until(lambda: done_lines() >= 60, timeout=10 * WAIT_S, message="60 lines done before the kill")
        gw_proc._signal(signal.SIGKILL)
        gw_proc.proc.wait(timeout=30)
        before = done_lines()
        assert before < N_RESTART, "the batch ended before the kill: nothing was tested"

        gw_proc.stop()
        gw_proc = ManagedProcess("gateway-2", [str(llmaas_bin), "serve", "--config", str(config)], tmp_path, cli_env(data))
        wait_http_ok(f"http://127.0.0.1:{p_gw}/ready", time.monotonic() + READY_TIMEOUT_S, [gw_proc, sim], "restarted gateway")
        b = wait_batch(client, b.id, timeout=20 * WAIT_S)
        assert b.request_counts.completed == N_RESTART and b.request_counts.failed == 0, b.request_counts

        out = results(client, b.output_file_id)
        ids = [o["custom_id"] for o in out]
        assert len(ids) == N_RESTART and len(set(ids)) == N_RESTART
        assert set(ids) == {l["custom_id"] for l in lines}
        assert all(o["response"]["status_code"] == 200 for o in out)

        # The ledger: exactly one batch row per line, and it is the one the output file names.
        request_ids = [o["response"]["request_id"] for o in out]
        db = connect_db(db_path)
        batch_rows = [r for (r,) in db.execute("SELECT id FROM requests WHERE batch = 1")]
        resumed = db.execute("SELECT outcome FROM audit_log WHERE action = 'batch.resumed' AND target = ?", (b.id,)).fetchall()
        db.close()
        assert sorted(batch_rows) == sorted(request_ids), "the ledger must hold exactly one row per line"
        # The engine: every line completed there at least once; only lines in flight at the kill
        # (at most worker_concurrency) may have been computed once more (never billed, never delivered).
        stats = httpx.get(f"http://127.0.0.1:{p_sim}/sim/stats", timeout=10).json()
        print(f"restart drill: {before} lines done at the kill; engine requests={stats.get('requests')} "
              f"completed={stats.get('completed')} for {N_RESTART} lines; resumed: {resumed}")
        assert N_RESTART <= stats["requests"] <= N_RESTART + CONCURRENCY
    finally:
        if gw_proc:
            gw_proc.stop()
        sim.stop()
