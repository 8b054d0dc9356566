"""Client errors: authentication, unknown models, invalid bodies.

Every bad input must get a clear 4xx in OpenAI's error shape
`{"error": {"message", "type", "param", "code"}}` — including inputs the gateway passes on
to llama.cpp, which itself answers HTTP 500 to invalid requests.
"""

import httpx
import openai
import pytest

MODEL = "smollm2:135m"
MESSAGES = [{"role": "user", "content": "Hi"}]


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert isinstance(body.get("error"), dict), f"not an OpenAI error body: {response.text[:300]}"
    assert body["error"].get("message"), "error without a message"
    assert response.headers.get("x-request-id"), "error response without x-request-id"
    return body["error"]


def assert_bad_request(e: pytest.ExceptionInfo, param: str | None = None) -> None:
    err = e.value
    assert err.status_code == 400, f"expected 400, got {err.status_code}: {err.body}"
    assert err.type == "invalid_request_error", err.body
    assert isinstance(err.body, dict) and err.body.get("message")
    if param is not None:
        assert err.param == param, err.body


# -- authentication ------------------------------------------------------------------


def test_no_key_is_401(gw):
    r = httpx.post(
        f"{gw.url}/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES}, timeout=30
    )
    assert r.status_code == 401
    assert error_of(r)["type"] == "authentication_error"


def test_empty_key_is_401(gw):
    # The SDK refuses api_key="" itself and h11 refuses "Bearer " (trailing space).
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES},
        headers={"Authorization": "Bearer"},  # a scheme with no key
        timeout=30,
    )
    assert r.status_code == 401
    assert error_of(r)["type"] == "authentication_error"


def test_bad_key_is_authentication_error(gw):
    c = openai.OpenAI(
        base_url=gw.base_url, api_key="sk-llm-this-key-does-not-exist", max_retries=0, timeout=30
    )
    with pytest.raises(openai.AuthenticationError) as e:
        c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    assert e.value.status_code == 401
    assert e.value.type == "authentication_error"
    assert e.value.response.headers.get("x-request-id")


def test_bad_key_on_models_list(gw):
    c = openai.OpenAI(base_url=gw.base_url, api_key="sk-llm-nope", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        c.models.list()


# -- models --------------------------------------------------------------------------


def test_unknown_model_is_404(client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model:7b", messages=MESSAGES)
    assert e.value.code == "model_not_found"
    assert "no-such-model:7b" in e.value.body["message"]


def test_embeddings_on_chat_only_model_is_4xx(client: openai.OpenAI):
    """sim-chat's catalog entry has no `embeddings` capability."""
    with pytest.raises(openai.APIStatusError) as e:
        client.embeddings.create(model="sim-chat", input="x")
    assert 400 <= e.value.status_code < 500, e.value.body


# -- invalid bodies caught by the gateway ---------------------------------------------
# llama-cpp-python 0.3.36 answers a missing or empty `messages`, and `max_tokens` <= 0, with
# HTTP 200 and an unbounded generation; it answers wrong types with HTTP 500. The gateway
# must check these itself.


def test_missing_messages(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.post("/chat/completions", body={"model": MODEL}, cast_to=object)
    assert_bad_request(e, param="messages")


def test_empty_messages(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[])
    assert_bad_request(e, param="messages")


def test_missing_model(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.post("/chat/completions", body={"messages": MESSAGES}, cast_to=object)
    assert_bad_request(e, param="model")


def test_max_tokens_not_an_integer(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_body={"max_tokens": "abc"}
        )
    assert_bad_request(e, param="max_tokens")


def test_negative_max_tokens(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=-5)
    assert_bad_request(e, param="max_tokens")


def test_temperature_not_a_number(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_body={"temperature": "x"}
        )
    assert_bad_request(e, param="temperature")


def test_malformed_json(http: httpx.Client):
    r = http.post(
        "/v1/chat/completions",
        content=b'{"model": "smollm2:135m", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert error_of(r)["type"] == "invalid_request_error"


def test_body_not_an_object(http: httpx.Client):
    r = http.post("/v1/chat/completions", json=[1, 2, 3])
    assert r.status_code == 400
    assert error_of(r)["type"] == "invalid_request_error"


def test_body_over_limit_is_413(client: openai.OpenAI):
    huge = "a" * (21 * 1024 * 1024)  # the limit is 20 MiB
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(
            model="sim-chat", messages=[{"role": "user", "content": huge}], max_tokens=1
        )
    assert e.value.status_code == 413


# -- invalid input that llama.cpp answers with HTTP 500 ---------------------------------
# Measured with llama-cpp-python 0.3.36: each body below gets HTTP 500 with
# "type": "internal_server_error" and a Python traceback in the message. `top_k` is not an
# OpenAI field, so the gateway passes it on untouched; the others are OpenAI fields the
# gateway may or may not check itself. In every case the client must get a 400.

ENGINE_REJECTS = {
    "top_k_not_int": {"top_k": "x"},
    "logit_bias_key_not_token_id": {"logit_bias": {"abc": 5}},
    "top_p_above_1": {"top_p": 5},
    "stop_not_string_or_list": {"stop": 5},
    "unknown_role": {"messages": [{"role": "bogus", "content": "Hi"}]},
}


@pytest.mark.parametrize("fields", ENGINE_REJECTS.values(), ids=ENGINE_REJECTS.keys())
def test_input_llamacpp_rejects_is_400_not_500(client: openai.OpenAI, fields: dict):
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, **fields}
    with pytest.raises(openai.APIStatusError) as e:
        client.post("/chat/completions", body=body, cast_to=object)
    assert e.value.status_code == 400, f"got {e.value.status_code}: {e.value.body}"
    assert e.value.type == "invalid_request_error", e.value.body
    message = e.value.body["message"]
    assert "site-packages" not in message and "Traceback" not in message, (
        "the engine's internals leak into the error message: " + message
    )


def test_input_llamacpp_rejects_is_400_when_streaming(client: openai.OpenAI):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=4, stream=True, extra_body={"top_k": "x"}
        )
    assert e.value.status_code == 400, f"got {e.value.status_code}: {e.value.body}"


def test_empty_embedding_input_is_400(client: openai.OpenAI):
    # llama.cpp answers 500 "llama_decode returned -1" to an empty input.
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, input="", encoding_format="float")
    assert e.value.type == "invalid_request_error"


def test_gateway_still_serves_after_bad_requests(client: openai.OpenAI):
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    assert completion.choices[0].message.content is not None
