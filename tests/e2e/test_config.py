"""Start-up with a bad configuration must stop with a message naming the field."""

import os
import subprocess

import pytest

from conftest import E2E_DATABASE_URL, ON_POSTGRES, REPO, cli_env, database_exists, free_port


def test_unknown_backend_kind_stops_startup(llmaas_bin, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "models:\n"
        "  - id: sim-chat\n"
        "    developer: LLMaaS EngineSim\n"
        "    phase: experimental\n"
        "    in_production: 2025-01-01\n"
        "    end_of_support: 2030-12-31\n"
        "    capabilities: [chat]\n"
        "    context_length: 4096\n"
    )
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        f"data_dir: {data_dir}\n"
        f"catalog: {catalog}\n"
        "backends:\n"
        "  - name: weird-1\n"
        "    kind: nosuch\n"
        f"    url: http://127.0.0.1:{free_port()}\n"
        '    models: { "sim-chat": "sim-chat" }\n'
    )
    try:
        done = subprocess.run(
            [str(llmaas_bin), "serve", "--config", str(config)],
            env=cli_env(data_dir),
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"`llmaas serve` with backends[0].kind: nosuch did not exit; stderr: {e.stderr!r}"
        )
    assert done.returncode != 0, f"exited 0; stdout: {done.stdout!r}"
    assert done.returncode == 2, f"exit code {done.returncode} (the contract says 2)"
    assert "kind" in done.stderr, f"stderr does not name the field: {done.stderr!r}"


def test_migrate_is_idempotent_and_env_overrides_the_file(llmaas_bin, tmp_path):
    """`llmaas migrate` applies the schema once; LLMAAS_DATA_DIR and LLMAAS_LISTEN win over the file."""
    file_data = tmp_path / "from-file"
    env_data = tmp_path / "from-env"
    config = tmp_path / "c.yaml"
    config.write_text(f"listen: 127.0.0.1:1\ndata_dir: {file_data}\ncatalog: {REPO / 'deploy/catalog.yaml'}\n")
    env = cli_env(env_data)
    first = subprocess.run([str(llmaas_bin), "migrate", "--config", str(config)], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "applied migrations 1" in first.stdout
    again = subprocess.run([str(llmaas_bin), "migrate", "--config", str(config)], env=env, capture_output=True, text=True, timeout=60)
    assert "up to date" in again.stdout
    assert (database_exists(env_data) if ON_POSTGRES else (env_data / "llmaas.sqlite").exists()) and not file_data.exists()

    port = free_port()
    proc = subprocess.Popen([str(llmaas_bin), "serve", "--config", str(config)], env={**env, "LLMAAS_LISTEN": f"127.0.0.1:{port}"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        for line in proc.stdout:
            if "listening on" in line:
                break
        assert f"127.0.0.1:{port}" in line, line
        import httpx
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_prepaid_tier_without_credit_stops_startup(llmaas_bin, tmp_path):
    """A tier said to be prepaid but given no upfront credit would refuse every request: a config error."""
    data_dir = tmp_path / "data"
    config = tmp_path / "c.yaml"
    config.write_text(f"listen: 127.0.0.1:{free_port()}\ndata_dir: {data_dir}\ncatalog: {REPO / 'deploy/catalog.yaml'}\n"
                      "tiers:\n  gold: { requests_per_minute: 10, prepaid: true }\n")
    done = subprocess.run([str(llmaas_bin), "serve", "--config", str(config)], env=cli_env(data_dir), cwd=str(REPO),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, f"exit code {done.returncode}; stdout {done.stdout!r}; stderr {done.stderr!r}"
    assert "tiers.gold.upfront_credit_eur" in done.stderr, done.stderr


# -- database: (issue 14) a database that cannot be used stops start-up, naming the field -----


def _serve_with_database(llmaas_bin, tmp_path, database_yaml: str, env_url: str | None = None):
    data_dir = tmp_path / "data"
    config = tmp_path / "db.yaml"
    config.write_text(f"listen: 127.0.0.1:{free_port()}\ndata_dir: {data_dir}\ncatalog: {REPO / 'deploy/catalog.yaml'}\n{database_yaml}")
    env = cli_env(data_dir)
    env.pop("LLMAAS_DATABASE_URL", None)
    if env_url is not None:
        env["LLMAAS_DATABASE_URL"] = env_url
    serve = subprocess.run([str(llmaas_bin), "serve", "--config", str(config)], env=env, cwd=str(REPO),
                           capture_output=True, text=True, timeout=60)
    migrate = subprocess.run([str(llmaas_bin), "migrate", "--config", str(config)], env=env, cwd=str(REPO),
                             capture_output=True, text=True, timeout=60)
    return serve, migrate


@pytest.mark.parametrize("database_yaml,field,says", [
    ("database: { url: 'mysql://u:hunter2@127.0.0.1/llmaas' }\n", "database.url", "postgres://"),
    ("database: { url: 'postgres://u:hunter2@127.0.0.1:5432' }\n", "database.url", "database"),
    ("database: { url: 'postgres://hunter2@127.0.0.1:5432/x?sslmode=maybe' }\n", "database.url", "sslmode"),
    ("database: { pool_size: 4 }\n", "database.url", "required"),
    ("database: { url: 'postgres://u:hunter2@127.0.0.1:5432/llmaas', pool_size: 0 }\n", "database.pool_size", "≥ 1"),
    ("database: { url: 'postgres://u:hunter2@127.0.0.1:5432/llmaas', pool_size: 5000 }\n", "database.pool_size", "at most"),
    ("database: { url: 'postgres://u:hunter2@127.0.0.1:5432/llmaas', pool: 4 }\n", "database.pool", "unknown field"),
    # Nothing listens on port 1: unreachable.
    ("database: { url: 'postgres://u:hunter2@127.0.0.1:1/llmaas' }\n", "database.url", "cannot connect to PostgreSQL at 127.0.0.1:1/llmaas"),
])
def test_bad_database_config_stops_startup_with_exit_2(llmaas_bin, tmp_path, database_yaml, field, says):
    for done in _serve_with_database(llmaas_bin, tmp_path, database_yaml):
        assert done.returncode == 2, f"exit {done.returncode}; stderr: {done.stderr!r}"
        assert f"config error: {field}:" in done.stderr and says in done.stderr, done.stderr
        assert "hunter2" not in done.stderr + done.stdout  # the password is never echoed


def test_bad_database_url_from_the_environment_names_the_variable(llmaas_bin, tmp_path):
    for done in _serve_with_database(llmaas_bin, tmp_path, "", env_url="postgres://u:hunter2@127.0.0.1:1/llmaas"):
        assert done.returncode == 2 and "config error: LLMAAS_DATABASE_URL: cannot connect" in done.stderr, done.stderr
        assert "hunter2" not in done.stderr


POSTGRES_URL = E2E_DATABASE_URL or os.environ.get("LLMAAS_TEST_POSTGRES_URL") or None


@pytest.mark.skipif(POSTGRES_URL is None and os.environ.get("CI") != "true",
                    reason="needs a PostgreSQL server (scripts/setup-postgres.sh; LLMAAS_TEST_POSTGRES_URL)")
def test_wrong_password_and_missing_database_name_the_url(llmaas_bin, tmp_path):
    from urllib.parse import urlsplit, urlunsplit
    assert POSTGRES_URL, "CI=true but no PostgreSQL: LLMAAS_TEST_POSTGRES_URL is not set"
    parts = urlsplit(POSTGRES_URL)
    host = parts.netloc.rsplit("@", 1)[1]
    for url, says in [(urlunsplit((parts.scheme, f"{parts.username}:wrong-secret@{host}", parts.path, "", "")), "password authentication failed"),
                      (urlunsplit((parts.scheme, parts.netloc, "/no_such_database_e2e", "", "")), "does not exist")]:
        for done in _serve_with_database(llmaas_bin, tmp_path, f"database: {{ url: '{url}' }}\n"):
            assert done.returncode == 2 and "config error: database.url: cannot connect" in done.stderr and says in done.stderr, done.stderr
            assert "wrong-secret" not in done.stderr and parts.password not in done.stderr
