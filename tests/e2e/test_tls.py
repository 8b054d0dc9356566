"""TLS on the listener and to the engines (issue 14, item 6).

The test makes its own PKI with `openssl` in a temp dir: a CA, two server certificates (A, then
B for the reload), a client certificate for mutual TLS, and a key that matches nothing. The
engines are EngineSim (simulated) behind a small TLS-terminating proxy written here (Python's
ssl module), which can demand a client certificate.
"""

import asyncio
import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import KEY_RE, READY_TIMEOUT_S, REPO, ManagedProcess, cli_env, free_ports, run_cli, wait_http_ok, wait_until

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command (apt-get install openssl)")


def trust(ca) -> ssl.SSLContext:
    """What `httpx.Client(verify=...)` takes to trust only our CA."""
    return ssl.create_default_context(cafile=str(ca))


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def make_pki(d: Path) -> dict[str, Path]:
    """CA; server certificates A and B for 127.0.0.1/localhost; a client certificate; a stray key."""
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=llmaas test CA", "-keyout", "ca.key", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    ext = d / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    for name in ("a", "b"):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN=llmaas-{name}",
                "-keyout", f"server-{name}.key", "-out", f"server-{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"server-{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", "server.ext", "-out", f"server-{name}.pem", cwd=d)
    cext = d / "client.ext"
    cext.write_text("extendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=llmaas-gateway",
            "-keyout", "client.key", "-out", "client.csr", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "client.ext", "-out", "client.pem", cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "stray.key", cwd=d)
    names = ["ca.pem", "server-a.pem", "server-a.key", "server-b.pem", "server-b.key", "client.pem", "client.key", "stray.key"]
    return {n: d / n for n in names}


class TLSProxy:
    """Terminates TLS in front of a plain-HTTP EngineSim; with `client_ca`, a client certificate
    signed by it is required. Counts the handshakes that got through and the client certificates seen."""

    def __init__(self, target_port: int, cert: Path, key: Path, client_ca: Path | None = None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(str(client_ca))
        (self.port,) = free_ports(1)
        self.target_port = target_port
        self.connections = 0
        self.posts = 0  # requests forwarded to the engine (POST lines seen going up)
        self.client_subjects: list[str] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, context: None)  # refused handshakes are expected in one test
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=ctx), self.loop).result(timeout=10)

    async def _handle(self, reader, writer):
        peer = writer.get_extra_info("peercert")
        with self.lock:
            self.connections += 1
            if peer:
                self.client_subjects.append(dict(x[0] for x in peer["subject"]).get("commonName", ""))
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src, dst, up: bool):
            try:
                while data := await src.read(65536):
                    if up and b"POST /" in data:
                        with self.lock:
                            self.posts += data.count(b"POST /")
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    dst.close()
                except Exception:
                    pass

        await asyncio.gather(pipe(reader, up_w, True), pipe(up_r, writer, False))

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


CATALOG = ("models:\n" + "".join(
    f"  - id: {m}\n    developer: EngineSim (simulated)\n    phase: production\n    in_production: 2025-01-01\n"
    f"    end_of_support: 2030-12-31\n    capabilities: [chat, completions]\n    context_length: 8192\n"
    for m in ("sim-chat", "sim-mtls", "sim-nocert")))


def https_ready(url: str, ca: Path, procs: list, what: str) -> None:
    last = "no answer yet"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited while waiting for {what}\n{p.describe()}")
        try:
            r = httpx.get(url, timeout=2.0, verify=trust(ca))
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {what} ({url}); last: {last}\n" + "\n".join(p.describe() for p in procs))


@pytest.fixture(scope="module")
def tls_gw(llmaas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    pki = make_pki(tmp / "pki")
    # The listener's files: the reload test copies B over them.
    live_cert, live_key = tmp / "live.pem", tmp / "live.key"
    shutil.copy(pki["server-a.pem"], live_cert)
    shutil.copy(pki["server-a.key"], live_key)
    p_gw, p_metrics, p_sim = free_ports(3)
    sim = ManagedProcess("sim-tls", [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{p_sim}", "--model", "sim-chat",
                                     "--ttft-ms", "5", "--itl-ms", "40", "--tokens", "24"], tmp, cli_env(tmp / "d"))
    proxies = []
    gw = None
    try:
        wait_http_ok(f"http://127.0.0.1:{p_sim}/health", time.monotonic() + READY_TIMEOUT_S, [sim], "sim-tls")
        server_only = TLSProxy(p_sim, pki["server-a.pem"], pki["server-a.key"])
        mutual = TLSProxy(p_sim, pki["server-a.pem"], pki["server-a.key"], client_ca=pki["ca.pem"])
        proxies += [server_only, mutual]
        cat = tmp / "catalog.yaml"
        cat.write_text(CATALOG)
        data = tmp / "data"
        config = tmp / "gw.yaml"
        config.write_text(f"""listen: 127.0.0.1:{p_gw}
data_dir: {data}
catalog: {cat}
tls: {{ cert: "{live_cert}", key: "{live_key}", min_version: "1.3" }}
metrics: {{ listen: "127.0.0.1:{p_metrics}" }}
backends:
  - name: sim-https
    kind: sim
    url: "https://127.0.0.1:{server_only.port}"
    models: {{ "sim-chat": "sim-chat" }}
    tls: {{ ca: "{pki['ca.pem']}" }}
  - name: sim-mtls
    kind: sim
    url: "https://localhost:{mutual.port}"
    models: {{ "sim-mtls": "sim-chat" }}
    tls: {{ ca: "{pki['ca.pem']}", cert: "{pki['client.pem']}", key: "{pki['client.key']}" }}
  - name: sim-nocert
    kind: sim
    url: "https://127.0.0.1:{mutual.port}"
    models: {{ "sim-nocert": "sim-chat" }}
    tls: {{ ca: "{pki['ca.pem']}" }}
    timeouts: {{ connect_ms: 2000, first_byte_ms: 5000 }}
""")
        gw = ManagedProcess("gateway-tls", [str(llmaas_bin), "serve", "--config", str(config)], tmp, cli_env(data))
        https_ready(f"https://127.0.0.1:{p_gw}/ready", pki["ca.pem"], [gw, sim], "the TLS gateway")
        key = wait_until(lambda: (m := KEY_RE.search(gw.stdout_path.read_text(errors="replace"))) and m.group(1),
                         message=lambda: gw.describe())
        yield {"port": p_gw, "metrics_port": p_metrics, "pki": pki, "key": key, "gw": gw, "config": config, "data": data, "bin": llmaas_bin,
               "live_cert": live_cert, "live_key": live_key, "mutual": mutual, "server_only": server_only}
    finally:
        if gw:
            gw.stop()
        for p in proxies:
            p.close()
        sim.stop()


def s_client(port: int, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", *flags],
                          input="", capture_output=True, text=True, timeout=30)


def test_tls13_is_accepted_and_tls12_refused(tls_gw):
    v13 = s_client(tls_gw["port"], "-tls1_3", "-CAfile", str(tls_gw["pki"]["ca.pem"]))
    assert v13.returncode == 0, v13.stdout + v13.stderr
    assert "TLSv1.3" in v13.stdout
    assert "Verify return code: 0 (ok)" in v13.stdout
    v12 = s_client(tls_gw["port"], "-tls1_2")
    assert v12.returncode != 0, f"a TLS 1.2 client got in:\n{v12.stdout}"


def test_plain_http_on_the_tls_port_gets_no_answer(tls_gw):
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_gw['port']}/health", timeout=10)


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_gw):
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{tls_gw['port']}/health", timeout=10)  # system roots only


def test_openai_sdk_over_https_with_a_custom_ca_and_tls_engines(tls_gw):
    ca = str(tls_gw["pki"]["ca.pem"])
    with httpx.Client(verify=trust(ca), timeout=60) as http_client:
        client = openai.OpenAI(base_url=f"https://127.0.0.1:{tls_gw['port']}/v1", api_key=tls_gw["key"],
                               http_client=http_client, max_retries=0)
        # To the engine over https, trusted through the backend's CA.
        before = tls_gw["server_only"].posts
        done = client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": "hello over TLS"}],
                                              max_tokens=8)
        assert done.choices[0].message.content
        assert done.usage.completion_tokens > 0
        assert tls_gw["server_only"].posts > before
        # Mutual TLS: the engine side demands a client certificate, the gateway presents it.
        chunks = list(client.chat.completions.create(model="sim-mtls", messages=[{"role": "user", "content": "mutual TLS stream"}],
                                                     max_tokens=6, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "llmaas-gateway" in tls_gw["mutual"].client_subjects
        # The same engine without a client certificate in the gateway's config: its handshake is refused.
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="sim-nocert", messages=[{"role": "user", "content": "no client cert"}], max_tokens=4)
        assert refused.value.status_code in (502, 503, 504), refused.value


def test_metrics_listener_speaks_tls_too(tls_gw):
    r = httpx.get(f"https://127.0.0.1:{tls_gw['metrics_port']}/metrics", verify=trust(tls_gw["pki"]["ca.pem"]), timeout=10)
    assert r.status_code == 200
    assert "llmaas_" in r.text


def test_console_works_over_tls_with_a_secure_cookie(tls_gw):
    done = run_cli(tls_gw["bin"], ["admin", "token", "create", "--config", str(tls_gw["config"]), "--json"], tls_gw["data"])
    assert done.returncode == 0, done.stderr
    token = json.loads(done.stdout)["token"]
    with httpx.Client(base_url=f"https://127.0.0.1:{tls_gw['port']}", verify=trust(tls_gw["pki"]["ca.pem"]), timeout=30) as c:
        page = c.get("/console/login")
        assert page.status_code == 200 and "<form" in page.text
        login = c.post("/console/login", data={"token": token})
        assert login.status_code in (302, 303), login.text[:300]
        cookie = login.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie, cookie
        assert c.get("/console").status_code == 200


def peer_common_name(port: int, ca: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def keepalive_get(s: ssl.SSLSocket, path: str) -> bytes:
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += s.recv(4096)
    return head.split(b"\r\n")[0] + b" " + body


def test_sighup_reloads_the_certificate_without_dropping_open_connections(tls_gw):
    ca, port = tls_gw["pki"]["ca.pem"], tls_gw["port"]
    assert peer_common_name(port, ca) == "llmaas-a"
    # A keep-alive connection and a stream, both open across the reload.
    ctx = ssl.create_default_context(cafile=str(ca))
    kept = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="127.0.0.1")
    try:
        assert b"200" in keepalive_get(kept, "/health")
        with httpx.Client(verify=trust(ca), timeout=60) as http_client:
            client = openai.OpenAI(base_url=f"https://127.0.0.1:{port}/v1", api_key=tls_gw["key"], http_client=http_client, max_retries=0)
            stream = client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": "a stream across a reload"}],
                                                    max_tokens=24, stream=True)
            it = iter(stream)
            first = next(it)
            shutil.copy(tls_gw["pki"]["server-b.pem"], tls_gw["live_cert"])
            shutil.copy(tls_gw["pki"]["server-b.key"], tls_gw["live_key"])
            tls_gw["gw"].proc.send_signal(signal.SIGHUP)
            # New handshakes see B once the reload happened.
            wait_until(lambda: peer_common_name(port, ca) == "llmaas-b", message="the new certificate on a new handshake")
            rest = list(it)
            assert rest, "the stream ended at the reload"
            assert any(c.choices and c.choices[0].finish_reason for c in [first, *rest]), "the stream did not finish"
        # The keep-alive connection opened before the reload still works, still with A.
        assert b"200" in keepalive_get(kept, "/health")
        assert dict(x[0] for x in kept.getpeercert()["subject"])["commonName"] == "llmaas-a"
    finally:
        kept.close()
        shutil.copy(tls_gw["pki"]["server-a.pem"], tls_gw["live_cert"])
        shutil.copy(tls_gw["pki"]["server-a.key"], tls_gw["live_key"])


def test_a_bad_certificate_on_sighup_keeps_the_one_in_service(tls_gw):
    ca, port = tls_gw["pki"]["ca.pem"], tls_gw["port"]
    shutil.copy(tls_gw["pki"]["server-a.pem"], tls_gw["live_cert"])
    shutil.copy(tls_gw["pki"]["stray.key"], tls_gw["live_key"])  # does not match the certificate
    try:
        tls_gw["gw"].proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS certificate not reloaded" in tls_gw["gw"].stdout_path.read_text(errors="replace")
                   + tls_gw["gw"].stderr_path.read_text(errors="replace"), message="the refused reload in the log")
        assert httpx.get(f"https://127.0.0.1:{port}/health", verify=trust(ca), timeout=10).status_code == 200
    finally:
        shutil.copy(tls_gw["pki"]["server-a.key"], tls_gw["live_key"])


# --- bad configurations stop start-up with exit code 2 and name the field ---------------------

@pytest.fixture(scope="module")
def pki_only(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki-bad"))


BAD = {
    "missing certificate": ("tls: { cert: \"<dir>/nope.pem\", key: \"<server-a.key>\" }", "tls.cert"),
    "key without cert": ("tls: { key: \"<server-a.key>\" }", "tls.cert"),
    "cert without key": ("tls: { cert: \"<server-a.pem>\" }", "tls.key"),
    "invalid certificate": ("tls: { cert: \"<garbage>\", key: \"<server-a.key>\" }", "tls.cert"),
    "key not matching the certificate": ("tls: { cert: \"<server-a.pem>\", key: \"<stray.key>\" }", "tls.key"),
    "bad min_version": ("tls: { cert: \"<server-a.pem>\", key: \"<server-a.key>\", min_version: \"1.1\" }", "tls.min_version"),
    "backend CA unreadable": ("backends:\n  - { name: e, kind: sim, url: \"https://127.0.0.1:1\", models: { \"sim-chat\": \"sim-chat\" }, "
                              "tls: { ca: \"<dir>/no-ca.pem\" } }", "backends[0].tls.ca"),
    "backend client key without cert": ("backends:\n  - { name: e, kind: sim, url: \"https://127.0.0.1:1\", models: { \"sim-chat\": \"sim-chat\" }, "
                                        "tls: { key: \"<client.key>\" } }", "backends[0].tls.cert"),
}


def fill(snippet: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        snippet = snippet.replace(f"<{k}>", v)
    return snippet


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tls_config_stops_startup_naming_the_field(llmaas_bin, pki_only, tmp_path, case):
    snippet, field = BAD[case]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    values = {k: str(v) for k, v in pki_only.items()} | {"dir": str(tmp_path), "garbage": str(garbage)}
    cat = tmp_path / "catalog.yaml"
    cat.write_text(CATALOG)
    config = tmp_path / "bad.yaml"
    config.write_text(f"listen: 127.0.0.1:{free_ports(1)[0]}\ndata_dir: {tmp_path / 'data'}\ncatalog: {cat}\n"
                      + fill(snippet, values) + "\n")
    try:
        done = subprocess.run([str(llmaas_bin), "serve", "--config", str(config)], env=cli_env(tmp_path / "data"), cwd=str(REPO),
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`llmaas serve` with {case} did not exit; stderr: {e.stderr!r}")
    assert done.returncode == 2, f"{case}: exit code {done.returncode}; stderr: {done.stderr!r}"
    assert field in done.stderr, f"{case}: stderr does not name {field}: {done.stderr!r}"
