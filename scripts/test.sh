#!/usr/bin/env bash
# Runs every test: Swift unit tests, then the end-to-end suite (official openai SDK against the
# real gateway and the real llama.cpp engine, plus EngineSim for faults). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-engine.sh
swift build --build-tests
swift test
.venv/bin/python -m pytest tests/e2e -q
