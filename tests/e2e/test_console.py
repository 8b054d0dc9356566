"""The web console (issue 13 item 5) in a real browser: Debian's headless Chromium driven by
Selenium through Debian's chromedriver (both installed by scripts/setup-engine.sh; nothing is
downloaded at run time). Real gateway, real keys, traffic through the openai SDK; the tests read
the DOM and compare its numbers with `/v1/usage` and the ledger for the same tenant and window.

Screenshots go to bench/out/console/ (or $LLMAAS_CONSOLE_SCREENSHOTS); the path is printed."""

from __future__ import annotations

import calendar
import json
import os
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import REPO, WAIT_S, run_cli, wait_until, connect_db

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("LLMAAS_CONSOLE_SCREENSHOTS", REPO / "bench" / "out" / "console"))
MSG = [{"role": "user", "content": "hello"}]


def cli_json(gw, *args):
    done = run_cli(gw.bin, [*args, "--config", str(gw.config_path), "--json"], gw.data_dir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def browser(javascript: bool = True) -> webdriver.Chrome:
    for needed in (CHROMIUM, CHROMEDRIVER):
        if not Path(needed).exists():
            pytest.fail(f"{needed} is missing: run scripts/setup-browser.sh (apt: chromium chromium-driver)", pytrace=False)
    o = Options()
    o.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000",
                "--disable-extensions", "--no-first-run", "--password-store=basic"):
        o.add_argument(arg)
    if not javascript:
        o.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=o)
    d.set_page_load_timeout(60)
    return d


def shot(driver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"console-{name}.png"
    # The whole page: grow the window to the document's height first.
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 800)") if driver.execute_script("return !!document.body") else 1000
    driver.set_window_size(1400, min(int(height) + 40, 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    print(f"screenshot: {path}")
    return path


def submit(driver, button) -> None:
    """Clicks a form's button and waits for the answer page to replace this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, WAIT_S).until(lambda _: replaced(old))


def replaced(element) -> bool:
    """The element is no longer in the page. Chromium says so with a stale-element error or, when
    asked during the navigation, with "Node with given id does not belong to the document"."""
    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" in str(e):
            return True
        raise


def unswapped(read):
    """Runs `read` again when console.js swapped the live part of the page under it (the elements
    it had found are then stale): a read of a live page sees one version of it."""
    for _ in range(20):
        try:
            return read()
        except StaleElementReferenceException:
            continue
        except WebDriverException as e:
            if "does not belong to the document" not in str(e):
                raise
    return read()


def text(driver, css: str) -> str:
    def read():
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if not found:
            body = driver.find_element(By.TAG_NAME, "body").text if driver.find_elements(By.TAG_NAME, "body") else driver.page_source
            pytest.fail(f"no {css} on {driver.current_url}; the page says:\n{body[:2000]}")
        return found[0].text.strip()
    return unswapped(read)


def login(driver, gw, token: str) -> None:
    driver.get(f"{gw.url}/console/login")
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]"))
    wait_until(lambda: driver.current_url.rstrip("/").endswith("/console") or "/console?" in driver.current_url,
               message=f"the overview after login (at {driver.current_url})")


def month_start_ms() -> int:
    t = time.gmtime()
    return calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) * 1000


def usage_json(gw, key: str, group_by: str = "model") -> dict:
    r = httpx.get(f"{gw.url}/v1/usage", params={"group_by": group_by}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    # Numbers as their text: the console shows them as text.
    return json.loads(r.text, parse_float=str, parse_int=str)


@pytest.fixture(scope="module")
def world(gw):
    """Two tenants with a key each, a tenant admin token for the first and an operator token;
    traffic for both through the openai SDK."""
    suffix = uuid.uuid4().hex[:6]
    op = cli_json(gw, "admin", "token", "create")["token"]
    admin = httpx.Client(base_url=f"{gw.url}/admin/v1", headers={"Authorization": f"Bearer {op}"}, timeout=30)
    tenants = {}
    for name in (f"console-a-{suffix}", f"console-b-{suffix}"):
        r = admin.post("/tenants", json={"name": name})
        assert r.status_code == 201, r.text
        t = r.json()
        k = admin.post(f"/tenants/{t['id']}/keys", json={"name": f"{name}-main"})
        assert k.status_code == 201, k.text
        tenants[name] = {"id": t["id"], "name": name, "key": k.json()["key"], "key_id": k.json()["id"]}
    a, b = tenants[f"console-a-{suffix}"], tenants[f"console-b-{suffix}"]
    a["admin"] = cli_json(gw, "admin", "token", "create", "--tenant", a["name"])["token"]

    ca = openai.OpenAI(base_url=gw.base_url, api_key=a["key"], max_retries=0, timeout=60.0)
    for i in range(6):
        ca.chat.completions.create(model="sim-chat", messages=[{"role": "system", "content": "be brief"}] + MSG, max_tokens=16)
    stream = ca.chat.completions.create(model="sim-chat", messages=MSG, max_tokens=16, stream=True,
                                        stream_options={"include_usage": True})
    for _ in stream:
        pass
    ca.chat.completions.create(model="smollm2:135m", messages=MSG, max_tokens=8)
    with pytest.raises(openai.NotFoundError):
        ca.chat.completions.create(model="no-such-model", messages=MSG, max_tokens=8)
    cb = openai.OpenAI(base_url=gw.base_url, api_key=b["key"], max_retries=0, timeout=60.0)
    for _ in range(3):
        cb.chat.completions.create(model="sim-chat", messages=MSG, max_tokens=7)
    wait_until(lambda: len(gw.request_rows("tenant_id = ?", (a["id"],))) >= 9, message="tenant a's ledger rows")
    wait_until(lambda: len(gw.request_rows("tenant_id = ?", (b["id"],))) >= 3, message="tenant b's ledger rows")
    print(f"console screenshots: {SHOTS}")
    yield {"a": a, "b": b, "op": op, "admin": admin, "openai_a": ca}
    admin.close()


@pytest.fixture(scope="module")
def tenant_browser(gw, world):
    d = browser()
    login(d, gw, world["a"]["admin"])
    yield d
    d.quit()


@pytest.fixture(scope="module")
def operator_browser(gw, world):
    d = browser()
    login(d, gw, world["op"])
    yield d
    d.quit()


def test_login_form_refuses_a_wrong_token_and_keeps_no_cookie(gw, world):
    d = browser()
    try:
        d.get(f"{gw.url}/console")
        assert d.current_url.endswith("/console/login"), "not logged in: the login form"
        shot(d, "login")
        d.find_element(By.ID, "token").send_keys("adm-wrongwrongwr-notavalidsecret")
        submit(d, d.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]"))
        assert "Invalid admin token" in text(d, "#login-error")
        assert d.get_cookie("llmaas_console") is None
        # An API key is not an admin token.
        d.find_element(By.ID, "token").send_keys(world["a"]["key"])
        submit(d, d.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]"))
        assert "Invalid admin token" in text(d, "#login-error")
    finally:
        d.quit()
    r = httpx.post(f"{gw.url}/console/login", data={"token": "adm-wrongwrongwr-x"}, timeout=30)
    assert r.status_code in (401, 429)  # 429 once this address has failed too often (the auth throttle)


def test_login_sets_an_http_only_strict_cookie(gw, world, tenant_browser):
    c = tenant_browser.get_cookie("llmaas_console")
    assert c is not None
    assert c["httpOnly"] is True and c["sameSite"] == "Strict" and c["path"] == "/console"
    assert tenant_browser.execute_script("return document.cookie") == "", "HttpOnly: no script can read it"


def test_overview_numbers_equal_v1_usage_and_the_ledger(gw, world, tenant_browser):
    a = world["a"]
    d = tenant_browser
    d.get(f"{gw.url}/console")
    usage = usage_json(gw, a["key"])
    totals = usage["totals"]
    assert text(d, "#requests") == totals["requests"]
    assert text(d, "#rejected") == totals["rejected_requests"]
    assert text(d, "#input-tokens") == totals["input_tokens"]
    assert text(d, "#output-tokens") == totals["output_tokens"]
    assert text(d, "#reasoning-tokens") == totals["reasoning_tokens"]
    assert text(d, "#cost") == totals["cost_eur"]
    assert text(d, "#energy") == totals["energy_wh"]
    assert text(d, "#balance") == usage["balance_eur"]
    assert text(d, "#month-spend") == usage["month_spend_eur"]
    # The ledger itself (the same tenant and window: this month, UTC).
    rows = gw.request_rows("tenant_id = ? AND created_at >= ?", (a["id"], month_start_ms()))
    assert int(text(d, "#requests")) + int(text(d, "#rejected")) == len(rows)
    assert int(text(d, "#input-tokens")) == sum(r["prompt_tokens"] for r in rows)
    assert int(text(d, "#output-tokens")) == sum(r["completion_tokens"] for r in rows)
    assert int(text(d, "#system-tokens")) == sum(r["system_tokens"] or 0 for r in rows)
    assert int(text(d, "#system-tokens")) > 0, "the system message was counted"
    assert int(text(d, "#rejected")) >= 1, "the unknown model was rejected"
    assert world["b"]["name"] not in d.page_source
    shot(d, "overview")


def test_usage_page_per_model_and_per_key_equal_v1_usage(gw, world, tenant_browser):
    a = world["a"]
    d = tenant_browser
    d.get(f"{gw.url}/console/usage")
    for group_by, table in (("model", "usage-by-model"), ("key", "usage-by-key")):
        usage = usage_json(gw, a["key"], group_by)
        assert usage["data"], usage
        for g in usage["data"]:
            row = d.find_element(By.CSS_SELECTOR, f"#{table} tbody tr[data-group='{g[group_by]}']")
            cells = [c.text.strip() for c in row.find_elements(By.CSS_SELECTOR, "td.n")]
            # requests, rejected, input, system, output, reasoning, cost, energy
            assert cells[0] == g["requests"] and cells[1] == g["rejected_requests"], (group_by, g, cells)
            assert cells[2] == g["input_tokens"] and cells[4] == g["output_tokens"] and cells[5] == g["reasoning_tokens"]
            assert cells[6] == g["cost_eur"] and cells[7] == g["energy_wh"]
    assert d.find_element(By.CSS_SELECTOR, f"#usage-by-key tr[data-group='{a['key_id']}']")
    assert world["b"]["key_id"] not in d.page_source
    shot(d, "usage")


def rolled_up(gw, tenant_id: str, model: str) -> int:
    """Requests of a tenant's model in the minute rollups (what the rollup pass wrote)."""
    with connect_db(gw.data_dir, read_only=True, timeout=30) as conn:
        return conn.execute("SELECT COALESCE(SUM(requests), 0) FROM rollups WHERE resolution = 60000 AND tenant_id = ? AND model = ?",
                            (tenant_id, model)).fetchone()[0]


def test_charts_per_model_over_each_window(gw, world, tenant_browser):
    d = tenant_browser
    # The charts read the rollups (the minutes not rolled up yet come from the ledger): wait until
    # the rollup pass (every second, config in conftest) has rolled up all of this tenant's traffic,
    # so the counts below are the rollups' own.
    ledger = len(gw.request_rows("tenant_id = ? AND model = 'sim-chat'", (world["a"]["id"],)))
    wait_until(lambda: rolled_up(gw, world["a"]["id"], "sim-chat") == ledger, timeout=150,
               message=lambda: f"the rollups to hold the {ledger} ledger rows (have {rolled_up(gw, world['a']['id'], 'sim-chat')})")
    for window in ("1h", "24h", "7d"):
        d.get(f"{gw.url}/console/charts?window={window}")
        models = [s.get_attribute("data-model") for s in d.find_elements(By.CSS_SELECTOR, "section.model")]
        assert "sim-chat" in models and "smollm2:135m" in models, models
        section = d.find_element(By.CSS_SELECTOR, "section.model[data-model='sim-chat']")
        svgs = section.find_elements(By.CSS_SELECTOR, "svg.chart-svg")
        assert len(svgs) == 3
        titles = [s.find_element(By.TAG_NAME, "title").get_attribute("textContent") for s in svgs]
        assert titles == [f"sim-chat latency ({window})", f"sim-chat time to first token ({window})", f"sim-chat throughput ({window})"]
        # Data drawn: a line (or a dot for a single point) in each chart.
        for s in svgs:
            assert s.find_elements(By.CSS_SELECTOR, "polyline.line, circle.dot"), window
        # The request count matches the ledger for this window's model.
        count = int(section.find_element(By.CSS_SELECTOR, "h2 .sub").text.split()[0])
        since = int(time.time() * 1000) - {"1h": 3_600_000, "24h": 86_400_000, "7d": 604_800_000}[window] - 120_000
        rows = gw.request_rows("tenant_id = ? AND model = 'sim-chat' AND created_at >= ?", (world["a"]["id"], since))
        assert count == len(rows)
        if window == "1h":
            shot(d, "charts")


def test_key_forms_create_rotate_revoke(gw, world, tenant_browser):
    d = tenant_browser
    d.get(f"{gw.url}/console/keys")
    name = f"browser-{uuid.uuid4().hex[:4]}"
    d.find_element(By.ID, "key-name").send_keys(name)
    d.find_element(By.CSS_SELECTOR, "#create-key input[name=models][value='sim-chat']").click()
    d.find_element(By.CSS_SELECTOR, "#create-key input[name=endpoints][value='chat']").click()
    submit(d, d.find_element(By.ID, "create-key-submit"))
    secret = text(d, "#new-secret")
    assert secret.startswith("sk-llm-")
    shot(d, "keys")
    c = openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0, timeout=60.0)
    assert c.chat.completions.create(model="sim-chat", messages=MSG, max_tokens=4).choices
    with pytest.raises((openai.PermissionDeniedError, openai.NotFoundError)):
        c.chat.completions.create(model="smollm2:135m", messages=MSG, max_tokens=4)
    with pytest.raises((openai.PermissionDeniedError, openai.NotFoundError)):
        c.completions.create(model="sim-chat", prompt="hi", max_tokens=4)
    # Reloaded, the page does not show the secret again.
    d.get(f"{gw.url}/console/keys")
    assert secret not in d.page_source
    key_id = secret[len("sk-llm-"):].split("-")[0]
    row = d.find_element(By.CSS_SELECTOR, f"#keys tr[data-key='{key_id}']")
    assert name in row.text and "active" in row.text
    # Rotate: the successor is shown once and works.
    row.find_element(By.CSS_SELECTOR, "input[name=grace_days]").send_keys("1")
    submit(d, row.find_element(By.CSS_SELECTOR, "button.rotate"))
    successor = text(d, "#new-secret")
    assert successor.startswith("sk-llm-") and successor != secret
    assert "Successor" in text(d, "#secret-h")
    c2 = openai.OpenAI(base_url=gw.base_url, api_key=successor, max_retries=0, timeout=60.0)
    assert c2.chat.completions.create(model="sim-chat", messages=MSG, max_tokens=4).choices
    assert "rotated" in d.find_element(By.CSS_SELECTOR, f"#keys tr[data-key='{key_id}']").text
    # Revoke the successor: it stops working at once.
    successor_id = successor[len("sk-llm-"):].split("-")[0]
    submit(d, d.find_element(By.CSS_SELECTOR, f"#keys tr[data-key='{successor_id}'] button.revoke"))
    assert successor_id in text(d, "#notice")
    assert "revoked" in d.find_element(By.CSS_SELECTOR, f"#keys tr[data-key='{successor_id}']").text

    def refused():
        try:
            c2.chat.completions.create(model="sim-chat", messages=MSG, max_tokens=4)
            return False
        except openai.AuthenticationError:
            return True
    wait_until(refused, message="the revoked successor to be refused")


def test_lifecycle_table_equals_v1_lifecycle(gw, world, tenant_browser):
    d = tenant_browser
    d.get(f"{gw.url}/console/lifecycle")
    report = httpx.get(f"{gw.url}/v1/lifecycle", timeout=30).json()
    for m in report["data"]:
        row = d.find_element(By.CSS_SELECTOR, f"#lifecycle tr[data-model='{m['id']}']")
        cells = [c.text.strip() for c in row.find_elements(By.CSS_SELECTOR, "td")]
        assert cells[1] == m["phase"] and cells[4] == m["retires_at"]
        assert cells[5] == ("retired" if m["days_left"] == 0 else str(m["days_left"]))
        assert cells[6] == (m["successor"] or "–")
    shot(d, "lifecycle")


def test_backends_for_operators_only(gw, world, tenant_browser, operator_browser):
    t = tenant_browser
    t.get(f"{gw.url}/console")
    assert not t.find_elements(By.CSS_SELECTOR, "nav a[href^='/console/backends']"), "no link for a tenant admin"
    t.get(f"{gw.url}/console/backends")
    assert "does not exist" in text(t, "#error-message")
    o = operator_browser
    o.get(f"{gw.url}/console/backends")
    report = httpx.get(f"{gw.url}/admin/v1/backends", headers={"Authorization": f"Bearer {world['op']}"}, timeout=30).json()
    for b in report["data"]:
        row = o.find_element(By.CSS_SELECTOR, f"#backends tr[data-backend='{b['name']}']")
        assert row.find_element(By.CSS_SELECTOR, "td.breaker").text.strip() in ("healthy", "degraded", "open", "half_open")  # the breaker labels of GET /admin/v1/backends (its state may move between the two reads)
    assert o.find_element(By.CSS_SELECTOR, "#backends tr[data-backend='dead-1']")
    shot(o, "backends")


def test_operator_picks_a_tenant(gw, world, operator_browser):
    o = operator_browser
    b = world["b"]
    o.get(f"{gw.url}/console/usage")
    Select(o.find_element(By.ID, "tenant-picker")).select_by_visible_text(b["name"])
    submit(o, o.find_element(By.CSS_SELECTOR, "form.picker button"))
    assert f"tenant={b['id']}" in o.current_url
    usage = usage_json(gw, b["key"])
    assert text(o, "#usage-by-model tfoot td.n") == usage["totals"]["requests"]


def test_a_tenant_admin_never_sees_another_tenant(gw, world, tenant_browser):
    """Every page and every form, with the other tenant's ids: 404, none of its data, nothing changed."""
    d = tenant_browser
    a, b = world["a"], world["b"]
    for path in ("/console", "/console/usage", "/console/charts", "/console/alerts", "/console/requests", "/console/keys", "/console/lifecycle", "/console/backends"):
        d.get(f"{gw.url}{path}?tenant={b['id']}")
        assert "does not exist" in text(d, "#error-message"), path
        assert b["name"] not in d.page_source and b["key_id"] not in d.page_source
    # The forms, pointed at the other tenant's key and tenant (the DOM edited as an attacker would).
    d.get(f"{gw.url}/console/keys")
    d.execute_script("document.querySelector('#keys form.inline').setAttribute('action', arguments[0])",
                     f"/console/keys/{b['key_id']}/revoke")
    submit(d, d.find_element(By.CSS_SELECTOR, "#keys form.inline button"))
    assert "does not exist" in text(d, "#error-message")
    d.get(f"{gw.url}/console/keys")
    d.execute_script("document.querySelector('#keys form.inline').setAttribute('action', arguments[0])",
                     f"/console/keys/{b['key_id']}/rotate")
    submit(d, d.find_element(By.CSS_SELECTOR, "#keys form.inline button"))
    assert "does not exist" in text(d, "#error-message")
    assert "sk-llm-" not in d.page_source
    d.get(f"{gw.url}/console/keys")
    d.execute_script("document.querySelector('#create-key input[name=tenant]').value = arguments[0]", b["id"])
    d.find_element(By.ID, "key-name").send_keys("intruder")
    submit(d, d.find_element(By.ID, "create-key-submit"))
    assert "does not exist" in text(d, "#error-message")
    keys = world["admin"].get(f"/tenants/{b['id']}/keys").json()["data"]
    assert [k["name"] for k in keys] == [f"{b['name']}-main"] and keys[0]["state"] == "active"
    # Same with plain HTTP and the browser's session cookie: the statuses are 404.
    cookie = d.get_cookie("llmaas_console")["value"]
    csrf = d.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    with httpx.Client(base_url=gw.url, cookies={"llmaas_console": cookie}, timeout=30, follow_redirects=False) as h:
        for path in ("/console", "/console/usage", "/console/charts", "/console/alerts", "/console/requests", "/console/keys", "/console/lifecycle", "/console/backends"):
            assert h.get(path, params={"tenant": b["id"]}).status_code == 404, path
        assert h.post(f"/console/keys/{b['key_id']}/revoke", data={"csrf": csrf}).status_code == 404
        assert h.post(f"/console/keys/{b['key_id']}/rotate", data={"csrf": csrf}).status_code == 404
        assert h.post("/console/keys/create", data={"csrf": csrf, "tenant": b["id"], "name": "x"}).status_code == 404
        # The other tenant's request: 404, and filtering by its id or key shows nothing.
        b_request = gw.request_rows("tenant_id = ?", (b["id"],))[0]["id"]
        r = h.get(f"/console/requests/{b_request}")
        assert r.status_code == 404 and "hello" not in r.text
        for params in ({"request_id": b_request}, {"key": b["key_id"]}):
            r = h.get("/console/requests", params=params)
            assert r.status_code == 200 and f'data-request="{b_request}"' not in r.text and 'id="no-requests"' in r.text
        assert h.post("/console/requests/shred", data={"csrf": csrf, "tenant": b["id"], "confirm": "yes"}).status_code == 404
        assert h.post("/console/requests/settings", data={"csrf": csrf, "tenant": b["id"], "store_bodies": "on"}).status_code == 404
        assert h.post("/console/alerts/rules", data={"csrf": csrf, "tenant": b["id"], "kind": "error_rate", "threshold": "1"}).status_code == 404
        assert h.post(f"/console/keys/{a['key_id']}/revoke", data={"csrf": "wrong"}).status_code == 403
        # The right token from another site's page: refused by Origin.
        assert h.post(f"/console/keys/{a['key_id']}/revoke", data={"csrf": csrf},
                      headers={"Origin": "http://evil.example"}).status_code == 403
        r = h.get("/console")
        assert r.status_code == 200
        assert "no-store" in r.headers["cache-control"] and r.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in r.headers["content-security-policy"]


def test_pages_refresh_live(gw, world, tenant_browser):
    d = tenant_browser
    d.get(f"{gw.url}/console")
    before = int(text(d, "#requests"))
    world["openai_a"].chat.completions.create(model="sim-chat", messages=MSG, max_tokens=4)
    # console.js polls every few seconds and swaps the page's live part: no reload.
    wait_until(lambda: int(text(d, "#requests")) > before, message="the overview to refresh itself")
    assert d.find_element(By.ID, "main").get_attribute("data-refreshed")


def test_works_without_javascript(gw, world):
    d = browser(javascript=False)
    try:
        login(d, gw, world["a"]["admin"])
        assert text(d, "#requests").isdigit()
        d.get(f"{gw.url}/console/charts")
        assert d.find_elements(By.CSS_SELECTOR, "svg.chart-svg")
        d.get(f"{gw.url}/console/keys")
        d.find_element(By.ID, "key-name").send_keys("nojs")
        submit(d, d.find_element(By.ID, "create-key-submit"))
        assert text(d, "#new-secret").startswith("sk-llm-")
        submit(d, d.find_element(By.ID, "logout"))
        assert d.current_url.endswith("/console/login")
        d.get(f"{gw.url}/console/keys")
        assert d.current_url.endswith("/console/login"), "logged out: back to the form"
    finally:
        d.quit()


def test_alerts_page_shows_an_incident(gw, world, tenant_browser, operator_browser):
    """A tenant admin creates a rule with the form (5xx rate of down-model above 0 % for one period),
    a request to the dead backend fires it (alerts evaluated every second, conftest), and the page
    lists the active incident; the operator sees it among every tenant's."""
    d = tenant_browser
    d.get(f"{gw.url}/console/alerts")
    # A refused rule: the API's message on the page, nothing created.
    Select(d.find_element(By.ID, "rule-kind")).select_by_value("latency_p95")
    submit(d, d.find_element(By.ID, "create-rule-submit"))
    assert "Invalid 'threshold'" in text(d, "#form-error")
    assert not d.find_elements(By.CSS_SELECTOR, "#rules tr[data-rule]")
    d.find_element(By.ID, "rule-name").send_keys("down-model errors")
    Select(d.find_element(By.ID, "rule-kind")).select_by_value("error_rate")
    d.find_element(By.ID, "rule-model").send_keys("down-model")
    d.find_element(By.ID, "rule-threshold").send_keys("0")
    d.find_element(By.ID, "rule-periods").send_keys("1")
    submit(d, d.find_element(By.ID, "create-rule-submit"))
    assert "is created" in text(d, "#notice")
    rule_id = unswapped(lambda: d.find_element(By.CSS_SELECTOR, "#rules tr[data-rule]").get_attribute("data-rule"))
    with pytest.raises(openai.APIStatusError) as e:
        world["openai_a"].chat.completions.create(model="down-model", messages=MSG, max_tokens=4, timeout=30)
    assert e.value.status_code in (502, 503)

    def incident():
        d.get(f"{gw.url}/console/alerts")
        rows = unswapped(lambda: [(r.get_attribute("data-incident"), r.text) for r in
                                  d.find_elements(By.CSS_SELECTOR, "#active-incidents tr[data-incident]")])
        return rows[0] if rows else None

    incident_id, row_text = wait_until(incident, message="the incident on the alerts page")
    assert "5xx error rate of model down-model is 100 %" in row_text
    assert unswapped(lambda: d.find_element(By.CSS_SELECTOR, f"#incident-history tr[data-incident='{incident_id}']")
                     .get_attribute("data-state")) == "active"
    shot(d, "alerts")
    d.get(f"{gw.url}/console/alerts/incidents/{incident_id}")
    assert text(d, "#incident-state") in ("active", "resolved")
    # The operator: every tenant's incidents by default.
    o = operator_browser
    o.get(f"{gw.url}/console/alerts")
    assert o.find_elements(By.CSS_SELECTOR, f"#incident-history tr[data-incident='{incident_id}']")
    assert o.find_elements(By.CSS_SELECTOR, f"#rules tr[data-rule='{rule_id}']")
    # Deleted with its form: gone from the list.
    d.get(f"{gw.url}/console/alerts")
    unswapped(lambda: submit(d, d.find_element(By.CSS_SELECTOR, f"#rules tr[data-rule='{rule_id}'] button.delete-rule")))
    assert "is deleted" in text(d, "#notice")
    assert not d.find_elements(By.CSS_SELECTOR, f"#rules tr[data-rule='{rule_id}']")


def test_request_store_lists_shows_bodies_and_shreds(gw, world, tenant_browser):
    d = tenant_browser
    a = world["a"]
    # Every request of the tenant (made through the openai SDK) is listed, newest first, as in the ledger.
    d.get(f"{gw.url}/console/requests?limit=500")
    listed = [r.get_attribute("data-request") for r in d.find_elements(By.CSS_SELECTOR, "#requests tr[data-request]")]
    ledger = [r["id"] for r in gw.request_rows("tenant_id = ? ORDER BY created_at DESC, id DESC", (a["id"],))]
    assert listed == ledger and len(listed) >= 9
    assert world["b"]["key_id"] not in d.page_source
    # The filters: by model.
    d.find_element(By.ID, "filter-model").send_keys("smollm2:135m")
    submit(d, d.find_element(By.ID, "filter-submit"))
    models = {r.find_elements(By.TAG_NAME, "td")[2].text for r in d.find_elements(By.CSS_SELECTOR, "#requests tr[data-request]")}
    assert models == {"smollm2:135m"}

    # Opt in (the tenant admin's own setting), then a request through the SDK.
    d.get(f"{gw.url}/console/requests")
    box = d.find_element(By.ID, "store-bodies")
    assert not box.is_selected(), "body storage is off by default"
    box.click()
    d.find_element(By.ID, "retention-days").send_keys("3")
    submit(d, d.find_element(By.ID, "store-settings-submit"))
    assert "are stored from now on" in text(d, "#notice")
    prompt = f"console <b>store</b> check {uuid.uuid4().hex[:8]}"
    raw = world["openai_a"].chat.completions.with_raw_response.create(
        model="sim-chat", messages=[{"role": "user", "content": prompt}], max_tokens=12)
    request_id = raw.headers["x-request-id"]
    answer = raw.parse().choices[0].message.content
    d.get(f"{gw.url}/console/requests")
    row = d.find_element(By.CSS_SELECTOR, f"#requests tr[data-request='{request_id}']")
    assert row.find_element(By.CSS_SELECTOR, "td.body-state").text == "stored"
    shot(d, "requests")
    submit(d, row.find_element(By.CSS_SELECTOR, f"a[href='/console/requests/{request_id}']"))
    assert text(d, "#body-state") == "available"
    # Shown as text (escaped), never as markup.
    assert prompt in text(d, "#prompt")
    assert not d.find_elements(By.CSS_SELECTOR, "#prompt b")
    assert answer and answer in text(d, "#response")
    shot(d, "request-detail")
    # The shred: a confirmation first, then the bodies are gone; the ledger row stays.
    d.get(f"{gw.url}/console/requests")
    submit(d, d.find_element(By.ID, "shred-submit"))
    submit(d, d.find_element(By.ID, "shred-confirm-submit"))
    assert "data keys destroyed" in text(d, "#notice")
    d.get(f"{gw.url}/console/requests/{request_id}")
    assert text(d, "#body-state") == "shredded"
    assert prompt not in d.page_source
    assert text(d, "#request-status").startswith("200")
