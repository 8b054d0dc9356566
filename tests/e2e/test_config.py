"""Start-up with a bad configuration must stop with a message naming the field."""

import subprocess

from conftest import REPO, cli_env, free_port


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
    assert (env_data / "llmaas.sqlite").exists() and not file_data.exists()

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
