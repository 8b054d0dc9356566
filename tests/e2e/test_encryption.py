"""Encryption at rest (issue 14, item 7) against the real gateway and EngineSim (simulated):

- request bodies, the sealed successor of a rotated key and a tenant's webhook secret never
  appear in clear in the SQLite files;
- `llmaas keys rotate-master` re-wraps every data key while a gateway holding the old and the new
  master key keeps serving; afterwards the new key alone reads everything back;
- the old master key alone, or a wrong one, stops start-up with exit code 2 and names the field.
"""

import json
import subprocess
import time
import uuid

import httpx
import openai
import pytest

from conftest import KEY_RE, READY_TIMEOUT_S, REPO, ManagedProcess, cli_env, free_ports, run_cli, wait_http_ok, wait_until

CATALOG = ("models:\n  - id: sim-chat\n    developer: EngineSim (simulated)\n    phase: production\n"
           "    in_production: 2025-01-01\n    end_of_support: 2030-12-31\n    capabilities: [chat, completions]\n"
           "    context_length: 8192\n")


class Env:
    def __init__(self, llmaas_bin, tmp, sim_port):
        self.bin, self.tmp, self.sim_port = llmaas_bin, tmp, sim_port
        self.data = tmp / "data"
        self.catalog = tmp / "catalog.yaml"
        self.catalog.write_text(CATALOG)
        (self.port,) = free_ports(1)

    def config(self, name: str, master: str, previous: list[str] = ()) -> str:
        path = self.tmp / f"{name}.yaml"
        prev = "".join(f'\n    - "{p}"' for p in previous)
        path.write_text(f"""listen: 127.0.0.1:{self.port}
data_dir: {self.data}
catalog: {self.catalog}
encryption:
  master_key_file: "{master}"
  previous_master_key_files: [{', '.join(f'"{p}"' for p in previous)}]
backends:
  - {{ name: sim-a, kind: sim, url: "http://127.0.0.1:{self.sim_port}", models: {{ "sim-chat": "sim-chat" }} }}
""")
        return str(path)

    def cli(self, config: str, *args: str) -> subprocess.CompletedProcess:
        return run_cli(self.bin, [*args, "--config", config], self.data)

    def serve(self, config: str, name: str) -> ManagedProcess:
        gw = ManagedProcess(name, [str(self.bin), "serve", "--config", config], self.tmp, cli_env(self.data))
        wait_http_ok(f"http://127.0.0.1:{self.port}/ready", time.monotonic() + READY_TIMEOUT_S, [gw], name)
        return gw

    def serve_fails(self, config: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin), "serve", "--config", config], env={**cli_env(self.data), **(env_extra or {})},
                              cwd=str(REPO), capture_output=True, text=True, timeout=60)

    def database_bytes(self) -> bytes:
        out = b""
        for suffix in ("", "-wal", "-shm"):
            p = self.data / f"llmaas.sqlite{suffix}"
            if p.exists():
                out += p.read_bytes()
        return out


@pytest.fixture(scope="module")
def env(llmaas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("encryption")
    (p_sim,) = free_ports(1)
    sim = ManagedProcess("sim-enc", [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{p_sim}", "--model", "sim-chat",
                                     "--ttft-ms", "5", "--itl-ms", "2", "--tokens", "8"], tmp, cli_env(tmp / "d"))
    try:
        wait_http_ok(f"http://127.0.0.1:{p_sim}/health", time.monotonic() + 30, [sim], "sim-enc")
        yield Env(llmaas_bin, tmp, p_sim)
    finally:
        sim.stop()


def chat(port: int, key: str, text: str) -> str:
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60) as c:
        raw = c.chat.completions.with_raw_response.create(model="sim-chat", messages=[{"role": "user", "content": text}], max_tokens=8)
        return raw.headers["x-request-id"]


def body_of(env: Env, config: str, request_id: str) -> dict:
    done = env.cli(config, "requests", "show", request_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["bodies"]


def test_secrets_are_sealed_and_survive_a_master_key_rotation(env):
    tag = uuid.uuid4().hex[:10]
    key_a, key_b = str(env.tmp / "master-a.key"), str(env.tmp / "master-b.key")
    made = run_cli(env.bin, ["keys", "new-master", "--out", key_a], env.data)
    assert made.returncode == 0 and "new master key" in made.stdout, made.stderr
    assert run_cli(env.bin, ["keys", "new-master", "--out", key_a], env.data).returncode == 2  # never overwrites
    only_a = env.config("a", key_a)

    # 1. A gateway under master A: a tenant that stores bodies, a rotated key, a webhook secret.
    gw = env.serve(only_a, "gw-a")
    try:
        token = json.loads(env.cli(only_a, "admin", "token", "create", "--json").stdout)["token"]
        admin = httpx.Client(base_url=f"http://127.0.0.1:{env.port}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        t = admin.post("/tenants", json={"name": f"vault-{tag}", "settings": {"store_bodies": True}})
        assert t.status_code == 201, t.text
        tenant = t.json()
        k = admin.post(f"/tenants/{tenant['id']}/keys", json={"name": "k"})
        assert k.status_code == 201, k.text
        api_key, key_id = k.json()["key"], k.json()["id"]
        hook = admin.post(f"/tenants/{tenant['id']}/webhook-secret")
        assert hook.status_code == 200, hook.text
        webhook_secret = hook.json()["secret"]
        prompt_a = f"okapi-{tag}-under-master-a"
        rid_a = chat(env.port, api_key, prompt_a)
        wait_until(lambda: body_of(env, only_a, rid_a)["state"] == "available", message="the body stored under master A")
        rotated = env.cli(only_a, "key", "rotate", key_id)
        assert rotated.returncode == 0, rotated.stderr
    finally:
        gw.stop()

    # Nothing secret in clear in the database files.
    raw = env.database_bytes()
    for secret in (prompt_a, webhook_secret):
        assert secret.encode() not in raw, f"{secret!r} is in clear in the database"

    # 2. The rotation: replicas get B as master and A as previous (restarted one by one), then
    #    `keys rotate-master` re-wraps while they serve.
    assert run_cli(env.bin, ["keys", "new-master", "--out", key_b], env.data).returncode == 0
    both = env.config("b-and-a", key_b, [key_a])
    gw = env.serve(both, "gw-ab")
    try:
        rid_before = chat(env.port, api_key, f"narwhal-{tag}-before-rewrap")
        done = env.cli(both, "keys", "rotate-master")
        assert done.returncode == 0, done.stderr
        assert "0 remain" in done.stdout and "re-wrapped" in done.stdout, done.stdout
        # The running gateway keeps serving and storing bodies during and after.
        prompt_after = f"pangolin-{tag}-after-rewrap"
        rid_after = chat(env.port, api_key, prompt_after)
        wait_until(lambda: body_of(env, both, rid_after)["state"] == "available", message="a body stored after the re-wrap")
        assert env.cli(both, "keys", "rotate-master").stdout.startswith(f"master key ")  # idempotent
        status = env.cli(both, "keys", "status")
        assert status.returncode == 0 and "before master ids" not in status.stdout, status.stdout
    finally:
        gw.stop()

    # 3. B alone reads everything back: bodies from before and after, the sealed successor.
    only_b = env.config("b", key_b)
    gw = env.serve(only_b, "gw-b")
    try:
        for rid, text in ((rid_a, prompt_a), (rid_after, prompt_after)):
            bodies = body_of(env, only_b, rid)
            assert bodies["state"] == "available" and text in bodies["prompt"], bodies
        assert body_of(env, only_b, rid_before)["state"] == "available"
        successor = env.cli(only_b, "key", "successor", key_id)
        assert successor.returncode == 0 and successor.stdout.strip().startswith("sk-llm-"), successor.stderr
        assert successor.stdout.strip().encode() not in raw, "the successor key was in clear in the database"
        assert chat(env.port, successor.stdout.strip(), f"tapir-{tag}-with-the-successor")
    finally:
        gw.stop()

    # 4. The old master alone no longer opens the re-wrapped keys: start-up refused, field named.
    stale = env.serve_fails(only_a)
    assert stale.returncode == 2, f"exit {stale.returncode}: {stale.stderr}"
    assert "encryption.master_key_file" in stale.stderr and "does not open" not in stale.stdout, stale.stderr
    # A wrong key given in the environment: the same, naming LLMAAS_MASTER_KEY.
    import base64, os
    wrong = env.serve_fails(only_b, {"LLMAAS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})
    assert wrong.returncode == 2 and "LLMAAS_MASTER_KEY" in wrong.stderr, wrong.stderr
    # A previous key file that does not exist: named too.
    missing = env.serve_fails(env.config("missing-prev", key_b, [str(env.tmp / "nope.key")]))
    assert missing.returncode == 2 and "encryption.previous_master_key_files[0]" in missing.stderr, missing.stderr
