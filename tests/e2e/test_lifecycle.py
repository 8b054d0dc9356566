"""Model lifecycle end to end (issue 5, SPEC S7 and S1.1).

This module starts its own EngineSim and gateway (no llama.cpp) with a catalog whose dates are
written relative to *today* (UTC, the gateway's clock), so that one model sits in each phase:
production, sunset window, deprecated, retired, not yet available, and retired-but-extended for
tenant ``default``. The unit tests (Tests/CatalogTests) walk the clock through every boundary;
here we check what a real client sees: status codes, headers, ``/v1/models`` fields, the public
``/v1/lifecycle``, the capability errors as the ``openai`` SDK raises them, and a catalog reload
that keeps serving the old catalog when the new file is broken.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import signal
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import (
    KEY_RE, WAIT_S, ManagedProcess, cli_env, free_ports, run_cli, wait_http_ok, yaml_quote,
)

TODAY = dt.datetime.now(dt.timezone.utc).date()


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def on_one_day(fetch):
    """Runs ``fetch`` and returns its result with the UTC day it ran on (the gateway's "today"),
    again if midnight fell during the call. The catalog's dates are written relative to
    ``TODAY`` (the day the module was loaded, far from every phase boundary); counts of days and
    the page's date follow the day the gateway answered on, which is later if a run crosses
    midnight."""
    for _ in range(3):
        before = utc_today()
        result = fetch()
        if utc_today() == before:
            return result, before
    raise AssertionError("the UTC day kept changing during the call")


def add_months(d: dt.date, n: int) -> dt.date:
    """Calendar months later, the day clamped to the month's length (as the gateway does)."""
    total = d.year * 12 + d.month - 1 + n
    y, m = divmod(total, 12)
    return dt.date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def http_date(d: dt.date) -> str:
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def unix(d: dt.date) -> int:
    return calendar.timegm(d.timetuple())


DSP = {
    "life-prod": TODAY + dt.timedelta(days=200),
    "life-sunset": TODAY + dt.timedelta(days=30),
    "life-deprecated": TODAY - dt.timedelta(days=10),
    "life-retired": TODAY - dt.timedelta(days=200),
    "life-extended": TODAY - dt.timedelta(days=200),
}
EXTENDED_UNTIL = TODAY + dt.timedelta(days=30)  # last day served to tenant "default"
FUTURE_DMP = TODAY + dt.timedelta(days=10)


def model(id_: str, **kw) -> dict:
    e = {
        "id": id_, "developer": "Lifecycle Lab", "phase": "production",
        "in_production": "2025-01-01", "end_of_support": "2030-12-31",
        "capabilities": ["chat", "completions"], "context_length": 8192,
    }
    e.update(kw)
    return e


def catalog_entries(extra: list[dict] | None = None) -> list[dict]:
    entries = [
        model("sim-chat", energy_kwh_per_mtok=0.15),
        model("life-prod", end_of_support=str(DSP["life-prod"])),
        model("life-sunset", end_of_support=str(DSP["life-sunset"]), successor="sim-chat", aliases=["sunny"]),
        model("life-deprecated", end_of_support=str(DSP["life-deprecated"]), successor="sim-chat"),
        model("life-retired", in_production="2024-01-01", end_of_support=str(DSP["life-retired"]), successor="sim-chat"),
        model("life-extended", in_production="2024-01-01", end_of_support=str(DSP["life-extended"]),
              extended_support={"default": str(EXTENDED_UNTIL)}),
        model("life-future", in_production=str(FUTURE_DMP)),
        model("life-tiny", capabilities=["chat"], context_length=64),
    ]
    return entries + (extra or [])


def write_catalog(path: Path, entries: list[dict]) -> None:
    # JSON is YAML; written to a temp file then renamed, as a deploy tool would.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"models": entries}, indent=1))
    os.replace(tmp, path)


SERVED = ["sim-chat", "life-prod", "life-sunset", "life-deprecated", "life-retired", "life-extended",
          "life-future", "life-tiny", "life-new"]


@pytest.fixture(scope="module")
def life(llmaas_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("llmaas-lifecycle")
    logs = tmp / "logs"
    logs.mkdir()
    data_dir = tmp / "data"
    data_dir.mkdir()
    gw_port, sim_port = free_ports(2)
    env = cli_env(data_dir)
    started: list[ManagedProcess] = []
    try:
        sim = ManagedProcess("life-sim", [str(llmaas_bin), "sim", "--listen", f"127.0.0.1:{sim_port}",
                                          "--model", "sim-chat", "--ttft-ms", "1", "--itl-ms", "1", "--tokens", "4"],
                             logs, env)
        started.append(sim)
        wait_http_ok(f"http://127.0.0.1:{sim_port}/health", time.monotonic() + 30, [sim], "sim /health")
        catalog = tmp / "catalog.yaml"
        write_catalog(catalog, catalog_entries())
        config = tmp / "gateway.yaml"
        models = ", ".join(f"{yaml_quote(m)}: \"sim-chat\"" for m in SERVED if m != "life-new")
        config.write_text(
            f"listen: {yaml_quote(f'127.0.0.1:{gw_port}')}\n"
            f"data_dir: {yaml_quote(str(data_dir))}\n"
            f"catalog: {yaml_quote(str(catalog))}\n"
            "backends:\n"
            "  - name: sim-1\n"
            "    kind: sim\n"
            f"    url: {yaml_quote(f'http://127.0.0.1:{sim_port}')}\n"
            f"    models: {{ {models} }}\n"
        )
        gateway = ManagedProcess("life-gateway", [str(llmaas_bin), "serve", "--config", str(config)], logs, env)
        started.append(gateway)
        url = f"http://127.0.0.1:{gw_port}"
        deadline = time.monotonic() + 60
        wait_http_ok(f"{url}/ready", deadline, [gateway], "gateway /ready")
        key = None
        while key is None and time.monotonic() < deadline:
            m = KEY_RE.search(gateway.stdout_path.read_text(errors="replace"))
            key = m.group(1) if m else time.sleep(0.1)
        assert key, gateway.describe()
        made = run_cli(llmaas_bin, ["tenant", "create", "other", "--config", str(config)], data_dir)
        assert made.returncode == 0, made.stderr
        made = run_cli(llmaas_bin, ["key", "create", "--tenant", "other", "--config", str(config), "--json"], data_dir)
        assert made.returncode == 0, made.stderr
        other_key = json.loads(made.stdout)["key"]
        yield {"url": url, "key": key, "other_key": other_key, "catalog": catalog, "config": config,
               "gateway": gateway, "data_dir": data_dir, "bin": llmaas_bin}
    finally:
        for p in reversed(started):
            p.stop()


def client(life, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=life["url"] + "/v1", api_key=key or life["key"], max_retries=0, timeout=30.0)


def chat(life, model_name: str, key: str | None = None) -> httpx.Response:
    return httpx.post(f"{life['url']}/v1/chat/completions", timeout=30.0,
                      headers={"Authorization": f"Bearer {key or life['key']}"},
                      json={"model": model_name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})


# ---------------------------------------------------------------------------------------------
# phases, as status codes and headers


def test_production_has_no_lifecycle_headers(life):
    r = chat(life, "life-prod")
    assert r.status_code == 200, r.text
    for h in ("Sunset", "Deprecation", "Link"):
        assert h not in r.headers


def test_sunset_window_announces_removal_and_successor(life):
    r = chat(life, "sunny")  # an alias resolves, and keeps the warnings
    assert r.status_code == 200, r.text
    assert r.headers["Sunset"] == http_date(add_months(DSP["life-sunset"], 3))
    assert r.headers["Link"] == f'<{life["url"]}/v1/models/sim-chat>; rel="successor-version"'
    assert "Deprecation" not in r.headers


def test_deprecated_is_served_with_deprecation_and_sunset(life):
    r = chat(life, "life-deprecated")
    assert r.status_code == 200, r.text
    assert r.headers["Deprecation"] == f"@{unix(DSP['life-deprecated'])}"
    assert r.headers["Sunset"] == http_date(add_months(DSP["life-deprecated"], 3))
    assert r.headers["Link"].endswith('/v1/models/sim-chat>; rel="successor-version"')


def test_deprecated_headers_on_a_stream_too(life):
    with client(life).chat.completions.with_streaming_response.create(
        model="life-deprecated", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=4,
    ) as resp:
        assert resp.headers.get("Deprecation") == f"@{unix(DSP['life-deprecated'])}"
        assert resp.headers.get("Sunset") == http_date(add_months(DSP["life-deprecated"], 3))
        for _ in resp.iter_lines():
            pass


def test_retired_is_410_with_date_and_successor(life):
    removal = add_months(DSP["life-retired"], 3)
    with pytest.raises(openai.APIStatusError) as e:
        client(life).chat.completions.create(model="life-retired", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 410
    assert e.value.code == "model_retired"
    assert e.value.type == "invalid_request_error"
    assert e.value.param == "model"
    assert str(removal) in e.value.message and "'sim-chat'" in e.value.message
    assert e.value.response.headers["Link"] == f'<{life["url"]}/v1/models/sim-chat>; rel="successor-version"'
    r = httpx.get(f"{life['url']}/v1/models/life-retired", headers={"Authorization": f"Bearer {life['key']}"})
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "model_retired"


def test_not_yet_in_production_is_404(life):
    with pytest.raises(openai.NotFoundError) as e:
        client(life).chat.completions.create(model="life-future", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "model_not_found"


def test_extended_support_is_for_one_tenant_only(life):
    r = chat(life, "life-extended")  # key of tenant "default", which has the extension
    assert r.status_code == 200, r.text
    assert r.headers["Deprecation"] == f"@{unix(DSP['life-extended'])}"
    assert r.headers["Sunset"] == http_date(EXTENDED_UNTIL + dt.timedelta(days=1))
    other = chat(life, "life-extended", key=life["other_key"])
    assert other.status_code == 410, other.text
    assert other.json()["error"]["code"] == "model_retired"


# ---------------------------------------------------------------------------------------------
# /v1/models and /v1/lifecycle


def test_models_list_fields(life):
    listed, day = on_one_day(lambda: client(life).models.list().data)
    models = {m.id: m for m in listed}
    assert {"sim-chat", "life-prod", "life-sunset", "life-deprecated", "life-extended", "life-tiny"} <= set(models)
    assert "life-retired" not in models and "life-future" not in models
    m = models["life-sunset"].model_dump()
    assert m["object"] == "model"
    assert m["created"] == unix(dt.date(2025, 1, 1))
    assert m["owned_by"] == "Lifecycle Lab"
    assert m["lifecycle"] == {
        "phase": "production", "status": "sunset", "in_production": "2025-01-01",
        "end_of_support": str(DSP["life-sunset"]), "retires_at": str(add_months(DSP["life-sunset"], 3)),
        "extended_support_until": None,
        "days_until_retirement": (add_months(DSP["life-sunset"], 3) - day).days, "successor": "sim-chat",
    }
    assert m["capabilities"] == ["chat", "completions"]
    assert m["context_length"] == 8192
    assert m["pricing"]["input_eur_per_mtok"] == "0.9" and m["pricing"]["output_nano_eur_per_token"] == 4000
    assert models["sim-chat"].model_dump()["energy_kwh_per_mtok"] == 0.15
    ext = models["life-extended"].model_dump()["lifecycle"]
    assert ext["retires_at"] == str(EXTENDED_UNTIL + dt.timedelta(days=1))
    one = client(life).models.retrieve("sunny")
    assert one.id == "life-sunset"


def test_public_lifecycle_status_page(life):
    r, day = on_one_day(lambda: httpx.get(f"{life['url']}/v1/lifecycle"))  # no key: public
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["date"] == str(day)
    rows = {row["id"]: row for row in body["data"]}
    assert rows["life-retired"]["status"] == "retired" and rows["life-retired"]["days_left"] == 0
    assert rows["life-sunset"]["days_left"] == (add_months(DSP["life-sunset"], 3) - day).days
    assert rows["life-future"]["status"] == "not_yet_available"
    assert rows["life-extended"]["status"] == "retired"  # extensions are private
    text = httpx.get(f"{life['url']}/v1/lifecycle", params={"format": "text"}).text
    assert "DAYS LEFT" in text and "life-deprecated" in text


def test_cli_models_lifecycle(life):
    out = run_cli(life["bin"], ["models", "--lifecycle", "--config", str(life["config"]), "--date", str(TODAY)],
                  life["data_dir"])
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if l.startswith("life-sunset "))
    assert str((add_months(DSP["life-sunset"], 3) - TODAY).days) in line.split()
    assert "retired" in next(l for l in out.stdout.splitlines() if l.startswith("life-retired "))


# ---------------------------------------------------------------------------------------------
# capability checks, as the openai SDK raises them


def test_capability_errors_name_the_param(life):
    c = client(life)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="life-tiny", messages=[{"role": "user", "content": "x" * 200}], max_tokens=64)
    assert e.value.param == "max_tokens" and e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="life-tiny", messages=[{"role": "user", "content": "hi"}],
                                  tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    assert e.value.param == "tools"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="life-tiny", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    assert e.value.param == "messages[0].content[0].image_url.url"
    with pytest.raises(openai.BadRequestError) as e:
        c.embeddings.create(model="life-tiny", input="hello")
    assert e.value.param == "model"


# ---------------------------------------------------------------------------------------------
# reload (last: it changes the catalog)


def gateway_log(life) -> str:
    g = life["gateway"]
    return g.stdout_path.read_text(errors="replace") + g.stderr_path.read_text(errors="replace")


def test_reload_keeps_the_old_catalog_on_a_broken_file_then_takes_a_good_one(life):
    broken = catalog_entries()
    broken[1] = dict(broken[1], phase="beta")
    write_catalog(life["catalog"], broken)
    deadline = time.monotonic() + WAIT_S
    while "catalog NOT reloaded" not in gateway_log(life):
        assert time.monotonic() < deadline, "the gateway did not report the broken catalog\n" + gateway_log(life)[-3000:]
        time.sleep(0.2)
    assert "models[1].phase" in gateway_log(life)
    assert chat(life, "life-prod").status_code == 200  # the old catalog still serves

    # A valid file with one more model, picked up by the file watch.
    write_catalog(life["catalog"], catalog_entries([model("life-new")]))
    deadline = time.monotonic() + WAIT_S
    while True:
        r = httpx.get(f"{life['url']}/v1/lifecycle")
        if any(row["id"] == "life-new" for row in r.json()["data"]):
            break
        assert time.monotonic() < deadline, "the good catalog was not loaded\n" + gateway_log(life)[-3000:]
        time.sleep(0.2)

    # SIGHUP reloads too (and must not stop the gateway).
    os.kill(life["gateway"].proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + WAIT_S
    while '"SIGHUP"' not in gateway_log(life) and "trigger=SIGHUP" not in gateway_log(life):
        assert life["gateway"].alive(), "SIGHUP stopped the gateway\n" + gateway_log(life)[-3000:]
        assert time.monotonic() < deadline, "no reload logged after SIGHUP\n" + gateway_log(life)[-3000:]
        time.sleep(0.2)
    assert life["gateway"].alive()
