"""Embeddings through the gateway.

llama.cpp returns one vector *per token* for SmolLM2; the gateway must answer like
OpenAI: exactly one vector per input, all of the model's dimension.
"""

import math

import openai

MODEL = "smollm2:135m"
LOCAL_BACKEND = {"engine_type": "llamacpp", "machine_name": "local-1"}
TEXTS = [
    "The cat sat on the mat.",
    "Quantum chromodynamics describes the strong interaction.",
    "Bonjour, comment allez-vous ?",
]


def is_vector(v) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(
        isinstance(x, float) and math.isfinite(x) for x in v
    )


def test_embeddings_one_vector_per_input(client: openai.OpenAI):
    raw = client.embeddings.with_raw_response.create(
        model=MODEL, input=TEXTS, encoding_format="float"
    )
    result = raw.parse()

    assert result.object == "list"
    assert len(result.data) == len(TEXTS)
    assert [d.index for d in result.data] == [0, 1, 2]
    vectors = [d.embedding for d in result.data]
    assert all(is_vector(v) for v in vectors), "each embedding must be a flat list of floats"
    assert len({len(v) for v in vectors}) == 1, "all vectors must have the same dimension"
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            assert vectors[i] != vectors[j], f"texts {i} and {j} got the same vector"

    assert result.usage is not None and result.usage.prompt_tokens > 0
    assert raw.headers.get("x-llmaas-backend") == "llamacpp/local-1"
    assert (result.model_extra or {}).get("backend") == LOCAL_BACKEND


def test_embeddings_single_string(client: openai.OpenAI):
    single = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    many = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    assert len(single.data) == 1
    assert is_vector(single.data[0].embedding)
    assert len(single.data[0].embedding) == len(many.data[0].embedding)


def test_embeddings_sdk_default_encoding(client: openai.OpenAI):
    """The SDK asks for base64 unless told otherwise; it must still get one vector per input."""
    result = client.embeddings.create(model=MODEL, input=TEXTS[:2])
    assert len(result.data) == 2
    dims = {len(d.embedding) for d in result.data}
    assert len(dims) == 1 and dims.pop() > 0
    assert result.data[0].embedding != result.data[1].embedding


def test_embeddings_same_text_same_vector(client: openai.OpenAI):
    a = client.embeddings.create(model=MODEL, input="repeatable", encoding_format="float")
    b = client.embeddings.create(model=MODEL, input="repeatable", encoding_format="float")
    assert len(a.data[0].embedding) == len(b.data[0].embedding)
    assert all(
        math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-5)
        for x, y in zip(a.data[0].embedding, b.data[0].embedding)
    )
