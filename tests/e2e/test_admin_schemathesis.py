"""schemathesis against the admin API's own OpenAPI document (issue 10): generated and mutated
requests — valid, invalid, and stateful sequences following the links between operations — with
an operator token and with a tenant-scoped token. Zero server errors, zero responses outside the
document (status, content type, schema, headers), and every request that violates the document
refused. Bounded: a fixed seed and a fixed number of examples per operation.

Runs against a gateway of its own (fresh data; the generated requests create, disable and rotate
freely) in front of an EngineSim (simulated engine).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import ManagedProcess, free_ports, run_cli, start_own_gateway, wait_http_ok, write_catalog

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "response_headers_conformance", "negative_data_rejection",
])
EXAMPLES = 25


@pytest.fixture(scope="module")
def admin_gw(llmaas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    p_gw, p_sim = free_ports(2)
    sim = ManagedProcess("sim-st", [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{p_sim}", "--model", "sim-chat"], tmp, {})
    wait_http_ok(f"http://127.0.0.1:{p_sim}/health", time.monotonic() + 30, [sim], "sim-st")
    write_catalog(tmp / "catalog.yaml")
    data = tmp / "data"
    config = tmp / "gw.yaml"
    # The generator sends wrong tokens on purpose (ignored-auth probes): keep the throttle out of the way.
    config.write_text(f"""listen: 127.0.0.1:{p_gw}
data_dir: {data}
catalog: {tmp / "catalog.yaml"}
security: {{ auth_failures_per_minute: 100000 }}
backends:
  - {{ name: sim-st, kind: sim, url: "http://127.0.0.1:{p_sim}", models: {{ "sim-chat": "sim-chat" }} }}
""")
    try:
        gw, _key, token = start_own_gateway(llmaas_bin, tmp, config, data, p_gw, [sim], "schemathesis gateway")
    except BaseException:
        sim.stop()
        raise
    try:
        yield {"url": f"http://127.0.0.1:{p_gw}", "token": token, "gw": gw, "bin": llmaas_bin, "config": config, "data": data, "tmp": tmp}
    finally:
        gw.stop()
        sim.stop()


def run_schemathesis(url: str, token: str, seed: int, report: Path) -> tuple[int, str]:
    exe = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(
        [str(exe), "run", f"{url}/admin/v1/openapi.yaml", "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
         "--max-examples", str(EXAMPLES), "--seed", str(seed), "--workers", "1", "--request-timeout", "30", "--no-color", "--generation-database", "none",
         "--report", "junit", "--report-junit-path", str(report)],
        capture_output=True, text=True, timeout=600,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("scope", ["operator", "tenant"])
def test_admin_api_conforms_to_its_document(admin_gw, scope):
    token = admin_gw["token"]
    if scope == "tenant":
        admin = httpx.Client(base_url=f"{admin_gw['url']}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert admin.post("/tenants", json={"name": "fuzzed"}).status_code == 201
        made = run_cli(admin_gw["bin"], ["admin", "token", "create", "--tenant", "fuzzed", "--config", str(admin_gw["config"]), "--json"], admin_gw["data"])
        assert made.returncode == 0, made.stderr
        token = json.loads(made.stdout)["token"]
    code, out = run_schemathesis(admin_gw["url"], token, seed=20261205 if scope == "operator" else 7, report=admin_gw["tmp"] / f"junit-{scope}.xml")
    summary = re.search(r"(\d+) generated, (\d+) passed", out)
    print(f"schemathesis ({scope} token): {summary.group(0) if summary else 'no summary'}")
    assert code == 0 and summary, out[-6000:]
    assert summary.group(1) == summary.group(2) and int(summary.group(1)) > 100, out[-3000:]
    assert admin_gw["gw"].alive(), admin_gw["gw"].describe()
    assert httpx.get(f"{admin_gw['url']}/health", timeout=10).status_code == 200
