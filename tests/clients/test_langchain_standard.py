"""LangChain's standard integration tests (`langchain-tests`) for ChatOpenAI and OpenAIEmbeddings,
pointed at the gateway — for each way llama.cpp can run — with SmolLM2-135M's capabilities set
honestly: no tool calling, no structured output, no images; JSON mode is tried and marked as the
135M model's limit. LangChain's defaults are kept (OpenAIEmbeddings tokenizes with tiktoken and
sends token ids: check_embedding_ctx_length=True)."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests

from conftest import TARGETS, selected

KIND = "gateway" if selected("gateway") else "direct"


class StandardChat(ChatModelIntegrationTests):
    target = ""

    @property
    def chat_model_class(self):
        return ChatOpenAI

    @property
    def chat_model_params(self):
        t = TARGETS[self.target]
        # stream_usage: what a user sets to get token counts from a non-OpenAI base_url.
        return {"model": t.model, "base_url": t.base_url, "api_key": t.key, "temperature": 0, "max_tokens": 64,
                "timeout": 120, "max_retries": 0, "stream_usage": True}

    @property
    def has_tool_calling(self):
        return False

    @property
    def has_structured_output(self):
        return False

    @property
    def supports_json_mode(self):
        return True

    @property
    def returns_usage_metadata(self):
        return True

    @property
    def supports_image_inputs(self):
        return False

    @pytest.mark.xfail(reason="SmolLM2-135M does not keep to JSON within 64 tokens (the model's limit, not the gateway's)", strict=False)
    def test_json_mode(self, model):
        super().test_json_mode(model)


class StandardEmbeddings(EmbeddingsIntegrationTests):
    target = ""

    @property
    def embeddings_class(self):
        return OpenAIEmbeddings

    @property
    def embedding_model_params(self):
        t = TARGETS[self.target]
        return {"model": t.model, "base_url": t.base_url, "api_key": t.key, "max_retries": 0}


class TestChatManaged(StandardChat):
    target = f"{KIND}-managed"


class TestChatInterrupt(StandardChat):
    target = f"{KIND}-interrupt"


class TestEmbeddingsManaged(StandardEmbeddings):
    target = f"{KIND}-managed"


class TestEmbeddingsInterrupt(StandardEmbeddings):
    target = f"{KIND}-interrupt"
