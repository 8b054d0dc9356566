#!/usr/bin/env bash
# Retrain the shield's semantic layer (docs/SHIELD.md, "Semantic layer") with one command:
#   scripts/train-shield.sh            (from the repository root)
# Trains on the public dev set (SHIELD_DEV, default ../shared/data/shield/dev.jsonl) plus our
# own train split (tests/data/shield/own/train-*.jsonl) and short benign probes
# (tests/data/shield/probes/train-probes.jsonl) — never on the held-out split — writes
# Sources/Shield/Resources/semantic-v1.bin and Tests/ShieldTests/semantic-parity.json, rebuilds
# and prints the evaluation (dev, train, heldout). Only training needs Python: numpy, scipy and
# scikit-learn go into .venv-shield (git-ignored); the gateway only loads the weights.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=${SHIELD_DEV:-../shared/data/shield/dev.jsonl}
VENV=${SHIELD_VENV:-.venv-shield}
if ! "$VENV/bin/python" -c 'import numpy, scipy, sklearn' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'numpy>=1.26' 'scipy>=1.11' 'scikit-learn>=1.4'
fi
swift build --product llmaas 2>&1 | tail -1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.build/debug/llmaas shield features "$DEV" tests/data/shield/own/train-*.jsonl tests/data/shield/probes/train-*.jsonl > "$tmp/features.jsonl"
"$VENV/bin/python" scripts/train_shield.py "$tmp/features.jsonl" "$@"
swift build --product llmaas 2>&1 | tail -1
.build/debug/llmaas shield eval "$DEV" tests/data/shield/own/train-*.jsonl tests/data/shield/own/heldout-*.jsonl
