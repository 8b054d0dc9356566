"""Alerts, rollups and the status page end to end (issue 13, items 2, 3 and 6).

A gateway of its own in front of an EngineSim (SIMULATED engine) with fast evaluation periods
(1 s; the defaults are 60 s), a global rule (notified on the operator's webhook) and a tenant
rule (notified on the tenant's webhook). Traffic flows through the official openai SDK the whole
time; an EngineSim fault (`slow`) makes the model slow, then is removed. Each incident must fire
exactly once and resolve exactly once, with a signed body (HMAC-SHA256, verified here as a
receiver would). Every wait polls a condition (`wait_until`)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time

import httpx
import openai
import pytest

from conftest import WAIT_S, ManagedProcess, cli_env, free_ports, start_own_gateway, wait_http_ok, wait_until, DB_ERRORS, connect_db

OPERATOR_SECRET = "operator-secret-0123456789"
SLOW_MS = 1200


class Receiver:
    """A webhook receiver on 127.0.0.1: keeps each POST's path, headers and raw body."""

    def __init__(self):
        self.received: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    outer.received.append({"path": self.path, "headers": dict(self.headers), "raw": raw, "json": json.loads(raw)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        (self.port,) = free_ports(1)
        self.server = http.server.HTTPServer(("127.0.0.1", self.port), Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str, event: str) -> list[dict]:
        with self.lock:
            return [r for r in self.received if r["path"] == path and r["json"].get("event") == event]


def verify(headers: dict, raw: bytes, secret: str) -> None:
    """What a receiver does: recompute HMAC-SHA256(secret, "<t>.<body>"), compare in constant
    time, refuse an old timestamp."""
    value = {k.lower(): v for k, v in headers.items()}["x-llmaas-signature"]
    parts = dict(p.split("=", 1) for p in value.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), f"bad signature {value}"
    assert abs(time.time() - int(parts["t"])) < 300


@pytest.fixture(scope="module")
def alert_gw(llmaas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alerts")
    p_gw, p_sim = free_ports(2)
    receiver = Receiver()
    sim = ManagedProcess("sim-alerts", [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{p_sim}", "--model", "sim-chat",
                                        "--ttft-ms", "5", "--itl-ms", "2", "--tokens", "8"], tmp, cli_env(tmp / "d"))
    wait_http_ok(f"http://127.0.0.1:{p_sim}/health", time.monotonic() + 30, [sim], "sim-alerts")
    cat = tmp / "catalog.yaml"
    cat.write_text("models:\n  - id: sim-chat\n    developer: EngineSim (simulated)\n    phase: production\n"
                   "    in_production: 2025-01-01\n    end_of_support: 2030-12-31\n    capabilities: [chat, completions]\n"
                   "    context_length: 8192\n")
    data = tmp / "data"
    config = tmp / "gw.yaml"
    config.write_text(f"""listen: 127.0.0.1:{p_gw}
data_dir: {data}
catalog: {cat}
security: {{ webhook_allow_http: true, webhook_allowed_networks: ["127.0.0.1/32"] }}
rollups: {{ interval_seconds: 1, lag_seconds: 0 }}
alerts:
  evaluation_interval_seconds: 1
  window_seconds: 4
  operator_webhook_url: "http://127.0.0.1:{receiver.port}/operator"
  operator_webhook_secret: "{OPERATOR_SECRET}"
  rules:
    - {{ name: slow-chat, kind: latency_p95, model: sim-chat, threshold: 500, resolve_threshold: 300, for_periods: 2 }}
backends:
  - {{ name: sim-a, kind: sim, url: "http://127.0.0.1:{p_sim}", models: {{ "sim-chat": "sim-chat" }} }}
""")
    gw = None
    try:
        gw, key, token = start_own_gateway(llmaas_bin, tmp, config, data, p_gw, [sim], "alerts gateway")
        admin = httpx.Client(base_url=f"http://127.0.0.1:{p_gw}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        yield {"url": f"http://127.0.0.1:{p_gw}", "sim": f"http://127.0.0.1:{p_sim}", "key": key, "admin": admin,
               "receiver": receiver, "db": data / "llmaas.sqlite", "gw": gw}
    finally:
        if gw:
            gw.stop()
        sim.stop()
        receiver.server.shutdown()


class Traffic:
    """Chat completions through the openai SDK, one after another, until stopped."""

    def __init__(self, url: str, key: str):
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
        self.done = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                # A different prompt each time: identical ones in a row trip the shield's repetition rule.
                self.client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": f"ping number {self.done}"}],
                                                    max_tokens=4)
                self.done += 1
            except Exception as e:  # noqa: BLE001 — reported by the test
                self.errors.append(repr(e))

    def wait_more(self, n: int, what: str):
        target = self.done + n
        wait_until(lambda: self.done >= target, message=f"{n} more requests ({what}); errors {self.errors[-3:]}")

    def close(self):
        self.stop.set()
        self.thread.join(timeout=60)
        self.client.close()


def audit_actions(db, prefix: str) -> list[tuple]:
    conn = connect_db(str(db))
    try:
        return conn.execute("SELECT action, target, tenant_id FROM audit_log WHERE action LIKE ? ORDER BY seq", (prefix + "%",)).fetchall()
    except DB_ERRORS:
        return []
    finally:
        conn.close()


def test_slow_model_fires_once_and_resolves_once_with_signed_webhooks(alert_gw):
    admin, receiver = alert_gw["admin"], alert_gw["receiver"]
    # A tenant with its own webhook, signing secret (shown once) and rule.
    tenant = admin.post("/tenants", json={"name": "acme", "settings": {"webhook_url": f"http://127.0.0.1:{receiver.port}/acme"}}).json()
    made = admin.post(f"/tenants/{tenant['id']}/keys", json={"name": "traffic"})
    assert made.status_code == 201, made.text
    secret = admin.post(f"/tenants/{tenant['id']}/webhook-secret").json()["secret"]
    rule = admin.post("/alerts/rules", json={"kind": "latency_p95", "tenant_id": tenant["id"], "model": "sim-chat",
                                             "threshold": 500, "for_periods": 2})
    assert rule.status_code == 201, rule.text
    rule = rule.json()

    traffic = Traffic(alert_gw["url"], made.json()["key"])
    try:
        traffic.wait_more(10, "fast traffic before the fault")
        assert receiver.received == [], receiver.received
        # The fault: the engine waits SLOW_MS before every first token.
        r = httpx.post(f"{alert_gw['sim']}/sim/fault", json={"mode": "slow", "delay_ms": SLOW_MS}, timeout=10)
        assert r.status_code == 200 and r.json()["mode"] == "slow", r.text

        fired_op = wait_until(lambda: receiver.events("/operator", "alert.fired"), message=lambda: f"operator alert.fired; got {receiver.received}")
        fired_t = wait_until(lambda: receiver.events("/acme", "alert.fired"), message=lambda: f"tenant alert.fired; got {receiver.received}")
        for hook, secret_used, rule_id, tenant_id in [(fired_op[0], OPERATOR_SECRET, "cfg-slow-chat", None),
                                                      (fired_t[0], secret, rule["id"], tenant["id"])]:
            verify(hook["headers"], hook["raw"], secret_used)
            incident = hook["json"]["incident"]
            assert incident["rule_id"] == rule_id and incident["tenant_id"] == tenant_id
            assert incident["kind"] == "latency_p95" and incident["model"] == "sim-chat" and incident["state"] == "active"
            assert incident["value"] > 500 and incident["threshold"] == 500
            assert "p95 latency of model sim-chat" in incident["message"]
        # A forged signature does not verify.
        with pytest.raises(AssertionError):
            verify(fired_t[0]["headers"], fired_t[0]["raw"], OPERATOR_SECRET)

        # Active on the admin API (tenant view) and on the public status page (global rule only).
        active = admin.get("/alerts/incidents", params={"state": "active"}).json()["data"]
        assert {i["rule_id"] for i in active} == {"cfg-slow-chat", rule["id"]}
        status = httpx.get(f"{alert_gw['url']}/status.json", timeout=10)
        assert status.headers["cache-control"].startswith("public, max-age=")
        incidents = status.json()["incidents"]
        assert [i["kind"] for i in incidents] == ["latency_p95"] and incidents[0]["model"] == "sim-chat"
        assert tenant["id"] not in status.text and "acme" not in status.text

        # Still slow for a while: no second notification.
        traffic.wait_more(4, "slow traffic after the alert fired")
        assert len(receiver.events("/operator", "alert.fired")) == 1 and len(receiver.events("/acme", "alert.fired")) == 1

        # The fault removed: each resolves once.
        assert httpx.post(f"{alert_gw['sim']}/sim/fault", json={"mode": "none"}, timeout=10).status_code == 200
        resolved_op = wait_until(lambda: receiver.events("/operator", "alert.resolved"), message=lambda: f"operator alert.resolved; got {receiver.received}")
        resolved_t = wait_until(lambda: receiver.events("/acme", "alert.resolved"), message=lambda: f"tenant alert.resolved; got {receiver.received}")
        verify(resolved_op[0]["headers"], resolved_op[0]["raw"], OPERATOR_SECRET)
        verify(resolved_t[0]["headers"], resolved_t[0]["raw"], secret)
        assert resolved_op[0]["json"]["incident"]["id"] == fired_op[0]["json"]["incident"]["id"]
        assert resolved_op[0]["json"]["incident"]["state"] == "resolved"
        assert resolved_op[0]["json"]["incident"]["peak"] >= fired_op[0]["json"]["incident"]["value"]

        # Fast traffic goes on: nothing fires again, nothing resolves twice.
        traffic.wait_more(60, "fast traffic after the resolution")
    finally:
        traffic.close()
    for path in ["/operator", "/acme"]:
        assert len(receiver.events(path, "alert.fired")) == 1 and len(receiver.events(path, "alert.resolved")) == 1, receiver.received
    history = admin.get("/alerts/incidents").json()["data"]
    assert len(history) == 2 and all(i["state"] == "resolved" for i in history)
    assert httpx.get(f"{alert_gw['url']}/status.json", timeout=10).json()["incidents"] == []
    # Audited: fired and resolved once per incident, and each delivery.
    def incident_audit():
        return [a for a in audit_actions(alert_gw["db"], "alert.") if a[0] in ("alert.fired", "alert.resolved")]

    wait_until(lambda: len(incident_audit()) == 4, message=lambda: f"4 alert audit entries: {incident_audit()}")
    assert sorted(a for a, _, _ in incident_audit()) == ["alert.fired", "alert.fired", "alert.resolved", "alert.resolved"]
    assert {t for _, _, t in incident_audit()} == {None, tenant["id"]}
    wait_until(lambda: len(audit_actions(alert_gw["db"], "webhook.alert.")) == 4,
               message=lambda: f"4 webhook audit entries: {audit_actions(alert_gw['db'], 'webhook.alert.')}")
    assert all(o == "delivered" for o in [row[0] for row in _outcomes(alert_gw["db"])])


def _outcomes(db) -> list[tuple]:
    conn = connect_db(str(db))
    try:
        return conn.execute("SELECT outcome FROM audit_log WHERE action LIKE 'webhook.alert.%'").fetchall()
    finally:
        conn.close()


def test_rollups_and_status_page_match_the_ledger(alert_gw):
    client = openai.OpenAI(base_url=f"{alert_gw['url']}/v1", api_key=alert_gw["key"], max_retries=0, timeout=60)
    for i in range(5):  # streamed: the ledger records their time to first token
        stream = client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": f"count {i}"}], max_tokens=4, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    client.close()

    seen = {}

    def ledger_and_rollups():
        conn = connect_db(str(alert_gw["db"]))
        try:
            ledger = conn.execute("SELECT COUNT(*), SUM(completion_tokens), SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) FROM requests WHERE model = 'sim-chat'").fetchone()
            minutes = conn.execute("SELECT SUM(requests), SUM(output_tokens), SUM(errors_5xx) FROM rollups "
                                   "WHERE resolution = 60000 AND model = 'sim-chat'").fetchone()
            hours = conn.execute("SELECT SUM(requests) FROM rollups WHERE resolution = 3600000 AND model = 'sim-chat'").fetchone()
            backlog = conn.execute("SELECT COUNT(*) FROM rollup_dirty").fetchone()[0]
        except DB_ERRORS:
            return None
        finally:
            conn.close()
        # Settled once every minute with ledger rows has been rolled up (lag 0, a pass per second).
        seen["last"] = (tuple(ledger), tuple(minutes), tuple(hours), backlog)
        return (ledger, minutes, hours) if backlog == 0 and ledger[0] == minutes[0] == hours[0] else None

    # Only completed minutes are rolled up: the last request's minute ends up to 60 s after it was
    # sent, then the next pass (every second) rolls it up, so the bound is a minute more than usual.
    ledger, minutes, _ = wait_until(ledger_and_rollups, timeout=WAIT_S + 60, message=lambda: f"rollups equal to the ledger (last seen: ledger, minutes, hours, backlog = {seen.get('last')})")
    assert tuple(ledger) == tuple(minutes)

    page = httpx.get(f"{alert_gw['url']}/status", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"].startswith("public")
    assert "<td>sim-chat</td>" in page.text and "<script" not in page.text
    model = next(m for m in httpx.get(f"{alert_gw['url']}/status.json", timeout=10).json()["models"] if m["id"] == "sim-chat")
    assert model["windows"]["24h"]["availability"] == 1.0
    assert model["windows"]["24h"]["tokens_per_second"] > 0 and model["windows"]["24h"]["ttft_p95_ms"] is not None
