"""Request store (issue 13, item 4; SPEC S8) against the real gateway.

A tenant opts in; chats (streamed and not) with distinctive prompts go through the official openai
SDK. Then: (a) the prompt and the answer are nowhere in the SQLite file (nor its WAL, nor the
gateway's logs) in clear text; (b) the admin API gives them back decrypted, to the operator and the
tenant's own admin only (another tenant's admin gets 404 for the ids and the tenant filter);
(c) after crypto-shredding the bodies are gone and unreadable while the ledger rows stay.
"""

import json
import os
import stat
import uuid

import httpx
import openai
import pytest

from conftest import run_cli, wait_until, connect_db, database_contents


def cli_json(gw, *args):
    done = run_cli(gw.bin, [*args, "--config", str(gw.config_path), "--json"], gw.data_dir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def admin_client(gw, token):
    return httpx.Client(base_url=f"{gw.url}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def admin(gw):
    with admin_client(gw, cli_json(gw, "admin", "token", "create")["token"]) as c:
        yield c


def make_tenant(admin, name, **settings):
    r = admin.post("/tenants", json={"name": name, "settings": {"experimental_opt_in": True, **settings}})
    assert r.status_code == 201, r.text
    t = r.json()
    k = admin.post(f"/tenants/{t['id']}/keys", json={"name": "k"})
    assert k.status_code == 201, k.text
    return t, k.json()["key"]


def sdk(gw, key):
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)


def chat(client, text, stream=False):
    """Returns (request id, the answer's text)."""
    messages = [{"role": "user", "content": text}]
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model="sim-chat", messages=messages, max_tokens=24)
        answer = raw.parse()
        assert raw.headers["x-request-id"] == answer.id
        return answer.id, answer.choices[0].message.content
    rid, parts = None, []
    for chunk in client.chat.completions.create(model="sim-chat", messages=messages, max_tokens=24, stream=True):
        rid = chunk.id
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return rid, "".join(parts)


def database_bytes(gw) -> bytes:
    return database_contents(gw.data_dir)


def test_opted_in_bodies_are_encrypted_readable_scoped_and_shreddable(gw, admin):
    tag = uuid.uuid4().hex[:10]
    vault, vault_key = make_tenant(admin, f"vault-{tag}", store_bodies=True, store_retention_days=7)
    assert vault["settings"]["store_bodies"] is True and vault["settings"]["store_retention_days"] == 7
    peer, peer_key = make_tenant(admin, f"peer-{tag}")
    assert peer["settings"]["store_bodies"] is False  # the default: off
    peer_admin = admin_client(gw, cli_json(gw, "admin", "token", "create", "--tenant", peer["name"])["token"])
    vault_admin = admin_client(gw, cli_json(gw, "admin", "token", "create", "--tenant", vault["name"])["token"])

    plain_prompt, stream_prompt = f"okapi-{tag}-plain-prompt", f"narwhal-{tag}-stream-prompt"
    with sdk(gw, vault_key) as c:
        plain_id, plain_answer = chat(c, plain_prompt)
        stream_id, stream_answer = chat(c, stream_prompt, stream=True)
    with sdk(gw, peer_key) as c:
        peer_id, _ = chat(c, f"pangolin-{tag}-peer-prompt")
    assert plain_answer and stream_answer

    # (b) read back through the admin API: the operator and the tenant's own admin.
    plain = admin.get(f"/requests/{plain_id}").json()
    assert plain["tenant_id"] == vault["id"] and plain["status"] == 200 and plain["body_stored"] is True
    assert plain["bodies"]["state"] == "available" and plain["bodies"]["response_format"] == "json"
    assert plain_prompt in plain["bodies"]["prompt"]
    assert json.loads(plain["bodies"]["response"])["choices"][0]["message"]["content"] == plain_answer
    streamed = vault_admin.get(f"/requests/{stream_id}").json()
    assert streamed["bodies"]["state"] == "available" and streamed["bodies"]["response_format"] == "text"
    assert streamed["bodies"]["response"] == stream_answer
    assert stream_prompt in streamed["bodies"]["prompt"]
    # A tenant that did not opt in: the ledger row is there, no body.
    peer_row = admin.get(f"/requests/{peer_id}").json()
    assert peer_row["bodies"]["state"] == "not_stored" and peer_row["prompt_tokens"] > 0

    # Browse with filters: the tenant's admin sees its two rows, newest first.
    listed = vault_admin.get("/requests", params={"status": "2xx", "model": "sim-chat"}).json()
    assert [r["id"] for r in listed["data"]] == [stream_id, plain_id] and listed["has_more"] is False
    page = admin.get("/requests", params={"tenant": vault["id"], "limit": 1}).json()
    assert [r["id"] for r in page["data"]] == [stream_id] and page["has_more"] is True
    rest = admin.get("/requests", params={"tenant": vault["id"], "limit": 1, "cursor": page["next_cursor"]}).json()
    assert [r["id"] for r in rest["data"]] == [plain_id]
    bad = admin.get("/requests", params={"status": "abc"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"

    # Isolation: another tenant's admin gets 404 — not 403 — for the ids and the tenant filter.
    for rid in (plain_id, stream_id):
        r = peer_admin.get(f"/requests/{rid}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    assert peer_admin.get("/requests", params={"tenant": vault["id"]}).status_code == 404
    assert peer_admin.get("/requests", params={"request_id": plain_id}).json()["data"] == []
    assert {r["id"] for r in peer_admin.get("/requests").json()["data"]} == {peer_id}
    assert peer_admin.post(f"/tenants/{vault['id']}/request-store/shred").status_code == 404

    # (a) not in clear text: the database file, its WAL, the gateway's logs.
    wait_until(lambda: connect_db(gw.db_path).execute(
        "SELECT COUNT(*) FROM request_bodies WHERE tenant_id = ?", (vault["id"],)).fetchone()[0] == 2,
        message="two body rows of the opted-in tenant")
    raw = database_bytes(gw)
    for secret in (plain_prompt, stream_prompt, f"pangolin-{tag}"):
        assert secret.encode() not in raw, f"{secret!r} found in clear text in the database"
    for answer in (plain_answer, stream_answer):
        if len(answer) >= 16:  # short answers could occur by chance in binary data
            assert answer.encode() not in raw, "an answer is in clear text in the database"
    logs = gw.process.stdout_path.read_bytes() + gw.process.stderr_path.read_bytes()
    for secret in (plain_prompt, stream_prompt):
        assert secret.encode() not in logs, "a prompt reached the gateway's log"
    # The master key is a 0600 file, not in the database.
    key_file = gw.data_dir / "request-store.key"
    assert key_file.exists() and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert key_file.read_bytes() not in raw

    # (c) crypto-shred: every data key of the tenant destroyed, bodies deleted, ledger rows kept.
    db = connect_db(gw.db_path)
    before = db.execute("SELECT request_id, prompt FROM request_bodies WHERE tenant_id = ?", (vault["id"],)).fetchall()
    assert len(before) == 2 and all(p for _, p in before)
    shred = vault_admin.post(f"/tenants/{vault['id']}/request-store/shred")
    assert shred.status_code == 200, shred.text
    assert shred.json()["keys_destroyed"] >= 1 and shred.json()["bodies_deleted"] == 2
    keys = db.execute("SELECT wrapped_key, shredded_at FROM request_data_keys WHERE tenant_id = ?", (vault["id"],)).fetchall()
    assert keys and all(w is None and s is not None for w, s in keys)
    assert db.execute("SELECT COUNT(*) FROM request_bodies WHERE tenant_id = ?", (vault["id"],)).fetchone()[0] == 0
    db.close()
    for rid in (plain_id, stream_id):
        gone = admin.get(f"/requests/{rid}").json()
        assert gone["status"] == 200 and gone["completion_tokens"] > 0  # the ledger row stays
        assert gone["bodies"]["state"] == "shredded" and gone["bodies"]["prompt"] is None and gone["bodies"]["response"] is None
    peer_admin.close()
    vault_admin.close()


def test_shredded_ciphertext_stays_unreadable_and_settings_are_checked(gw, admin):
    tag = uuid.uuid4().hex[:10]
    t, key = make_tenant(admin, f"keep-{tag}", store_bodies=True)
    assert t["settings"]["store_retention_days"] is None  # the configured default applies
    bad = admin.patch(f"/tenants/{t['id']}", json={"settings": {"store_bodies": "yes"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "settings.store_bodies"
    with sdk(gw, key) as c:
        rid, _ = chat(c, f"ibex-{tag}")
    assert admin.get(f"/requests/{rid}").json()["bodies"]["state"] == "available"
    # Save the ciphertext, shred, then put the ciphertext back: with its data key destroyed it
    # never opens again (crypto-shredding does not rely on deleting rows).
    db = connect_db(gw.db_path)
    saved = db.execute("SELECT * FROM request_bodies WHERE request_id = ?", (rid,)).fetchone()
    columns = [d[0] for d in db.execute("SELECT * FROM request_bodies LIMIT 0").description]
    assert saved is not None
    assert admin.post(f"/tenants/{t['id']}/request-store/shred").status_code == 200
    db.execute(f"INSERT INTO request_bodies ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", saved)
    db.commit()
    db.close()
    restored = admin.get(f"/requests/{rid}").json()
    assert restored["bodies"]["state"] == "shredded" and restored["bodies"]["prompt"] is None
    # Opting out stops capture; new requests have no body.
    assert admin.patch(f"/tenants/{t['id']}", json={"settings": {"store_bodies": False}}).status_code == 200
    with sdk(gw, key) as c:
        later, _ = chat(c, f"ibex-{tag}-later")
    wait_until(lambda: admin.get(f"/requests/{later}").status_code == 200, message="the ledger row of the later request")
    assert admin.get(f"/requests/{later}").json()["bodies"]["state"] == "not_stored"


def test_cli_opts_in_lists_shows_and_shreds(gw, admin):
    tag = uuid.uuid4().hex[:10]
    t, key = make_tenant(admin, f"cli-{tag}")
    done = run_cli(gw.bin, ["tenant", "update", t["name"], "--store-bodies", "true", "--store-retention-days", "3",
                            "--config", str(gw.config_path)], gw.data_dir)
    assert done.returncode == 0, done.stderr
    settings = admin.get(f"/tenants/{t['id']}").json()["settings"]
    assert settings["store_bodies"] is True and settings["store_retention_days"] == 3
    wait_until(lambda: _stores(gw, admin, key, f"heron-{tag}"), interval=0.5, message="a request of the opted-in tenant with its body stored")
    listed = cli_json(gw, "requests", "list", "--tenant", t["name"])
    assert listed["data"] and all(r["tenant_id"] == t["id"] for r in listed["data"])
    rid = listed["data"][0]["id"]
    shown = cli_json(gw, "requests", "show", rid)
    assert shown["bodies"]["state"] == "available" and f"heron-{tag}" in shown["bodies"]["prompt"]
    done = run_cli(gw.bin, ["requests", "shred", "--tenant", t["name"], "--config", str(gw.config_path)], gw.data_dir)
    assert done.returncode == 0 and "data keys destroyed" in done.stdout, done.stderr
    assert admin.get(f"/requests/{rid}").json()["bodies"]["state"] == "shredded"
    bad = run_cli(gw.bin, ["requests", "list", "--status", "abc", "--config", str(gw.config_path)], gw.data_dir)
    assert bad.returncode == 2 and "--status" in bad.stderr


def _stores(gw, admin, key, text) -> bool:
    """Sends one chat; true once its body is stored (the CLI changed the tenant in the database:
    the gateway's key cache sees it within a second)."""
    with sdk(gw, key) as c:
        rid, _ = chat(c, text)
    return admin.get(f"/requests/{rid}").json()["bodies"]["state"] == "available"
