"""Rerank (issue 17): Cohere-shaped /v2/rerank and /v1/rerank through the gateway, raw HTTP.

On the real SmolLM2 engine (an embedding model: the gateway ranks the documents by the cosine
of their embeddings, asked through the fleet), and on EngineSim's rerank route (SIMULATED
scores: the share of the query's words a document contains) for a model with the `rerank`
capability. Billed per reranked token (4 €/M by default): the ledger, /v1/usage
(group_by=endpoint), the metrics and the audit log show it.
"""

import json
import math

import httpx
import openai
import pytest

from conftest import connect_db, run_cli, wait_until

MODEL = "smollm2:135m"
QUERY = "Which animal sat on the mat?"
DOCS = [
    "Quantum chromodynamics describes the strong interaction between quarks.",
    "The cat sat on the mat and purred.",
    "Stock markets fell sharply on Tuesday.",
    "A dog slept on the rug by the fire.",
]
RERANK_PRICE_NANO = 4000  # 4 €/M reranked tokens


@pytest.fixture(scope="module")
def tenant(gw):
    """A tenant of its own (its usage is only this module's), with a full key and a chat-only key."""
    made = run_cli(gw.bin, ["tenant", "create", "rerank-e2e", "--tier", "monthly", "--config", str(gw.config_path), "--json"], gw.data_dir)
    assert made.returncode == 0, made.stderr
    tenant_id = json.loads(made.stdout)["id"]
    keys = {}
    for name, extra in (("full", []), ("chat-only", ["--endpoints", "chat"])):
        k = run_cli(gw.bin, ["key", "create", "--tenant", "rerank-e2e", "--name", name, *extra, "--config", str(gw.config_path), "--json"], gw.data_dir)
        assert k.returncode == 0, k.stderr
        keys[name] = json.loads(k.stdout)["key"]
    return {"id": tenant_id, "key": keys["full"], "chat_only": keys["chat-only"]}


@pytest.fixture()
def api(gw, tenant):
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {tenant['key']}"}, timeout=120.0) as c:
        yield c


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_v2_rerank_on_smollm2_is_the_cosine_of_its_embeddings(gw, api, tenant):
    r = api.post("/v2/rerank", json={"model": MODEL, "query": QUERY, "documents": DOCS, "top_n": 3, "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == r.headers["x-request-id"]
    results = body["results"]
    assert len(results) == 3
    scores = [x["relevance_score"] for x in results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for x in results:
        assert x["document"] == {"text": DOCS[x["index"]]}
    assert body["meta"]["api_version"] == {"version": "2"}
    tokens = body["meta"]["billed_units"]["reranked_tokens"]
    assert tokens > 0 and body["meta"]["tokens"] == {"input_tokens": tokens, "output_tokens": 0}
    assert r.headers["x-llmaas-backend"] == "llamacpp/local-1"

    # The same ranking as the model's own embeddings, compared here with the official SDK.
    c = openai.OpenAI(base_url=gw.base_url, api_key=tenant["key"], max_retries=0, timeout=120.0)
    vectors = [d.embedding for d in c.embeddings.create(model=MODEL, input=[QUERY, *DOCS], encoding_format="float").data]
    expected = sorted(range(len(DOCS)), key=lambda i: (-cosine(vectors[0], vectors[i + 1]), i))
    assert [x["index"] for x in results] == expected[:3]
    for x in results:
        assert x["relevance_score"] == pytest.approx((1 + cosine(vectors[0], vectors[x["index"] + 1])) / 2, abs=1e-6)

    row = gw.wait_request_row(body["id"])
    assert row["endpoint"] == "rerank.v2" and row["model"] == MODEL and row["status"] == 200
    assert row["reranked_tokens"] == tokens and row["prompt_tokens"] == 0
    assert row["cost_nano"] == tokens * RERANK_PRICE_NANO
    assert row["energy_uwh"] is not None and row["energy_uwh"] >= 0


def test_v1_rerank_with_document_objects(api):
    r = api.post("/v1/rerank", json={"model": "smollm2", "query": QUERY, "documents": [{"text": d} for d in DOCS]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(x["index"] for x in body["results"]) == list(range(len(DOCS)))  # no top_n: every document
    assert all("document" not in x for x in body["results"])  # return_documents defaults to false
    assert body["meta"]["api_version"] == {"version": "1"}
    assert body["model"] == MODEL


def test_reranker_served_by_the_engine_rerank_route_simulated(gw, api):
    """sim-rerank has the `rerank` capability: EngineSim's /v1/rerank scores (SIMULATED: shared words)."""
    docs = ["nothing in common", "the cat and the mat", "a cat"]
    r = api.post("/v2/rerank", json={"model": "sim-rerank", "query": "cat mat", "documents": docs, "top_n": 2, "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["index"] for x in body["results"]] == [1, 2]
    assert [x["relevance_score"] for x in body["results"]] == [1.0, 0.5]
    assert body["results"][0]["document"] == {"text": "the cat and the mat"}
    assert body["backend"] == {"engine_type": "sim", "machine_name": "sim-1"}
    assert body["meta"]["billed_units"]["reranked_tokens"] > 0
    last = gw.sim_stats().json()["last_request"]
    assert last["documents"] == docs and "top_n" not in last  # the gateway cuts to top_n itself


@pytest.mark.parametrize("body,status,param,code", [
    ({"model": MODEL, "query": "q", "documents": []}, 400, "documents", None),
    ({"model": MODEL, "query": "q"}, 400, "documents", None),
    ({"model": MODEL, "query": "", "documents": ["a"]}, 400, "query", None),
    ({"model": MODEL, "query": "q", "documents": ["a"], "top_n": 0}, 400, "top_n", None),
    ({"model": MODEL, "query": "q", "documents": ["d"] * 1001}, 400, "documents", "too_many_documents"),
    ({"model": MODEL, "query": "q", "documents": [{"title": "no text"}]}, 400, "documents[0].text", None),
    ({"model": "sim-chat", "query": "q", "documents": ["a"]}, 400, "model", None),
    ({"model": "no-such-model", "query": "q", "documents": ["a"]}, 404, "model", "model_not_found"),
])
def test_rerank_errors_in_openai_shape(api, body, status, param, code):
    for path in ("/v1/rerank", "/v2/rerank"):
        r = api.post(path, json=body)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]
        assert err["param"] == param, err
        if code:
            assert err["code"] == code
    if body["model"] == "sim-chat":
        assert "cannot rerank" in err["message"]


def test_a_key_without_the_rerank_grant_is_refused(gw, tenant):
    r = httpx.post(f"{gw.url}/v2/rerank", headers={"Authorization": f"Bearer {tenant['chat_only']}"},
                   json={"model": MODEL, "query": "q", "documents": ["a"]}, timeout=30)
    assert r.status_code == 403, r.text
    assert "'rerank'" in r.json()["error"]["message"]


def test_usage_metrics_and_audit_show_reranked_tokens(gw, api, tenant):
    ids = []
    for path in ("/v1/rerank", "/v2/rerank"):
        r = api.post(path, json={"model": MODEL, "query": "usage", "documents": ["one document", "another one"]})
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    rows = [gw.wait_request_row(i) for i in ids]
    usage = api.get("/v1/usage", params={"group_by": "endpoint"}).json()
    groups = {g["endpoint"]: g for g in usage["data"]}
    ledger = {}
    for e in ("rerank", "rerank.v2"):
        all_rows = gw.request_rows("tenant_id = ? AND endpoint = ? AND status = 200", (tenant["id"], e))
        ledger[e] = sum(x["reranked_tokens"] for x in all_rows)
        assert groups[e]["reranked_tokens"] == ledger[e] > 0
        assert groups[e]["input_tokens"] == 0 and groups[e]["output_tokens"] == 0
        assert groups[e]["cost_nano_eur"] == ledger[e] * RERANK_PRICE_NANO
    assert usage["totals"]["reranked_tokens"] >= ledger["rerank"] + ledger["rerank.v2"]

    def audited():
        db = connect_db(gw.db_path)
        try:
            return {r for (r,) in db.execute("SELECT action FROM audit_log WHERE request_id IN (?, ?)", tuple(ids))}
        finally:
            db.close()
    wait_until(lambda: audited() == {"inference.rerank", "inference.rerank.v2"}, message="the rerank audit entries")

    token = json.loads(run_cli(gw.bin, ["admin", "token", "create", "--config", str(gw.config_path), "--json"], gw.data_dir).stdout)["token"]
    text = httpx.get(f"{gw.url}/admin/v1/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30).text
    lines = [l for l in text.splitlines() if l.startswith("llmaas_reranked_tokens_total{")]
    assert all(float(l.rsplit(" ", 1)[1]) > 0 for l in lines), lines  # a series only for requests that reranked
    v2 = sum(float(l.rsplit(" ", 1)[1]) for l in lines if 'endpoint="rerank.v2"' in l)  # every tenant's; ours is part of it
    assert v2 >= ledger["rerank.v2"] > 0, lines
    assert not any('endpoint="chat.completions"' in l for l in text.splitlines() if l.startswith("llmaas_audio_milliseconds_total"))
    assert rows[0]["reranked_tokens"] > 0
