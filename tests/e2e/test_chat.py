"""Non-streaming chat and completions through the gateway to the real llama.cpp engine,
plus the model listing endpoints and the health probes."""

import httpx
import openai
import pytest

MODEL = "smollm2:135m"
ALIAS = "smollm2"
LOCAL_BACKEND = {"engine_type": "llamacpp", "machine_name": "local-1"}
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


def extra(obj) -> dict:
    """Fields the OpenAI SDK types do not declare (e.g. `backend`)."""
    return dict(obj.model_extra or {})


def assert_usage_consistent(usage, max_completion: int) -> None:
    assert usage is not None, "response has no usage"
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= max_completion
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_completion_non_streaming(client: openai.OpenAI):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=24, temperature=0
    )
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert_usage_consistent(completion.usage, max_completion=24)

    request_id = raw.headers.get("x-request-id")
    assert request_id, "no x-request-id header"
    assert completion.id == request_id
    assert extra(completion).get("backend") == LOCAL_BACKEND
    assert raw.headers.get("x-llmaas-backend") == "llamacpp/local-1"


def test_request_is_recorded(gw, client: openai.OpenAI):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=6, temperature=0
    )
    completion = raw.parse()
    row = gw.wait_request_row(raw.headers["x-request-id"])
    assert row["outcome"] == "ok"
    assert row["status"] == 200
    assert row["model"] == MODEL
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == completion.usage.completion_tokens
    assert "local-1" in (row["backend"] or "")


def test_chat_completion_by_alias(client: openai.OpenAI):
    raw = client.chat.completions.with_raw_response.create(
        model=ALIAS, messages=MESSAGES, max_tokens=8, temperature=0
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert extra(completion).get("backend") == LOCAL_BACKEND
    assert raw.headers.get("x-llmaas-backend") == "llamacpp/local-1"
    assert completion.id == raw.headers.get("x-request-id")


def test_chat_finish_reason_length_when_capped(client: openai.OpenAI):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long story about a dragon and a knight."}],
        max_tokens=3,
        temperature=0,
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3


def test_completions_endpoint(client: openai.OpenAI):
    raw = client.completions.with_raw_response.create(
        model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    completion = raw.parse()

    assert completion.object == "text_completion"
    assert len(completion.choices) == 1
    assert completion.choices[0].text.strip()
    assert_usage_consistent(completion.usage, max_completion=8)
    assert completion.id == raw.headers.get("x-request-id")
    assert extra(completion).get("backend") == LOCAL_BACKEND
    assert raw.headers.get("x-llmaas-backend") == "llamacpp/local-1"


def test_second_key_is_accepted(gw):
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.second_key, max_retries=0, timeout=60)
    completion = c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    assert completion.choices[0].message.content is not None


# -- models --------------------------------------------------------------------------


def test_list_models(client: openai.OpenAI):
    models = {m.id: m for m in client.models.list()}
    assert MODEL in models, f"{MODEL} not listed; got {sorted(models)}"
    assert models[MODEL].object == "model"
    assert "sim-chat" in models


def test_model_entries_carry_max_model_len_aliases_and_permission(client: openai.OpenAI):
    """The reference's extra fields, read through the official SDK (they arrive as extras)."""
    models = {m.id: m for m in client.models.list()}
    m = models[MODEL].model_dump()
    assert m["max_model_len"] == m["context_length"] > 0
    assert isinstance(m["aliases"], list)
    perm = m["permission"][0]
    assert perm["object"] == "model_permission" and perm["allow_view"] is True
    assert "chat" in perm["endpoints"]  # the test key may use every endpoint the model serves
    one = client.models.retrieve(MODEL).model_dump()
    assert one["max_model_len"] == m["max_model_len"] and one["permission"] == m["permission"]


def test_retrieve_model(client: openai.OpenAI):
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL
    assert model.object == "model"


def test_retrieve_model_by_alias(client: openai.OpenAI):
    model = client.models.retrieve(ALIAS)
    assert model.object == "model"
    assert model.id in (MODEL, ALIAS)


def test_retrieve_unknown_model_is_404(client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model:1b")
    assert e.value.code == "model_not_found"


# -- probes --------------------------------------------------------------------------


def test_health_needs_no_auth(gw):
    r = httpx.get(f"{gw.url}/health", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers.get("x-request-id")


def test_ready(gw):
    r = httpx.get(f"{gw.url}/ready", timeout=10)
    assert r.status_code == 200
