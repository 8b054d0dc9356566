"""One realistic call from each framework our users run, through the gateway (managed llama.cpp):
the call a user writes after pointing the framework at an OpenAI-compatible base_url."""

from __future__ import annotations

import asyncio

import pytest

from conftest import TARGETS, selected

pytestmark = pytest.mark.skipif(not selected("gateway"), reason="framework calls run against the gateway only")
QUESTION = "Name one colour of the rainbow."


@pytest.fixture()
def gw():
    return TARGETS["gateway-managed"]


def test_haystack_openai_chat_generator(gw):
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage
    from haystack.utils import Secret

    generator = OpenAIChatGenerator(api_key=Secret.from_token(gw.key), model=gw.model, api_base_url=gw.base_url,
                                    generation_kwargs={"max_tokens": 16, "temperature": 0})
    replies = generator.run([ChatMessage.from_user(QUESTION)])["replies"]
    assert replies and replies[0].text.strip()
    assert replies[0].meta["usage"]["completion_tokens"] > 0


def test_llamaindex_openai_like(gw):
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model=gw.model, api_base=gw.base_url, api_key=gw.key, is_chat_model=True, max_tokens=16, temperature=0,
                     context_window=8192)
    answer = llm.chat([ChatMessage(role="user", content=QUESTION)])
    assert answer.message.content.strip()
    streamed = "".join(chunk.delta or "" for chunk in llm.stream_complete(QUESTION))
    assert streamed.strip()


def test_openai_agents_sdk(gw):
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # tracing would export to OpenAI's servers
    model = OpenAIChatCompletionsModel(model=gw.model, openai_client=AsyncOpenAI(base_url=gw.base_url, api_key=gw.key))
    agent = Agent(name="helper", instructions="Answer in one short sentence.", model=model)
    result = Runner.run_sync(agent, QUESTION, max_turns=1)
    assert str(result.final_output).strip()


def test_autogen_assistant_agent(gw):
    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.openai import OpenAIChatCompletionClient

    client = OpenAIChatCompletionClient(model=gw.model, base_url=gw.base_url, api_key=gw.key, max_tokens=16, temperature=0,
                                        model_info={"vision": False, "function_calling": False, "json_output": False,
                                                    "family": "unknown", "structured_output": False})

    async def run():
        agent = AssistantAgent("assistant", model_client=client)
        result = await agent.run(task=QUESTION)
        await client.close()
        return result

    result = asyncio.run(run())
    assert result.messages[-1].content.strip()
    assert result.messages[-1].models_usage.completion_tokens > 0


def test_semantic_kernel_chat_completion(gw):
    from openai import AsyncOpenAI
    from semantic_kernel.connectors.ai.open_ai import OpenAIChatCompletion, OpenAIChatPromptExecutionSettings
    from semantic_kernel.contents import ChatHistory

    service = OpenAIChatCompletion(ai_model_id=gw.model, async_client=AsyncOpenAI(base_url=gw.base_url, api_key=gw.key))
    history = ChatHistory()
    history.add_user_message(QUESTION)
    settings = OpenAIChatPromptExecutionSettings(max_tokens=16, temperature=0)
    reply = asyncio.run(service.get_chat_message_content(history, settings))
    assert str(reply).strip()
