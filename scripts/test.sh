#!/usr/bin/env bash
# Runs every test: Swift unit tests (the Storage-backed ones on SQLite and PostgreSQL), then the
# end-to-end suite (official openai SDK against the real gateway and the real llama.cpp engine, plus
# EngineSim for faults, schemathesis on the admin API) on SQLite and again on PostgreSQL, then the
# client suites (LangChain's standard tests and one call from each framework our users run, through
# the gateway). Installs what it needs, PostgreSQL included (scripts/setup-postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-engine.sh
scripts/setup-clients.sh
scripts/setup-browser.sh
# PostgreSQL, the second Storage driver: the Swift Storage suites and the e2e suite run on both.
export LLMAAS_PG_ENV_FILE=${LLMAAS_PG_ENV_FILE:-/tmp/llmaas-pg-${LLMAAS_PG_PORT:-55432}.env}
scripts/setup-postgres.sh >/dev/null
set -a; . "$LLMAAS_PG_ENV_FILE"; set +a
[ -n "${LLMAAS_TEST_POSTGRES_URL:-}" ] || { echo "test.sh: no LLMAAS_TEST_POSTGRES_URL from $LLMAAS_PG_ENV_FILE" >&2; exit 1; }
swift build --build-tests
swift test
.venv/bin/python -m pytest tests/e2e -q
# The whole e2e suite again with every gateway on PostgreSQL (a fresh database each).
LLMAAS_E2E_DATABASE_URL=$LLMAAS_TEST_POSTGRES_URL .venv/bin/python -m pytest tests/e2e -q
.venv-clients/bin/python -m pytest -c tests/clients/pytest.ini tests/clients -q
