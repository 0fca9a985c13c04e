"""What the security review of memory found (notes: review-21), each one shown closed."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from memory import ApiEmbedder, Invalid, NotFound, Unavailable
from memory._memories import actor_of
from tests.memory.conftest import conversation, memory_service, settled
from tests.support.memory_model import MemoryModel
from tests.support.model_server import serve_model

pytestmark = pytest.mark.anyio


def test_templates_that_would_make_reading_a_namespace_back_slow_are_refused() -> None:
    from memory._memories import check_template

    for bad in ("/{actorId}{sessionId}/", "/{actorId}-{sessionId}-{memoryStrategyId}/"):
        with pytest.raises(Invalid):
            check_template(bad, "t")
    began = time.perf_counter()
    assert actor_of("/{actorId}-{sessionId}x/", "/" + "a-" * 255 + "/") is None
    assert actor_of("/u/{actorId}/{sessionId}/", "/u/ann/s1/") == "ann"
    assert time.perf_counter() - began < 1.0  # (a bound, not a benchmark: it was minutes)


async def test_a_record_of_another_memory_cannot_be_replaced_through_this_one(
    sqlite_url: Callable[[str], str],
) -> None:
    async with memory_service(sqlite_url("m"), run=False) as service:
        mine = await service.create_memory("t1", name="mine")
        theirs = await service.create_memory("t2", name="theirs")
        ok, _ = await service.batch_create(
            "t2",
            theirs.id,
            [{"requestIdentifier": "r", "namespaces": ["/n/"], "content": {"text": "Theirs."}}],
        )
        victim = ok[0]["memoryRecordId"]
        written, failed = await service.batch_create(
            "t1",
            mine.id,
            [
                {
                    "requestIdentifier": "x",
                    "memoryRecordId": victim,
                    "namespaces": ["/n/"],
                    "content": {"text": "Mine."},
                }
            ],
        )
        assert (
            written and written[0]["memoryRecordId"] != victim and not failed
        )  # (a new record: the id is ours)
        kept = await service.get_record("t2", theirs.id, victim)
        assert kept.text == "Theirs."
        _, failed = await service.batch_update(
            "t1", mine.id, [{"memoryRecordId": victim, "content": {"text": "x"}}]
        )
        assert failed and failed[0]["errorCode"] == 404
        assert (await service.get_record("t2", theirs.id, victim)).text == "Theirs."


async def test_limits_on_strategies_models_numbers_and_metadata(sqlite_url: Callable[[str], str]) -> None:
    async with memory_service(sqlite_url("m"), model_url="http://127.0.0.1:9/v1", run=False) as service:
        many = [{"semanticMemoryStrategy": {"name": f"s{i}"}} for i in range(7)]
        with pytest.raises(Invalid, match="at most 6 strategies"):
            await service.create_memory("default", name="many", strategies=many)
        pricey = {"semanticOverride": {"extraction": {"appendToPrompt": "x", "modelId": "gold-model"}}}
        with pytest.raises(Invalid, match="SWITCHBOARD_MEMORY_MODEL_CHOICES"):
            await service.create_memory(
                "default",
                name="p",
                strategies=[{"customMemoryStrategy": {"name": "c", "configuration": pricey}}],
            )
        for bad in ({"recordExpirySpecification": "30"}, {"reflectionConfiguration": "yes"}):
            with pytest.raises(Invalid):
                await service.create_memory(
                    "default", name="b", strategies=[{"episodicMemoryStrategy": {"name": "e", **bad}}]
                )
        memory = await service.create_memory("default", name="m")
        huge = [{"json": {"content": {"n": 2**70}}}]
        with pytest.raises(Invalid, match="64 bits"):
            await service.create_event("default", memory.id, actor_id="a", session_id="s", payload=huge)
        _, failed = await service.batch_create(
            "default",
            memory.id,
            [
                {
                    "requestIdentifier": "r",
                    "namespaces": ["/n/"],
                    "content": {"text": "x"},
                    "metadata": {"n": {"numberValue": 2**70}},
                }
            ],
        )
        assert "64 bits" in failed[0]["errorMessage"]


async def test_consolidation_never_rewrites_another_actors_record_in_a_shared_namespace(
    sqlite_url: Callable[[str], str],
) -> None:
    brain = MemoryModel(facts={"office": ["The office is in Porto."]})
    shared = [{"semanticMemoryStrategy": {"name": "facts", "namespaces": ["/shared/facts/"]}}]
    with serve_model(brain.script()) as model:
        async with memory_service(sqlite_url("m"), model_url=model.url + "/v1") as service:
            memory = await service.create_memory("default", name="m", strategies=shared)
            ok, _ = await service.batch_create(
                "default",
                memory.id,
                [
                    {
                        "requestIdentifier": "r",
                        "namespaces": ["/shared/facts/"],
                        "content": {"text": "The office is in Porto."},
                    }
                ],
                actor_id="ann",
            )
            await service.create_event(
                "default",
                memory.id,
                actor_id="bob",
                session_id="s",
                payload=conversation("Our office is in Porto."),
            )
            await settled(service, memory.id)
            records = (await service.list_records("default", memory.id)).items
            owners = sorted((r.actor_id, r.text) for r in records)
            assert owners == [("ann", "The office is in Porto."), ("bob", "The office is in Porto.")]
            assert (await service.get_record("default", memory.id, ok[0]["memoryRecordId"])).actor_id == "ann"


async def test_embeddings_down_is_unavailable_without_the_operators_url(
    sqlite_url: Callable[[str], str],
) -> None:
    async with memory_service(sqlite_url("m"), run=False) as service:
        memory = await service.create_memory("default", name="m")
        down_api = ApiEmbedder("http://127.0.0.1:9/v1", "m", 384)  # (nothing listens there)
        service.records.embedder = down_api
        try:
            with pytest.raises(Unavailable) as down:
                await service.retrieve("default", memory.id, query="anything")
        finally:
            await down_api.aclose()
        assert "127.0.0.1:9" not in str(down.value) and "embeddings API's URL" in str(down.value)
        with pytest.raises(NotFound):
            await service.retrieve("other", memory.id, query="anything")
