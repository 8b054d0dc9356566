#!/usr/bin/env bash
# Test-only: what the console's browser tests (tests/e2e/test_console.py) need — Debian's
# headless Chromium and its driver (apt), and Selenium in ./.venv (made by setup-engine.sh).
# Idempotent. `scripts/run.sh` does not need any of it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LLMAAS_VENV:-.venv}
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup-browser: installing ${need_apt[*]} (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! "$VENV/bin/python" -c 'import selenium' >/dev/null 2>&1; then
  echo "setup-browser: installing selenium into $VENV"
  "$VENV/bin/pip" install -q 'selenium==4.51.0'
fi
