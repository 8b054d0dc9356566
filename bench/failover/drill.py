#!/usr/bin/env python3
"""Failover drill: SIGKILL some simulated machines under load and count what clients see.

Each run starts, on free 127.0.0.1 ports in a fresh temp dir:

* MACHINES (12) EngineSim processes (`llmaas sim`), one per port, all serving the catalog
  model `drill-chat` with a realistic per-request latency (ttft + itl x tokens), so that requests
  are in flight on every machine when the kill happens;
* one gateway (`llmaas serve`) with those machines as `kind: sim` backends, a fresh data dir
  (SQLite) and the default routing settings;
* a tenant on tier `monthly` (3000 requests/min, 128 concurrent: the quotas stay out of the way),
  a key for it and an operator admin token.

Then it sends REQUESTS non-streaming chat completions from CONCURRENCY threads with the official
`openai` SDK (`max_retries=0`: the SDK hides no gateway error), and once KILL_AFTER (25 %) of
them have completed it SIGKILLs KILL machines chosen with a seeded RNG. Afterwards it reads
`GET /admin/v1/backends`, prints one row per run and exits 1 if any client saw an error.

Everything is stopped when the drill ends, on an exception, Ctrl-C or SIGTERM. Every wait is
bounded. See bench/failover/README.md.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx
import openai

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from conftest import wait_http_ok  # noqa: E402  (one wait for the tests and the drill)
MODEL = "drill-chat"
KEY_RE = re.compile(r"API key \(tenant default, shown once\):\s*(sk-llm-\S+)")


# --------------------------------------------------------------------------------------
# processes


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the drill itself dies (Linux; best effort)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Proc:
    """A child in its own process group, output to log files; stopped with TERM, then KILL."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.log = log_dir / f"{name}.log"
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            argv, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=str(REPO), start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """The drill's fault: SIGKILL, no chance to close anything."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self, grace: float = 5.0) -> None:
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._out.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def describe(self) -> str:  # what conftest's wait prints of a process
        return f"{self.name} (exit {self.proc.poll()}):\n{self.tail()}"

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def stop_all(procs: list[Proc], grace: float = 5.0) -> None:
    """TERM to all, one shared grace period, then KILL; a second Ctrl-C/TERM cannot cut it short."""
    main = threading.current_thread() is threading.main_thread()
    saved = {}
    if main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        for p in procs:
            if p.alive():
                p._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(p.alive() for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in procs:
            p.stop(grace=0)  # KILLs the group, reaps, closes the log
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def free_ports(n: int) -> list[int]:
    """n distinct ports that were free a moment ago (sockets held open together, then closed)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_ok(url: str, procs: list[Proc], what: str, timeout: float) -> None:
    """The end-to-end tests' wait (tests/e2e/conftest.py), with a timeout instead of a deadline."""
    wait_http_ok(url, time.monotonic() + timeout, procs, what)


# --------------------------------------------------------------------------------------
# one run


@dataclass
class Outcome:
    ok: bool
    latency_s: float
    backend: Optional[str] = None
    error: Optional[str] = None  # "502 upstream_unreachable" etc.
    message: Optional[str] = None
    after_kill: bool = False


@dataclass
class RunResult:
    run: int
    victims: list[str]
    outcomes: list[Outcome]
    backends: list[dict]  # GET /admin/v1/backends "data"
    wall_s: float
    kill_at: Optional[int] = None  # completed requests when the kill happened
    log_dir: Optional[Path] = None
    errors: collections.Counter = field(default_factory=collections.Counter)


def catalog_yaml() -> str:
    e = {
        "id": MODEL, "developer": "LLMaaS EngineSim", "phase": "experimental",
        "in_production": "2025-01-01", "end_of_support": "2030-12-31",
        "capabilities": ["chat", "completions"], "context_length": 8192,
    }
    lines = ["models:"]
    for i, (k, v) in enumerate(e.items()):
        lines.append(f"  {'- ' if i == 0 else '  '}{k}: {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def config_yaml(port: int, data: Path, catalog: Path, sims: dict[str, int], probe_interval_ms: Optional[int]) -> str:
    q = json.dumps
    out = [f"listen: {q(f'127.0.0.1:{port}')}", f"data_dir: {q(str(data))}", f"catalog: {q(str(catalog))}", "backends:"]
    for name, p in sims.items():
        extra = f", probe_interval_ms: {probe_interval_ms}" if probe_interval_ms else ""
        out.append(f"  - {{ name: {q(name)}, kind: sim, url: {q(f'http://127.0.0.1:{p}')}, "
                   f"models: {{ {q(MODEL)}: {q(MODEL)} }}{extra} }}")
    return "\n".join(out) + "\n"


def cli(binary: str, args: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run([binary, *args], env=env, cwd=str(REPO), capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"`llmaas {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout)


def classify(e: Exception) -> tuple[str, str]:
    """(group, message) of a client-side error."""
    if isinstance(e, openai.APIStatusError):
        code = ""
        body = e.body if isinstance(e.body, dict) else {}
        err = body.get("error", body) if isinstance(body, dict) else {}
        if isinstance(err, dict):
            code = err.get("code") or err.get("type") or ""
            msg = err.get("message") or str(e)
        else:
            msg = str(e)
        return f"{e.status_code} {code}".strip(), str(msg)
    if isinstance(e, openai.APITimeoutError):
        return "timeout", str(e)
    if isinstance(e, openai.APIConnectionError):
        return "connection", f"{e}: {e.__cause__!r}"
    return type(e).__name__, str(e)


def normalize(msg: str) -> str:
    """Groups messages that differ only in ports or machine numbers."""
    msg = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", msg)
    return re.sub(r"\bm\d{2}\b", "mNN", msg)


def run_once(run: int, a: argparse.Namespace, stop: threading.Event) -> RunResult:
    tmp = Path(tempfile.mkdtemp(prefix=f"llmaas-failover-{run}-"))
    logs = tmp / "logs"
    logs.mkdir()
    data = tmp / "data"
    env = dict(os.environ)
    env["LLMAAS_DATA_DIR"] = str(data)
    env.pop("LLMAAS_LISTEN", None)
    procs: list[Proc] = []
    keep = a.keep_tmp
    try:
        ports = free_ports(a.machines + 1)
        gw_port, sim_ports = ports[0], ports[1:]
        names = [f"m{i + 1:02d}" for i in range(a.machines)]
        sims: dict[str, Proc] = {}
        for i, (name, p) in enumerate(zip(names, sim_ports)):
            sims[name] = Proc(name, [a.binary, "sim", "--listen", f"127.0.0.1:{p}", "--model", MODEL,
                                     "--ttft-ms", str(a.ttft_ms), "--itl-ms", str(a.itl_ms),
                                     "--tokens", str(a.tokens), "--seed", str(i + 1)], logs, env)
            procs.append(sims[name])
        for name, p in zip(names, sim_ports):
            wait_ok(f"http://127.0.0.1:{p}/health", [sims[name]], f"{name} /health", 30)

        catalog = tmp / "catalog.yaml"
        catalog.write_text(catalog_yaml())
        config = tmp / "gateway.yaml"
        config.write_text(config_yaml(gw_port, data, catalog, dict(zip(names, sim_ports)), a.probe_interval_ms))
        gw = Proc("gateway", [a.binary, "serve", "--config", str(config)], logs, env)
        procs.append(gw)
        url = f"http://127.0.0.1:{gw_port}"
        wait_ok(f"{url}/ready", [gw], "gateway /ready", 90)
        # The first start prints the default tenant's key: wait for it so that start-up is over
        # before the CLI touches the database.
        deadline = time.monotonic() + 30
        while not KEY_RE.search(gw.log.read_text(errors="replace")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway printed no first-start key\n{gw.tail()}")
            time.sleep(0.1)
        cli(a.binary, ["tenant", "create", "drill", "--tier", "monthly", "--config", str(config), "--json"], env)
        key = cli(a.binary, ["key", "create", "--tenant", "drill", "--config", str(config), "--json"], env)["key"]
        token = cli(a.binary, ["admin", "token", "create", "--config", str(config), "--json"], env)["token"]

        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=a.request_timeout,
                               http_client=httpx.Client(limits=httpx.Limits(max_connections=a.concurrency * 2,
                                                                            max_keepalive_connections=a.concurrency * 2),
                                                        timeout=a.request_timeout))
        # One request before the load: a set-up problem is not a drill result.
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "warm-up"}],
                                           max_tokens=a.tokens)
        if not r.choices:
            raise RuntimeError(f"warm-up request got no choices: {r}")

        rng = random.Random(a.seed * 1000 + run)
        victims = sorted(rng.sample(names, a.kill))
        kill_after = max(1, int(a.requests * a.kill_after))
        lock = threading.Lock()
        state = {"next": 0, "done": 0, "killed": False, "kill_at": None}
        outcomes: list[Outcome] = []

        def kill() -> None:
            for v in victims:
                sims[v].kill9()
            print(f"  run {run}: SIGKILLed {', '.join(victims)} after {state['kill_at']} completed requests",
                  file=sys.stderr, flush=True)

        def worker(w: int) -> None:
            while not stop.is_set():
                with lock:
                    i = state["next"]
                    if i >= a.requests:
                        return
                    state["next"] += 1
                    after = state["killed"]
                msgs = [{"role": "user", "content": f"Failover drill run {run}, request {i} from worker {w}: "
                                                    f"summarise item {rng_words[i % len(rng_words)]} #{i}."}]
                t0 = time.monotonic()
                try:
                    resp = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=a.tokens)
                    backend = ((resp.model_extra or {}).get("backend") or {}).get("machine_name")
                    o = Outcome(True, time.monotonic() - t0, backend=backend, after_kill=after)
                except Exception as e:  # every client-visible failure is a result
                    group, msg = classify(e)
                    o = Outcome(False, time.monotonic() - t0, error=group, message=msg, after_kill=after)
                do_kill = False
                with lock:
                    outcomes.append(o)
                    state["done"] += 1
                    if not state["killed"] and state["done"] >= kill_after:
                        state["killed"] = True
                        state["kill_at"] = state["done"]
                        do_kill = True
                if do_kill:
                    kill()  # in this worker: the others keep sending meanwhile

        rng_words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
        t_start = time.monotonic()
        bound = 120 + a.requests * a.request_timeout / max(1, a.concurrency)
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.concurrency) as pool:
            try:
                futures = [pool.submit(worker, w) for w in range(a.concurrency)]
                done, pending = concurrent.futures.wait(futures, timeout=bound)
                if pending:
                    raise RuntimeError(f"the load did not finish within {bound:.0f} s")
                for f in done:
                    f.result()
            except BaseException:
                stop.set()  # before the pool's exit joins the workers: they take no new request
                raise
        wall = time.monotonic() - t_start
        if not state["killed"]:
            raise RuntimeError("the kill never happened")

        # The gateway's view, some probe intervals after the kill.
        report = httpx.get(f"{url}/admin/v1/backends", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        report.raise_for_status()
        client.close()
        res = RunResult(run=run, victims=victims, outcomes=outcomes, backends=report.json().get("data", []),
                        wall_s=wall, kill_at=state["kill_at"], log_dir=logs)
        for o in outcomes:
            if not o.ok:
                res.errors[(o.error, normalize(o.message or ""))] += 1
        if res.errors:
            keep = True  # the logs explain the errors
        return res
    except BaseException:
        keep = True
        for p in procs:
            if p.name == "gateway":
                print(f"--- gateway log tail ({p.log}):\n{p.tail()}", file=sys.stderr)
        raise
    finally:
        stop_all(procs)
        if keep:
            print(f"  run {run}: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------
# report


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[k]


def print_report(results: list[RunResult], a: argparse.Namespace) -> None:
    print()
    print(f"failover drill: {a.machines} sim machines (ttft {a.ttft_ms} ms, itl {a.itl_ms} ms, {a.tokens} tokens), "
          f"{a.requests} non-streaming requests x {a.concurrency} concurrent, SIGKILL {a.kill} after "
          f"{int(a.kill_after * 100)} %, seed {a.seed}, binary {a.binary}")
    print()
    head = "| run | requests | ok | client errors | p50 ms | p99 ms | killed | served by killed (after kill) | survivors served min/max | killed state (gateway attempts/failures) |"
    print(head)
    print("|" + "|".join("---" for _ in head.strip("|").split("|")) + "|")
    for r in results:
        ok = [o for o in r.outcomes if o.ok]
        lat = [o.latency_s * 1000 for o in ok]
        errs = sum(r.errors.values())
        by_group = collections.Counter()
        for (g, _), n in r.errors.items():
            by_group[g] += n
        err_s = "0" if not errs else f"{errs} (" + ", ".join(f"{g}: {n}" for g, n in by_group.most_common()) + ")"
        served = collections.Counter(o.backend for o in ok)
        killed_served = sum(served[v] for v in r.victims)
        killed_after = sum(1 for o in ok if o.backend in r.victims and o.after_kill)
        survivors = [served[b["name"]] for b in r.backends if b["name"] not in r.victims]
        rows = {b["name"]: b for b in r.backends}
        kstate = ", ".join(f"{v} {rows.get(v, {}).get('state', '?')} ({rows.get(v, {}).get('requests', '?')}/"
                           f"{rows.get(v, {}).get('failures', '?')})" for v in r.victims)
        print(f"| {r.run} | {len(r.outcomes)} | {len(ok)} | {err_s} | {pct(lat, 50):.0f} | {pct(lat, 99):.0f} | "
              f"{' '.join(r.victims)} | {killed_served} ({killed_after}) | "
              f"{min(survivors) if survivors else '-'}/{max(survivors) if survivors else '-'} | {kstate} |")
    total = sum(len(r.outcomes) for r in results)
    total_err = sum(sum(r.errors.values()) for r in results)
    allok = [o.latency_s * 1000 for r in results for o in r.outcomes if o.ok]
    print(f"| all | {total} | {total - total_err} | {total_err} | {pct(allok, 50):.0f} | {pct(allok, 99):.0f} | | | | |")

    print()
    print("per-backend (all runs): served = 200 answers the client saw from it; attempts/failures = the gateway's counters")
    for r in results:
        served = collections.Counter(o.backend for o in r.outcomes if o.ok)
        cells = []
        for b in r.backends:
            mark = "†" if b["name"] in r.victims else ""
            cells.append(f"{b['name']}{mark} {served[b['name']]}/{b.get('requests')}/{b.get('failures')} {b.get('state')}")
        print(f"  run {r.run}: " + "; ".join(cells))
    print("  († = SIGKILLed)")

    errors = collections.Counter()
    for r in results:
        errors.update(r.errors)
    if errors:
        print()
        print("client errors (status code: message, grouped):")
        for (g, m), n in errors.most_common():
            print(f"  {n:4d} x {g}: {m[:300]}")
        print()
        print("logs of runs with errors:", ", ".join(str(r.log_dir) for r in results if r.errors))


# --------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("LLMAAS_BIN", str(REPO / ".build" / "debug" / "llmaas")),
                    help="llmaas binary (env LLMAAS_BIN)")
    ap.add_argument("--runs", type=int, default=1, help="repeat the whole drill, fresh processes each time")
    ap.add_argument("--requests", type=int, default=400, help="non-streaming chat completions per run")
    ap.add_argument("--concurrency", type=int, default=24, help="client threads")
    ap.add_argument("--kill", type=int, default=3, help="machines SIGKILLed per run")
    ap.add_argument("--machines", type=int, default=12, help="simulated machines (one llmaas sim process each)")
    ap.add_argument("--kill-after", type=float, default=0.25, help="fraction of completed requests before the kill")
    ap.add_argument("--seed", type=int, default=1, help="seed of the victims' choice (run r uses seed*1000+r)")
    ap.add_argument("--ttft-ms", type=int, default=40, help="sims' time to first token")
    ap.add_argument("--itl-ms", type=int, default=6, help="sims' inter-token latency")
    ap.add_argument("--tokens", type=int, default=24, help="tokens per answer (also max_tokens)")
    ap.add_argument("--probe-interval-ms", type=int, default=None, help="backends' probe_interval_ms (default: the gateway's)")
    ap.add_argument("--request-timeout", type=float, default=60.0, help="client timeout per request, s")
    ap.add_argument("--keep-tmp", action="store_true", help="keep temp dirs (always kept for runs with errors)")
    a = ap.parse_args()
    if not (os.path.isfile(a.binary) and os.access(a.binary, os.X_OK)):
        ap.error(f"llmaas binary not found or not executable: {a.binary}")
    if not (0 < a.kill < a.machines) or a.runs < 1 or a.requests < 4 or a.concurrency < 1 or not (0 < a.kill_after < 1):
        ap.error("need 0 < --kill < --machines, --runs >= 1, --requests >= 4, --concurrency >= 1, 0 < --kill-after < 1")
    a.binary = os.path.abspath(a.binary)

    stop = threading.Event()

    def on_term(signum, frame):
        stop.set()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    results: list[RunResult] = []
    try:
        for run in range(1, a.runs + 1):
            print(f"run {run}/{a.runs} …", file=sys.stderr, flush=True)
            res = run_once(run, a, stop)
            results.append(res)
            n_err = sum(res.errors.values())
            print(f"  run {run}: {len(res.outcomes) - n_err}/{len(res.outcomes)} ok, {n_err} client errors, "
                  f"{res.wall_s:.1f} s", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        stop.set()
        print("interrupted: processes stopped", file=sys.stderr)
        if results:
            print_report(results, a)
        return 130
    finally:
        stop.set()
    print_report(results, a)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
