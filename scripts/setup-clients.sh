#!/usr/bin/env bash
# Installs the client frameworks the client tests (tests/clients) drive the gateway with, in a
# virtualenv of their own (./.venv-clients): LangChain with its standard tests, Haystack,
# LlamaIndex, the OpenAI Agents SDK, AutoGen and Semantic Kernel pin versions of their own, so
# they stay apart from the engine's ./.venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LLMAAS_CLIENTS_VENV:-.venv-clients}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import langchain_tests, langchain_openai, bpe_openai, pytest_asyncio, haystack, llama_index.llms.openai_like, agents, autogen_agentchat, autogen_ext.models.openai, semantic_kernel' >/dev/null 2>&1; then
  echo "setup-clients: installing the client frameworks into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -r tests/clients/requirements.txt
fi
echo "setup-clients: ready ($VENV)"
