"""Streaming chat completions (SSE) through the gateway.

llama.cpp never sends `usage` in a stream; the gateway must still honour
`stream_options.include_usage` with a final usage chunk whose counts match what the
non-streaming endpoint reports for the same request.
"""

import threading

import openai

MODEL = "smollm2:135m"
LOCAL_BACKEND = {"engine_type": "llamacpp", "machine_name": "local-1"}
MESSAGES = [{"role": "user", "content": "Tell me a short story about a cat."}]


def extra(obj) -> dict:
    return dict(obj.model_extra or {})


def collect(stream) -> list:
    return [chunk for chunk in stream]


def content_of(chunks) -> list[str]:
    return [
        c.choices[0].delta.content
        for c in chunks
        if c.choices and c.choices[0].delta and c.choices[0].delta.content
    ]


def test_stream_arrives_in_several_chunks(client: openai.OpenAI):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=24, temperature=0, stream=True
    )
    request_id = raw.headers.get("x-request-id")
    assert request_id
    assert raw.headers.get("x-llmaas-backend") == "llamacpp/local-1"
    assert raw.headers.get("content-type", "").startswith("text/event-stream")

    chunks = collect(raw.parse())
    pieces = content_of(chunks)
    assert len(pieces) > 1, f"expected several content chunks, got {pieces!r}"
    assert "".join(pieces).strip()

    for c in chunks:
        assert c.object == "chat.completion.chunk"
        assert c.id == request_id
        assert extra(c).get("backend") == LOCAL_BACKEND
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes and finishes[-1] in ("stop", "length")


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI):
    chunks = collect(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=12, temperature=0, stream=True
        )
    )
    assert chunks
    assert all(c.usage is None for c in chunks), [c.usage for c in chunks if c.usage]
    assert all(c.choices for c in chunks), "a chunk without choices (usage-only) was sent"


def test_stream_include_usage_matches_non_streaming(client: openai.OpenAI):
    plain = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=16, temperature=0
    )
    chunks = collect(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=16,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1, f"expected exactly one usage chunk, got {len(with_usage)}"
    final = chunks[-1]
    assert final.usage is not None, "the usage chunk must be the last chunk"
    assert final.choices == []

    usage = final.usage
    assert usage.prompt_tokens == plain.usage.prompt_tokens
    assert usage.completion_tokens > 0
    assert usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # Every chunk before it carries content/finish data, and usage is null there.
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_completions_endpoint(client: openai.OpenAI):
    chunks = collect(
        client.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=12, temperature=0, stream=True
        )
    )
    text = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert len(text) > 1


def test_concurrent_request_does_not_cut_a_stream(client: openai.OpenAI):
    """llama-cpp-python by default (`interrupt_requests`) drops a running stream as soon as
    another request arrives. Through the gateway, one client's request must never cut
    another client's stream: both must complete."""
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long essay about the history of Europe."}],
        max_tokens=200,
        temperature=0,
        stream=True,
        extra_body={"logit_bias": {"2": -100}},  # no end-of-turn: runs to max_tokens
        timeout=120,
    )
    it = iter(stream)
    first = [next(it) for _ in range(3)]

    other: dict = {}

    def second_request():
        try:
            other["completion"] = client.chat.completions.create(
                model=MODEL, messages=MESSAGES, max_tokens=4, timeout=120
            )
        except Exception as e:  # reported by the assertion below
            other["error"] = e

    t = threading.Thread(target=second_request)
    t.start()
    rest = list(it)  # raises openai.APIError if the stream is cut
    t.join(timeout=150)

    chunks = first + rest
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"], f"the stream did not run to max_tokens: {finishes}"
    assert len(content_of(chunks)) > 100
    assert "error" not in other, f"the concurrent request failed: {other.get('error')!r}"
    assert other["completion"].choices[0].message.content is not None
