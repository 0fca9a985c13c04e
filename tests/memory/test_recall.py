"""Embeddings and retrieval quality: the local model against published reference values, recall
on a labelled set for BM25, vectors and their fusion, and the OpenAI-compatible API client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from memory._embed import ApiEmbedder, EmbedderError, LocalEmbedder, _model_dir, local_available
from memory._index import Index
from memory._quantized import build
from tests.memory.conftest import embedder
from tests.memory.recall_set import MEMORIES, QUESTIONS
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

Mode = Literal["bm25", "vector", "fused"]


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    reason = local_available()
    if reason is not None:
        if os.environ.get("SWITCHBOARD_TEST_REQUIRE_SERVICES"):
            pytest.fail(f"SWITCHBOARD_TEST_REQUIRE_SERVICES is set but {reason}")
        pytest.skip(reason)
    return embedder()  # (the one every memory test shares: its weights load once)


def cosine(embedder: LocalEmbedder, a: str, b: str) -> float:
    v = embedder.embed_sync([a, b])
    return float(v[0] @ v[1])


# --- the local model ------------------------------------------------------------------------------


def test_matches_published_reference_vectors(local: LocalEmbedder) -> None:
    # sentence-transformers' encode("hello world")[:5] for all-MiniLM-L6-v2, as pinned by
    # fastembed's test suite (CANONICAL_VECTOR_VALUES) after it switched the model to mean pooling.
    v = local.embed_sync(["hello world"])
    assert v.shape == (1, 384) and v.dtype == np.float32
    np.testing.assert_allclose(v[0, :5], [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362], atol=2e-4)
    # The similarity matrix in sentence-transformers' README for the same model.
    s = local.embed_sync(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    sims = s @ s.T
    np.testing.assert_allclose([sims[0, 1], sims[0, 2], sims[1, 2]], [0.6660, 0.1046, 0.1411], atol=2e-3)


def test_meaning_is_captured(local: LocalEmbedder) -> None:
    cat = "The cat sits on the mat"
    assert (
        cosine(local, cat, "A cat is sitting on a rug")
        - cosine(local, cat, "Stock markets fell sharply today")
        > 0.5
    )
    assert 0.6 < cosine(local, "I like dogs", "I love puppies") < 0.8
    assert cosine(local, "I like dogs", "The weather is cold") < 0.3


def test_rows_are_unit_vectors_and_padding_does_not_leak(local: LocalEmbedder) -> None:
    texts = [
        "short",
        "a considerably longer sentence, with punctuation and several more word pieces",
        "mid length",
    ]
    together = local.embed_sync(texts)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.concatenate([local.embed_sync([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Past one batch (64), sorted by length and put back in order.
    many = [m.text for m in MEMORIES[:70]]
    vectors = local.embed_sync(many)
    for i in (0, 33, 64, 69):
        np.testing.assert_allclose(vectors[i], local.embed_sync([many[i]])[0], atol=1e-5)


def test_long_texts_are_truncated_to_256_word_pieces(local: LocalEmbedder) -> None:
    head = " ".join(["alpha"] * 300)
    a, b = local.embed_sync([head + " one ending", head + " a different ending entirely"])
    np.testing.assert_allclose(a, b, atol=1e-6)


async def test_async_embed_equals_sync(local: LocalEmbedder) -> None:
    texts = ["first text", "second text"]
    np.testing.assert_allclose(await local.embed(texts), local.embed_sync(texts), atol=1e-6)
    assert (await local.embed([])).shape == (0, 384)
    assert local.name.startswith("local/all-MiniLM-L6-v2/") and local.dim == 384


async def test_queries_go_through_the_int8_encoder_in_the_same_space(local: LocalEmbedder) -> None:
    """A query's int8 vector stands for its float32 one: close to it, and ranking texts as it
    does (ADR 0048)."""
    assert local.prepare_queries() == "int8"  # (make install brings ONNX Runtime)
    questions = [q.text for q in QUESTIONS[:20]]
    texts = [m.text for m in MEMORIES[:60]]
    exact, stored = local.embed_sync(questions), local.embed_sync(texts)
    for question, full in zip(questions, exact, strict=True):
        fast = await local.embed_query(question)
        assert fast.shape == (384,) and fast.dtype == np.float32
        assert abs(float(np.linalg.norm(fast)) - 1.0) < 1e-5
        assert float(fast @ full) > 0.97, question
        assert int(np.argmax(stored @ fast)) == int(np.argmax(stored @ full)), question
    in_thread = await local.embed_query("hello world")
    assert local.embed_query_sync("hello world").tobytes() == in_thread.tobytes()


def test_queries_stay_float32_when_asked(local: LocalEmbedder) -> None:
    exact = LocalEmbedder(quantized_queries=False)
    exact._model = local._model or local._load()  # (the shared weights: not read again)
    assert exact.prepare_queries() == "float32"
    np.testing.assert_array_equal(exact.embed_query_sync("hello world"), local.embed_sync(["hello world"])[0])


def test_a_broken_model_directory_is_reported(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    reason = local_available(tmp_path)
    assert reason is not None and "cannot be read" in reason and "make install" in reason
    with pytest.raises(EmbedderError, match="cannot be read"):
        LocalEmbedder(tmp_path).embed_sync(["x"])


# --- recall on the labelled set -------------------------------------------------------------------


def test_recall_set_is_well_formed() -> None:
    known = {m.id for m in MEMORIES}
    assert len(known) == len(MEMORIES) >= 120
    assert len(QUESTIONS) >= 60
    assert all(q.answers and q.answers <= known for q in QUESTIONS)


@pytest.fixture(scope="module")
def recall_index(local: LocalEmbedder) -> tuple[Index, npt.NDArray[np.float32]]:
    index = Index(local.dim)
    vectors = local.embed_sync([m.text for m in MEMORIES])
    for memory, vector in zip(MEMORIES, vectors, strict=True):
        index.put(memory.id, memory.namespace, memory.text, vector)
    return index, local.embed_sync([q.text for q in QUESTIONS])


def recall(index: Index, queries: npt.NDArray[np.float32], mode: Mode, k: int) -> float:
    """Mean over questions of the share of a question's answers in the top k (at most k needed)."""
    total = 0.0
    for question, vector in zip(QUESTIONS, queries, strict=True):
        found = {h.record_id for h in index.search(question.text, vector, k=k, mode=mode)}
        total += len(found & question.answers) / min(k, len(question.answers))
    return total / len(QUESTIONS)


# Measured (recall@1, recall@5): bm25 0.298/0.377, vector 0.837/0.942, fused 0.817/0.942. Each
# floor sits a little below, so a broken forward pass, tokeniser or fusion fails it: plain RRF
# without the BM25 coverage gate, for one, measures 0.548/0.865 here.
FLOORS: dict[Mode, tuple[float, float]] = {
    "bm25": (0.25, 0.33),
    "vector": (0.78, 0.90),
    "fused": (0.76, 0.90),
}


def test_recall_of_bm25_vectors_and_fusion(
    recall_index: tuple[Index, npt.NDArray[np.float32]], record_property: Any
) -> None:
    index, queries = recall_index
    measured = {mode: (recall(index, queries, mode, 1), recall(index, queries, mode, 5)) for mode in FLOORS}
    for mode, (at1, at5) in measured.items():
        print(f"recall {mode:6s} @1 {at1:.3f} @5 {at5:.3f}")
        record_property(f"recall_{mode}", f"@1 {at1:.3f} @5 {at5:.3f}")
        assert at1 >= FLOORS[mode][0] and at5 >= FLOORS[mode][1], (mode, at1, at5)
    fused_at1, fused_at5 = measured["fused"]
    assert fused_at5 >= 0.85
    for alone in ("bm25", "vector"):
        at1, at5 = measured[alone]
        assert fused_at5 >= at5 - 0.02 and fused_at1 >= at1 - 0.05, measured


# --- an OpenAI-compatible API ---------------------------------------------------------------------

requests_seen: list[dict[str, Any]] = []


def fake_vector(text: str, dim: int) -> list[float]:
    seed = sum(text.encode())
    return [float((seed * (i + 1)) % 7 + 1) for i in range(dim)]


async def embeddings(request: Request) -> Response:
    body = await request.json()
    requests_seen.append({"body": body, "auth": request.headers.get("authorization")})
    model = body["model"]
    if model == "broken":
        return PlainTextResponse("model exploded", 500)
    if model == "garbage":
        return PlainTextResponse("<html>not json</html>")
    if model == "wrong-shape":
        return JSONResponse({"data": [{"embedding": [1.0, 2.0], "index": 0}]})
    if request.headers.get("authorization") == "Bearer wrong":
        return JSONResponse({"error": "invalid key"}, 401)
    data = [
        {"object": "embedding", "index": i, "embedding": fake_vector(t, 4)}
        for i, t in enumerate(body["input"])
    ]
    return JSONResponse({"object": "list", "data": data[::-1], "model": model})  # out of order on purpose


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with serve_app(Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])) as base:
        yield f"{base}/v1"


async def test_api_embedder_posts_batches_and_normalises(api_url: str) -> None:
    requests_seen.clear()
    embedder = ApiEmbedder(api_url + "/", "text-embedding-test", 4, api_key="sk-test", batch_size=2)
    try:
        texts = ["one", "two", "three", "four", "five"]
        vectors = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    assert vectors.shape == (5, 4) and vectors.dtype == np.float32
    expected = np.array([fake_vector(t, 4) for t in texts], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert [r["body"]["input"] for r in requests_seen] == [["one", "two"], ["three", "four"], ["five"]]
    assert {r["auth"] for r in requests_seen} == {"Bearer sk-test"}
    assert embedder.name == "api/text-embedding-test/4" and embedder.dim == 4
    embedder = ApiEmbedder(api_url, "text-embedding-test", 4)
    try:
        query = await embedder.embed_query("six")  # (a query is a text like any to an API)
    finally:
        await embedder.aclose()
    assert query.shape == (4,)
    six = np.array(fake_vector("six", 4), dtype=np.float32)
    np.testing.assert_allclose(query, six / np.linalg.norm(six), atol=1e-6)


@pytest.mark.parametrize(
    ("model", "key", "message"),
    [
        ("broken", None, "answered 500: 'model exploded'"),
        ("garbage", None, "something other than an embeddings response"),
        ("wrong-shape", None, r"shape \(1, 2\) for 1 texts, expected \(1, 4\)"),
        ("fine", "wrong", "refused the request \\(401\\): check the API key"),
    ],
)
async def test_api_embedder_errors_say_what_went_wrong(
    api_url: str, model: str, key: str | None, message: str
) -> None:
    embedder = ApiEmbedder(api_url, model, 4, api_key=key)
    try:
        with pytest.raises(EmbedderError, match=message):
            await embedder.embed(["text"])
    finally:
        await embedder.aclose()


async def test_api_embedder_unreachable_server() -> None:
    with serve_app(Starlette()) as base:
        pass  # the port is free again once the server stops
    embedder = ApiEmbedder(base, "m", 4)
    try:
        with pytest.raises(
            EmbedderError, match=r"cannot reach the embeddings API .*SWITCHBOARD_MEMORY_EMBEDDINGS_URL"
        ):
            await embedder.embed(["text"])
    finally:
        await embedder.aclose()
    assert (await embedder.embed([])).shape == (0, 4)


def test_the_int8_encoder_is_kept_in_its_cache_and_read_back(tmp_path: Path) -> None:
    """Bytes built once are kept in the cache directory and loaded by the next start (or worker)
    instead of being built again; a kept file that cannot be loaded is built again, and encoders
    kept for other model files, onnx or onnxruntime versions are removed."""
    model = _model_dir()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "query-encoder-0123456789abcdef01234567.onnx").write_bytes(b"from an older install")
    first, cached = build(model, cache)
    assert not cached
    (kept,) = cache.glob("query-encoder-*.onnx")  # (the older one removed)
    second, cached = build(model, cache)
    assert cached
    ids, mask = np.array([[101, 7592, 2088, 102]], dtype=np.int64), np.ones((1, 4), dtype=np.float32)
    np.testing.assert_array_equal(first.forward(ids, mask), second.forward(ids, mask))
    kept.write_bytes(kept.read_bytes()[:1000])  # (cut short: a disk that filled up)
    third, cached = build(model, cache)
    assert not cached and kept.stat().st_size > 1000
    np.testing.assert_array_equal(first.forward(ids, mask), third.forward(ids, mask))
    (cache / ".query-encoder-0123.onnx.1.abcd").write_bytes(b"a writer that died")
    os.utime(cache / ".query-encoder-0123.onnx.1.abcd", (1, 1))
    kept.unlink()
    build(model, cache)  # (built and kept again: the dead writer's partial file goes)
    assert sorted(p.name for p in cache.iterdir()) == [kept.name]
    embedder = LocalEmbedder(cache_dir=cache)
    assert embedder.prepare_queries() == "int8"
    unreadable = tmp_path / "unreadable"
    unreadable.write_text("a file where the cache directory should be")
    _, cached = build(model, unreadable / "cache")  # (no cache to be had: built all the same)
    assert not cached
