"""Session fixtures for the end-to-end tests.

One pytest session starts, once:

* two EngineSim processes (`llmaas sim`), each on its own free loopback port:
  - ``sim-1`` "normal" (ttft 5 ms, itl 10 ms) serving ``sim-chat`` and ``sim-reason``;
  - ``sim-2`` "slow" (ttft 5 ms, itl 50 ms, long answers) serving ``sim-chat``; the gateway
    exposes it as catalog model ``sim-slow``. It is used by the hang-up test so that its
    ``/sim/stats`` counters move only because of that test;
* the gateway (`llmaas serve`) with a test catalog and config that also make it start and
  supervise the real llama.cpp engine (``managed``) serving SmolLM2-135M.

Tests talk to the gateway with the official ``openai`` SDK (fixture ``client``) or raw
``httpx`` (fixture ``http``). The fixture ``gw`` carries every URL, port, key and path.

Nothing is skipped: a missing binary, model file or venv fails the session loudly.

Database driver: SQLite in each gateway's data dir by default. With
``LLMAAS_E2E_DATABASE_URL=postgres://user:pw@host:port/db`` (scripts/test.sh sets it for the
suite's second run) every gateway and CLI call gets a fresh PostgreSQL database of its own on
that server instead (``LLMAAS_DATABASE_URL`` in ``cli_env``), dropped at the end of the
session. Tests read or change the database with ``connect_db`` (either driver, ``?``
placeholders), never with sqlite3 directly.
"""

from __future__ import annotations

import dataclasses
import decimal
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import httpx
import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL_FILE = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
ENGINE_PYTHON = REPO / ".venv" / "bin" / "python"

READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
# The bound of every wait for something the gateway does in the background (batched ledger and
# audit writes, webhooks, reloads, ...). Generous on purpose: CI is a loaded 2-core machine.
WAIT_S = 60.0
LOG_TAIL_LINES = 60

KEY_RE = re.compile(r"API key \(tenant default, shown once\):\s*(sk-llm-\S+)")

# --------------------------------------------------------------------------------------
# the database: SQLite (default) or PostgreSQL (LLMAAS_E2E_DATABASE_URL)

E2E_DATABASE_URL = os.environ.get("LLMAAS_E2E_DATABASE_URL", "").strip() or None
ON_POSTGRES = E2E_DATABASE_URL is not None
if ON_POSTGRES:
    import psycopg  # installed by scripts/setup-postgres.sh

    DB_ERRORS: tuple = (sqlite3.OperationalError, psycopg.Error)
else:
    DB_ERRORS = (sqlite3.OperationalError,)

_created_databases: set[str] = set()


def _pg_url(database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(E2E_DATABASE_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def _data_dir_of(target: Path | str) -> Path:
    """A gateway's data dir, from the dir itself or from the path of its llmaas.sqlite."""
    p = Path(target)
    return p.parent if p.name == "llmaas.sqlite" or p.suffix == ".sqlite" else p


def pg_database_url(data_dir: Path | str) -> str:
    """The PostgreSQL database of one data dir (created on first use): one fresh database per
    gateway, as one SQLite file per data dir."""
    name = "e2e_" + hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:20]
    if name not in _created_databases:
        with psycopg.connect(E2E_DATABASE_URL, autocommit=True) as admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                admin.execute(f'CREATE DATABASE "{name}"')
        _created_databases.add(name)
    return _pg_url(name)


class DbRow(tuple):
    """A row readable by index and by column name (like sqlite3.Row)."""

    def __new__(cls, names, values):
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self):
        return list(self._names)


class PgConnection:
    """The slice of sqlite3.Connection the tests use, on PostgreSQL (autocommit; `?` placeholders)."""

    def __init__(self, url: str):
        self._conn = psycopg.connect(url, autocommit=True)
        self.row_factory = None

    def execute(self, sql: str, args: tuple | list = ()):
        cur = self._conn.cursor()
        named = self.row_factory is not None

        def factory(cursor):
            names = [d.name for d in cursor.description or []]

            def make(values):
                # SUM() of integers is NUMERIC on PostgreSQL: give ints back, as SQLite does.
                values = tuple(int(v) if isinstance(v, decimal.Decimal) and v == v.to_integral_value() else v for v in values)
                return DbRow(names, values) if named else values
            return make
        cur.row_factory = factory
        if args:
            cur.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(args))
        else:
            cur.execute(sql)
        return cur

    def commit(self):
        pass

    def close(self):
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect_db(target: Path | str, *, read_only: bool = False, timeout: float = 5.0):
    """A connection to the database of a gateway (its data dir, or its llmaas.sqlite path)."""
    data_dir = _data_dir_of(target)
    if ON_POSTGRES:
        return PgConnection(pg_database_url(data_dir))
    path = data_dir / "llmaas.sqlite"
    if read_only:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    return sqlite3.connect(str(path), timeout=timeout)


def database_exists(target: Path | str) -> bool:
    """Whether the gateway's database holds a migrated schema."""
    try:
        with connect_db(target) as db:
            return db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] > 0
    except DB_ERRORS:
        return False


def database_contents(target: Path | str) -> bytes:
    """Everything the database stores, as bytes (a test searches it for clear text): the SQLite
    file with its WAL, or every row of every table of the PostgreSQL database."""
    data_dir = _data_dir_of(target)
    if not ON_POSTGRES:
        out = b""
        for suffix in ("", "-wal", "-shm"):
            p = data_dir / ("llmaas.sqlite" + suffix)
            if p.exists():
                out += p.read_bytes()
        return out
    out = []
    with psycopg.connect(pg_database_url(data_dir), autocommit=True) as db:
        tables = [r[0] for r in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()").fetchall()]
        for t in tables:
            for (text,) in db.execute(f'SELECT row_to_json(t)::text FROM "{t}" t').fetchall():
                out.append(text)
    return "\n".join(out).encode()


def drop_e2e_databases() -> None:
    if not ON_POSTGRES or not _created_databases:
        return
    with psycopg.connect(E2E_DATABASE_URL, autocommit=True) as admin:
        for name in sorted(_created_databases):
            try:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error:
                pass
    _created_databases.clear()


def pytest_sessionfinish(session, exitstatus):
    drop_e2e_databases()


# --------------------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (nothing listens on it afterwards)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def wait_until(predicate, timeout: float = WAIT_S, interval: float = 0.1, message: Any = "the condition"):
    """Calls predicate() until it returns something truthy, and returns that value; fails the test
    after `timeout` seconds. Tests never sleep a fixed time and then assert: they wait for the
    condition with this generous bound. `message` (a string, or a callable returning one, called
    only on failure) says what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def find_binary() -> Path:
    path = Path(os.environ.get("LLMAAS_BIN", REPO / ".build" / "debug" / "llmaas"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"llmaas binary not found or not executable at {path}. Build it first "
            "(swift build) or point LLMAAS_BIN at it.",
            pytrace=False,
        )
    return path


def yaml_quote(value: Any) -> str:
    """JSON is valid YAML: use it for every scalar/collection we write."""
    return json.dumps(value)


class ManagedProcess:
    """A child process whose stdout/stderr go to files; stopped with TERM, then KILL."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(REPO),
            start_new_session=True,  # its own process group: we can stop its children too
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        return (
            f"--- {self.name}: {' '.join(self.argv)} (exit code {self.proc.poll()})\n"
            f"--- {self.name} stdout (tail):\n{tail(self.stdout_path)}\n"
            f"--- {self.name} stderr (tail):\n{tail(self.stderr_path)}\n"
        )

    def stop(self) -> None:
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=STOP_GRACE_S)
        # The group may still hold a managed engine the gateway failed to stop.
        self._signal(signal.SIGKILL)
        self._out.close()
        self._err.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group is ours: start_new_session=True
        except (ProcessLookupError, PermissionError):
            pass


def wait_http_ok(url: str, deadline: float, procs: list[ManagedProcess], what: str) -> None:
    last = "no answer yet"
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited while waiting for {what}\n{p.describe()}")
        try:
            r = httpx.get(url, timeout=2.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.25)
    details = "\n".join(p.describe() for p in procs)
    raise RuntimeError(f"timed out waiting for {what} ({url}); last: {last}\n{details}")


# --------------------------------------------------------------------------------------
# the environment


@dataclasses.dataclass
class Gateway:
    bin: Path
    tmp: Path
    url: str  # http://127.0.0.1:PORT
    port: int
    engine_port: int
    dead_port: int
    sim_url: str  # sim-1, normal
    slow_sim_url: str  # sim-2, slow
    config_path: Path
    catalog_path: Path
    data_dir: Path
    key: str  # printed on first start
    second_key: str  # made with `llmaas key create`
    process: ManagedProcess
    sims: list[ManagedProcess]

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "llmaas.sqlite"

    def env(self) -> dict[str, str]:
        return cli_env(self.data_dir)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return (
            f"gateway stdout ({self.process.stdout_path}):\n{tail(self.process.stdout_path, lines)}\n"
            f"gateway stderr ({self.process.stderr_path}):\n{tail(self.process.stderr_path, lines)}"
        )

    # -- EngineSim ---------------------------------------------------------------------

    def sim_stats(self, sim_url: Optional[str] = None) -> httpx.Response:
        """GET /sim/stats directly on an EngineSim (not through the gateway)."""
        r = httpx.get(f"{sim_url or self.sim_url}/sim/stats", timeout=10.0)
        r.raise_for_status()
        return r

    # -- database ----------------------------------------------------------------------

    def request_rows(self, where: str, args: tuple = ()) -> list[dict]:
        if not ON_POSTGRES and not self.db_path.exists():
            return []
        conn = connect_db(self.data_dir)
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute(f"SELECT * FROM requests WHERE {where}", args).fetchall()
        except DB_ERRORS:  # table not created yet / locked: caller polls again
            return []
        finally:
            conn.close()
        return [dict(r) for r in rows]

    def wait_request_row(self, request_id: str, timeout: float = WAIT_S) -> dict:
        """The `requests` row of one request id; rows are written in batches, so poll."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.request_rows("id = ?", (request_id,))
            if rows:
                return rows[0]
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no row in {'the database' if ON_POSTGRES else self.db_path} table requests for id {request_id!r} "
                    f"after {timeout} s\n{self.log_tail(20)}"
                )
            time.sleep(0.2)


def cli_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LLMAAS_DATA_DIR"] = str(data_dir)
    env.pop("LLMAAS_LISTEN", None)  # the config file decides
    env.pop("LLMAAS_DATABASE_URL", None)
    if ON_POSTGRES:
        env["LLMAAS_DATABASE_URL"] = pg_database_url(data_dir)
    return env


def write_catalog(path: Path) -> None:
    entries = [
        {
            "id": "smollm2:135m",
            "developer": "Hugging Face",
            "phase": "production",
            "in_production": "2025-01-01",
            "end_of_support": "2027-12-31",
            "aliases": ["smollm2"],
            "capabilities": ["chat", "completions", "embeddings"],
            "context_length": 8192,
            "energy_kwh_per_mtok": 0.02,
        },
        {
            "id": "sim-chat",
            "developer": "LLMaaS EngineSim",
            "phase": "experimental",
            "in_production": "2025-01-01",
            "end_of_support": "2030-12-31",
            "capabilities": ["chat", "completions"],
            "context_length": 8192,
        },
        {
            "id": "sim-slow",
            "developer": "LLMaaS EngineSim",
            "phase": "experimental",
            "in_production": "2025-01-01",
            "end_of_support": "2030-12-31",
            "capabilities": ["chat", "completions"],
            "context_length": 8192,
        },
        # Issue 17: a reranker and a transcription model, both SIMULATED by EngineSim sim-1.
        {
            "id": "sim-rerank",
            "developer": "LLMaaS EngineSim",
            "phase": "production",
            "in_production": "2025-01-01",
            "end_of_support": "2030-12-31",
            "capabilities": ["rerank"],
            "context_length": 8192,
        },
        {
            "id": "sim-whisper",
            "developer": "LLMaaS EngineSim",
            "phase": "production",
            "in_production": "2025-01-01",
            "end_of_support": "2030-12-31",
            "capabilities": ["transcription"],
            "context_length": 448,
            "energy_wh_per_audio_minute": 0.05,
        },
        {
            "id": "down-model",
            "developer": "Nobody",
            "phase": "experimental",
            "in_production": "2025-01-01",
            "end_of_support": "2030-12-31",
            "capabilities": ["chat"],
            "context_length": 4096,
        },
        {
            "id": "hang-model",
            "developer": "LLMaaS EngineSim",
            "phase": "experimental",
            "in_production": "2025-01-01",
            "end_of_support": "2030-12-31",
            "capabilities": ["chat"],
            "context_length": 4096,
        },
    ]
    lines = ["models:"]
    for e in entries:
        first = True
        for k, v in e.items():
            lines.append(f"  {'- ' if first else '  '}{k}: {yaml_quote(v)}")
            first = False
    path.write_text("\n".join(lines) + "\n")


def write_config(
    path: Path,
    *,
    listen_port: int,
    data_dir: Path,
    catalog: Path,
    engine_port: int,
    sim_port: int,
    slow_sim_port: int,
    dead_port: int,
) -> None:
    q = yaml_quote
    path.write_text(
        f"""\
listen: {q(f"127.0.0.1:{listen_port}")}
data_dir: {q(str(data_dir))}
catalog: {q(str(catalog))}
limits:
  max_body_bytes: 20971520
# Test set-up: the fault tests send EngineSim's "sim_fault" through the gateway, and the
# tenancy tests receive webhooks on a loopback port. Neither is allowed by default.
testing:
  allow_simulator_fields: true
# Rollups every second (a minute is rolled up as soon as it ended) and alerts evaluated every
# second over 20 s: the console tests see charts from the rollups and an incident without long waits.
rollups: {{ interval_seconds: 1, lag_seconds: 0 }}
alerts:
  evaluation_interval_seconds: 1
  window_seconds: 20
security:
  webhook_allow_http: true
  webhook_allowed_networks: ["127.0.0.1/32"]
backends:
  - name: local-1
    kind: llamacpp
    url: {q(f"http://127.0.0.1:{engine_port}")}
    models: {{ "smollm2:135m": "smollm2" }}
    managed:
      model_file: {q(str(MODEL_FILE))}
      python: {q(str(ENGINE_PYTHON))}
  - name: sim-1
    kind: sim
    url: {q(f"http://127.0.0.1:{sim_port}")}
    # hang-model is served by the same simulated model; tests make it hang per request
    # with "sim_fault": "hang", which this test config lets through (testing.allow_simulator_fields).
    models: {{ "sim-chat": "sim-chat", "hang-model": "sim-chat", "sim-rerank": "sim-chat", "sim-whisper": "sim-chat" }}
    timeouts: {{ first_byte_ms: 1500 }}
  - name: sim-2
    kind: sim
    url: {q(f"http://127.0.0.1:{slow_sim_port}")}
    models: {{ "sim-slow": "sim-chat" }}
  - name: dead-1
    kind: openai
    url: {q(f"http://127.0.0.1:{dead_port}")}
    models: {{ "down-model": "down-model" }}
    timeouts: {{ connect_ms: 1000 }}
"""
    )


def run_cli(gw_bin: Path, args: list[str], data_dir: Path, timeout: float = 60.0):
    return subprocess.run(
        [str(gw_bin), *args],
        env=cli_env(data_dir),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def llmaas_bin() -> Path:
    return find_binary()


@pytest.fixture(scope="session")
def gw(llmaas_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    for needed in (MODEL_FILE, ENGINE_PYTHON):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: run scripts/setup-engine.sh", pytrace=False)

    tmp = tmp_path_factory.mktemp("llmaas-e2e")
    logs = tmp / "logs"
    logs.mkdir()
    data_dir = tmp / "data"
    data_dir.mkdir()
    gw_port, engine_port, sim_port, slow_sim_port, dead_port = free_ports(5)

    started: list[ManagedProcess] = []
    env = cli_env(data_dir)
    try:
        sim = ManagedProcess(
            "sim-1",
            [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{sim_port}",
             "--model", "sim-chat", "--model", "sim-reason",
             "--ttft-ms", "5", "--itl-ms", "10", "--tokens", "32"],
            logs, env,
        )
        started.append(sim)
        slow = ManagedProcess(
            "sim-2",
            [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{slow_sim_port}",
             "--model", "sim-chat",
             "--ttft-ms", "5", "--itl-ms", "50", "--tokens", "4000"],
            logs, env,
        )
        started.append(slow)
        deadline = time.monotonic() + 30
        wait_http_ok(f"http://127.0.0.1:{sim_port}/health", deadline, [sim], "sim-1 /health")
        wait_http_ok(f"http://127.0.0.1:{slow_sim_port}/health", deadline, [slow], "sim-2 /health")

        catalog = tmp / "catalog.yaml"
        write_catalog(catalog)
        config = tmp / "gateway.yaml"
        write_config(
            config, listen_port=gw_port, data_dir=data_dir, catalog=catalog,
            engine_port=engine_port, sim_port=sim_port, slow_sim_port=slow_sim_port,
            dead_port=dead_port,
        )

        gateway = ManagedProcess(
            "gateway", [str(llmaas_bin), "serve", "--config", str(config)], logs, env
        )
        started.append(gateway)
        url = f"http://127.0.0.1:{gw_port}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        wait_http_ok(f"{url}/ready", deadline, [gateway], "gateway /ready")
        # /ready needs only one backend; the tests also need the managed llama.cpp engine.
        wait_http_ok(
            f"http://127.0.0.1:{engine_port}/v1/models", deadline, [gateway],
            "the managed llama.cpp engine (started by the gateway)",
        )

        # The first-start key is printed once on stdout.
        key = None
        while key is None and time.monotonic() < deadline:
            m = KEY_RE.search(gateway.stdout_path.read_text(errors="replace"))
            if m:
                key = m.group(1)
            else:
                time.sleep(0.1)
        if key is None:
            raise RuntimeError(
                "gateway did not print 'API key (tenant default, shown once): sk-llm-…'\n"
                + gateway.describe()
            )

        made = run_cli(
            llmaas_bin, ["key", "create", "--tenant", "default", "--config", str(config), "--json"],
            data_dir,
        )
        if made.returncode != 0:
            raise RuntimeError(
                f"`llmaas key create` failed ({made.returncode}):\n{made.stdout}\n{made.stderr}"
            )
        second_key = json.loads(made.stdout)["key"]
        assert second_key.startswith("sk-llm-") and second_key != key

        g = Gateway(
            bin=llmaas_bin, tmp=tmp, url=url, port=gw_port, engine_port=engine_port,
            dead_port=dead_port, sim_url=f"http://127.0.0.1:{sim_port}",
            slow_sim_url=f"http://127.0.0.1:{slow_sim_port}", config_path=config,
            catalog_path=catalog, data_dir=data_dir, key=key, second_key=second_key,
            process=gateway, sims=[sim, slow],
        )
    except BaseException as e:
        for p in reversed(started):
            p.stop()
        if isinstance(e, Exception):
            pytest.fail(f"could not start the e2e environment: {e}", pytrace=False)
        raise

    _session_state["gw"] = g
    yield g
    for p in reversed(started):
        p.stop()


# Used by the reporting hooks below.
_session_state: dict[str, Any] = {}


@pytest.fixture()
def client(gw: Gateway) -> openai.OpenAI:
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0, timeout=60.0)
    yield c
    c.close()


@pytest.fixture()
def http(gw: Gateway) -> httpx.Client:
    """Raw HTTP to the gateway, authenticated with the first-start key."""
    with httpx.Client(
        base_url=gw.url, headers={"Authorization": f"Bearer {gw.key}"}, timeout=60.0
    ) as c:
        yield c


# --------------------------------------------------------------------------------------
# reporting: show the gateway's log tail next to every failing test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    g = _session_state.get("gw")
    if rep.failed and g is not None:
        rep.sections.append(("llmaas gateway log tail", g.log_tail(40)))
        _session_state["failed"] = True


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    g = _session_state.get("gw")
    if g is None or not _session_state.get("failed"):
        return
    tr = terminalreporter
    tr.section("llmaas gateway logs (tail)")
    tr.write_line(g.log_tail(LOG_TAIL_LINES))
    for s in g.sims:
        tr.write_line(s.describe())
    tr.write_line(f"full logs under {g.tmp / 'logs'}")


def start_own_gateway(llmaas_bin: Path, tmp: Path, config: Path, data: Path, port: int, others: list, what: str):
    """Starts a gateway of a test module's own (its config, its data dir), waits until it is ready,
    and returns (process, first-start key, operator admin token). The caller stops the process."""
    gw = ManagedProcess("gateway", [str(llmaas_bin), "serve", "--config", str(config)], tmp, cli_env(data))
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/ready", time.monotonic() + READY_TIMEOUT_S, [gw, *others], what)
        # The first-start key is printed before the listener starts; poll the log all the same.
        key = wait_until(lambda: (m := KEY_RE.search(gw.stdout_path.read_text(errors="replace"))) and m.group(1),
                         message=lambda: f"the first-start key in {what}'s log\n{gw.describe()}")
    except BaseException:
        gw.stop()  # and the engine it manages: nothing outlives a failed start
        raise
    done = run_cli(llmaas_bin, ["admin", "token", "create", "--config", str(config), "--json"], data)
    return gw, key, json.loads(done.stdout)["token"]
