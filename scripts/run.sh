#!/usr/bin/env bash
# Runs the platform on this machine: installs the local engine if needed, builds the gateway,
# prints an API key, and serves the OpenAI API on http://127.0.0.1:8080/v1 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-engine.sh
swift build --product llmaas
BIN=.build/debug/llmaas
CONFIG=${LLMAAS_CONFIG:-deploy/local.yaml}
DATA_DIR=${LLMAAS_DATA_DIR:-data}
if [ -s "$DATA_DIR/llmaas.sqlite" ]; then
  # Not the first start: the first key was printed back then; print a fresh one now.
  echo "Existing data found; a new API key for tenant 'default':"
  "$BIN" key create --tenant default --name "run-$(date +%Y%m%d-%H%M%S)" --config "$CONFIG"
fi
exec "$BIN" serve --config "$CONFIG"
