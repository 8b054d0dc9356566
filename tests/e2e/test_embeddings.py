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


def test_embeddings_of_token_ids(client: openai.OpenAI):
    """Token ids, as LangChain's OpenAIEmbeddings sends them by default (issue 11): llama.cpp gets
    the text its tokenizer makes of them; the usage counts the ids."""
    many = client.embeddings.create(model=MODEL, input=[[15339, 1917], [40, 1093, 11, 649]], encoding_format="float")
    assert [d.index for d in many.data] == [0, 1]
    assert all(is_vector(d.embedding) for d in many.data)
    assert many.usage.prompt_tokens == 6
    one = client.embeddings.create(model=MODEL, input=[15339, 1917], encoding_format="float")
    assert len(one.data) == 1 and one.usage.prompt_tokens == 2
    # The same ids give the same vector as the text they stand for in the model's vocabulary.
    again = client.embeddings.create(model=MODEL, input=[[15339, 1917]], encoding_format="float")
    assert again.data[0].embedding == many.data[0].embedding


def test_embeddings_bad_token_ids_and_dimensions_are_400(client: openai.OpenAI):
    for bad in ([[]], [[1, -2]], [[1, "a"]]):
        try:
            client.embeddings.create(model=MODEL, input=bad)
            raise AssertionError(f"{bad!r} was accepted")
        except openai.BadRequestError as e:
            assert e.body["param"] == "input", e.body
    try:
        client.embeddings.create(model=MODEL, input="hello", dimensions=8)
        raise AssertionError("dimensions was accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "dimensions", e.body
