"""Failover under load: machines SIGKILLed while requests run cost the clients nothing.

The defect this guards against: with 3 of 12 simulated machines SIGKILLed under load, a request
got `502 … could not be reached (connection refused)` because its 3 attempts were all spent on
dead machines. A refused connection sent nothing, so it must not use up an attempt.

A bounded version of bench/failover/drill.py (which runs 400 requests x 24 concurrent, N times):
12 EngineSim machines (SIMULATED engines, one `llmaas sim` process each), a gateway of its own with
them as `kind: sim` backends, a tenant on tier `monthly`, 150 non-streaming chat completions from
12 threads with the official SDK (`max_retries=0`), and 3 machines SIGKILLed once a quarter of the
requests have completed. No assertion is about timing: every wait only bounds a broken gateway.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import random
import signal
import threading
import time

import httpx
import openai
import pytest

from conftest import REPO, ManagedProcess, cli_env, free_ports, run_cli, start_own_gateway, wait_http_ok

MACHINES = 12
KILL = 3
REQUESTS = 150
CONCURRENCY = 12
MODEL = "sim-chat"
SEED = int(os.environ.get("LLMAAS_FAILOVER_SEED", "7"))


@pytest.fixture(scope="module")
def fleet12(llmaas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("failover")
    data = tmp / "data"
    env = cli_env(data)
    ports = free_ports(MACHINES + 1)
    gw_port, sim_ports = ports[0], ports[1:]
    names = [f"m{i + 1:02d}" for i in range(MACHINES)]
    sims: dict[str, ManagedProcess] = {}
    gw = None
    try:
        for i, (name, port) in enumerate(zip(names, sim_ports)):
            # ~100 ms per request: requests are in flight on every machine when the kill comes.
            sims[name] = ManagedProcess(name, [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{port}", "--model", MODEL,
                                               "--ttft-ms", "20", "--itl-ms", "5", "--tokens", "16", "--seed", str(i + 1)],
                                        tmp, env)
        deadline = time.monotonic() + 60
        for name, port in zip(names, sim_ports):
            wait_http_ok(f"http://127.0.0.1:{port}/health", deadline, [sims[name]], f"{name} /health")
        catalog = tmp / "catalog.yaml"
        catalog.write_text(
            "models:\n"
            f"  - id: {MODEL}\n    developer: LLMaaS EngineSim\n    phase: experimental\n"
            "    in_production: 2025-01-01\n    end_of_support: 2030-12-31\n"
            "    capabilities: [chat, completions]\n    context_length: 8192\n"
        )
        config = tmp / "gw.yaml"
        backends = "\n".join(
            f'  - {{ name: {n}, kind: sim, url: "http://127.0.0.1:{p}", models: {{ "{MODEL}": "{MODEL}" }}, probe_interval_ms: 300 }}'
            for n, p in zip(names, sim_ports)
        )
        config.write_text(f'listen: "127.0.0.1:{gw_port}"\ndata_dir: {json.dumps(str(data))}\n'
                          f"catalog: {json.dumps(str(catalog))}\nbackends:\n{backends}\n")
        gw, _, token = start_own_gateway(llmaas_bin, tmp, config, data, gw_port, list(sims.values()), "failover gateway")
        made = run_cli(llmaas_bin, ["tenant", "create", "drill", "--tier", "monthly", "--config", str(config), "--json"], data)
        assert made.returncode == 0, made.stdout + made.stderr
        made = run_cli(llmaas_bin, ["key", "create", "--tenant", "drill", "--config", str(config), "--json"], data)
        assert made.returncode == 0, made.stdout + made.stderr
        yield {"url": f"http://127.0.0.1:{gw_port}", "key": json.loads(made.stdout)["key"], "token": token,
               "sims": sims, "gateway": gw, "tmp": tmp}
    finally:
        if gw:
            gw.stop()
        for s in sims.values():
            s.stop()


def backends_report(f) -> dict[str, dict]:
    r = httpx.get(f["url"] + "/admin/v1/backends", headers={"Authorization": f"Bearer {f['token']}"}, timeout=10)
    assert r.status_code == 200, r.text
    return {b["name"]: b for b in r.json()["data"]}


def test_sigkilled_machines_under_load_cost_no_request(fleet12):
    f = fleet12
    victims = sorted(random.Random(SEED).sample(sorted(f["sims"]), KILL))
    client = openai.OpenAI(base_url=f["url"] + "/v1", api_key=f["key"], max_retries=0, timeout=60)
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "killed": False}
    served: collections.Counter = collections.Counter()
    served_after_kill: collections.Counter = collections.Counter()
    errors: list[str] = []

    def kill():
        for v in victims:
            p = f["sims"][v].proc
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def worker(w: int):
        while True:
            with lock:
                i = state["next"]
                if i >= REQUESTS:
                    return
                state["next"] += 1
                after = state["killed"]
            msgs = [{"role": "user", "content": f"failover test, worker {w}, request {i}: describe item {i * 7919 % 1000}"}]
            try:
                r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=16)
                machine = ((r.model_extra or {}).get("backend") or {}).get("machine_name")
                error = None if r.choices else f"no choices: {r}"
            except openai.APIStatusError as e:
                machine, error = None, f"{e.status_code}: {e.body}"
            except openai.APIError as e:
                machine, error = None, f"{type(e).__name__}: {e} ({e.__cause__!r})"
            must_kill = False
            with lock:
                state["done"] += 1
                if error:
                    errors.append(f"request {i}: {error}")
                else:
                    served[machine] += 1
                    if after:
                        served_after_kill[machine] += 1
                if not state["killed"] and state["done"] >= REQUESTS // 4:
                    state["killed"] = must_kill = True
            if must_kill:
                kill()

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        futures = [pool.submit(worker, w) for w in range(CONCURRENCY)]
        done, pending = concurrent.futures.wait(futures, timeout=240)
        assert not pending, "the load did not end within 240 s"
        for fut in done:
            fut.result()
    client.close()

    assert state["killed"]
    assert not errors, f"{len(errors)} of {REQUESTS} requests failed with {victims} SIGKILLed:\n" + "\n".join(errors[:20])
    assert sum(served.values()) == REQUESTS
    assert not any(served_after_kill[v] for v in victims), (victims, served_after_kill)
    assert sum(served_after_kill.values()) > 0

    # The gateway's view: the dead machines are not healthy (breaker open/half-open, failed probes),
    # the others are. Probes run every 300 ms; the bound only stops a broken gateway.
    deadline = time.monotonic() + 30
    while True:
        report = backends_report(f)
        dead_ok = all(report[v]["state"] in ("open", "half_open")
                      or (report[v]["state"] != "healthy" and report[v]["last_probe_ok"] is False) for v in victims)
        alive_ok = all(b["state"] == "healthy" for n, b in report.items() if n not in victims)
        if dead_ok and alive_ok:
            break
        assert time.monotonic() < deadline, "backends report after 30 s:\n" + json.dumps(
            {n: {k: b[k] for k in ("state", "last_probe_ok", "requests", "failures")} for n, b in report.items()}, indent=1)
        time.sleep(0.3)
    for v in victims:
        assert report[v]["failures"] > 0 or report[v]["last_probe_ok"] is False, report[v]
