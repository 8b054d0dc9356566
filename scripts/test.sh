#!/usr/bin/env bash
# Runs every test: Swift unit tests, then the end-to-end suite (official openai SDK against the
# real gateway and the real llama.cpp engine, plus EngineSim for faults, schemathesis on the admin
# API), then the client suites (LangChain's standard tests and one call from each framework our
# users run, through the gateway). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-engine.sh
scripts/setup-clients.sh
scripts/setup-browser.sh
swift build --build-tests
swift test
.venv/bin/python -m pytest tests/e2e -q
.venv-clients/bin/python -m pytest -c tests/clients/pytest.ini tests/clients -q
