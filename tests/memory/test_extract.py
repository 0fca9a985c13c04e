"""Extraction and consolidation, with a scripted model on loopback speaking OpenAI's chat API."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memory import Invalid, MemoryView, Unavailable
from tests.memory.conftest import conversation, memory_service, settled
from tests.support.memory_model import MemoryModel
from tests.support.model_server import serve_model

pytestmark = pytest.mark.anyio

ALL_FOUR = [
    {"semanticMemoryStrategy": {"name": "facts"}},
    {"summaryMemoryStrategy": {"name": "summaries"}},
    {"userPreferenceMemoryStrategy": {"name": "preferences"}},
    {
        "episodicMemoryStrategy": {
            "name": "episodes",
            "reflectionConfiguration": {"namespaceTemplates": ["/lessons/{actorId}/"]},
        }
    },
]


def _by_name(memory: MemoryView) -> dict[str, str]:
    return {s.name: s.strategy_id for s in memory.strategies}


async def test_the_four_strategies_extract_records_that_keep_their_sources(
    sqlite_url: Callable[[str], str],
) -> None:
    brain = MemoryModel(
        facts={"Lisbon": ["The user lives in Lisbon."]},
        preferences={"aisle": ["The user prefers aisle seats on flights."]},
        episodes={
            "rebook": [
                {
                    "situation": "A cancelled flight",
                    "intent": "rebook",
                    "actions": ["search_flights"],
                    "outcome": "Booked the 9:40 flight",
                    "succeeded": True,
                    "lesson": "Search early flights first",
                }
            ]
        },
        reflections=["When a flight is cancelled, look at the earliest flights first."],
    )
    with serve_model(brain.script()) as model:
        async with memory_service(sqlite_url("m"), model_url=model.url + "/v1") as service:
            memory = await service.create_memory("default", name="travel", strategies=ALL_FOUR)
            ids = _by_name(memory)
            first = await service.create_event(
                "default",
                memory.id,
                actor_id="alice",
                session_id="s1",
                payload=conversation("I live in Lisbon and I always take an aisle seat.", "Noted!"),
            )
            second = await service.create_event(
                "default",
                memory.id,
                actor_id="alice",
                session_id="s1",
                payload=conversation(
                    "My flight was cancelled, please rebook me.", "Done: you are on the 9:40."
                ),
            )
            jobs = await settled(service, memory.id)
            assert [j.status for j in jobs] == ["COMPLETED"]
            assert jobs[0].event_ids == [first.event_id, second.event_id]  # one job for the session's batch

            facts = await service.retrieve(
                "default",
                memory.id,
                query="Where is the user's home?",
                namespace=f"/strategies/{ids['facts']}/actors/alice/",
            )
            assert [r.text for r in facts] == ["The user lives in Lisbon."]
            record, events = await service.explain("default", memory.id, facts[0].memory_record_id)
            assert [e.event_id for e in events] == [first.event_id, second.event_id]
            assert record.sources["job"] == jobs[0].job_id

            seats = await service.retrieve(
                "default", memory.id, query="seat on planes", strategy_id=ids["preferences"]
            )
            assert [r.text for r in seats] == ["The user prefers aisle seats on flights."]
            summary = await service.list_records("default", memory.id, strategy_id=ids["summaries"])
            assert summary.items[0].namespaces == [
                f"/strategies/{ids['summaries']}/actors/alice/sessions/s1/"
            ]
            assert "rebook" in summary.items[0].text
            episodes = await service.list_records("default", memory.id, strategy_id=ids["episodes"])
            texts = sorted(r.text for r in episodes.items)
            assert (
                texts[0].startswith("Situation: A cancelled flight.")
                and "Lesson: Search early flights" in texts[0]
            )
            assert texts[1] == "When a flight is cancelled, look at the earliest flights first."
            lessons = await service.list_records("default", memory.id, namespace="/lessons/alice/")
            assert len(lessons.items) == 1


async def test_the_same_fact_twice_gives_one_record_without_asking_the_model(
    sqlite_url: Callable[[str], str],
) -> None:
    brain = MemoryModel(facts={"Lisbon": ["The user lives in Lisbon."]})
    with serve_model(brain.script()) as model:
        async with memory_service(sqlite_url("m"), model_url=model.url + "/v1") as service:
            memory = await service.create_memory(
                "default", name="m", strategies=[{"semanticMemoryStrategy": {"name": "facts"}}]
            )
            for session in ("s1", "s2"):
                await service.create_event(
                    "default",
                    memory.id,
                    actor_id="bob",
                    session_id=session,
                    payload=conversation("I moved to Lisbon last year."),
                )
                await settled(service, memory.id)
            records = await service.list_records("default", memory.id)
            assert [r.text for r in records.items] == ["The user lives in Lisbon."]
            assert brain.steps("consolidate") == []  # the repeat was known without the model
            assert len(brain.steps("extract SEMANTIC")) == 2


async def test_a_changed_preference_updates_the_record_and_keeps_both_sources(
    sqlite_url: Callable[[str], str],
) -> None:
    brain = MemoryModel(
        preferences={
            "window": ["The user prefers window seats on flights."],
            "aisle": ["The user now prefers aisle seats on flights."],
        }
    )
    with serve_model(brain.script()) as model:
        async with memory_service(sqlite_url("m"), model_url=model.url + "/v1") as service:
            memory = await service.create_memory(
                "default", name="m", strategies=[{"userPreferenceMemoryStrategy": {"name": "prefs"}}]
            )
            old = await service.create_event(
                "default",
                memory.id,
                actor_id="carol",
                session_id="s1",
                payload=conversation("Give me a window seat, as always."),
            )
            await settled(service, memory.id)
            before = (await service.list_records("default", memory.id)).items
            new = await service.create_event(
                "default",
                memory.id,
                actor_id="carol",
                session_id="s2",
                payload=conversation("These days I want the aisle."),
            )
            await settled(service, memory.id)
            after = (await service.list_records("default", memory.id)).items
            assert [r.text for r in after] == ["The user now prefers aisle seats on flights."]
            assert after[0].memory_record_id == before[0].memory_record_id  # updated, not added
            shown = brain.steps("consolidate")
            assert len(shown) == 1 and before[0].memory_record_id in shown[0]
            _, events = await service.explain("default", memory.id, after[0].memory_record_id)
            assert {e.event_id for e in events} == {old.event_id, new.event_id}
            assert after[0].sources["previous"] == "The user prefers window seats on flights."
            found = await service.retrieve("default", memory.id, query="window seat")
            assert [r.memory_record_id for r in found] == [
                after[0].memory_record_id
            ]  # the old text is not indexed


async def test_garbage_is_asked_again_and_a_job_that_keeps_failing_can_be_started_again(
    sqlite_url: Callable[[str], str],
) -> None:
    brain = MemoryModel(facts={"tea": ["The user drinks green tea."]}, garbage=1)
    with serve_model(brain.script()) as model:
        async with memory_service(sqlite_url("m"), model_url=model.url + "/v1", attempts=2) as service:
            memory = await service.create_memory(
                "default", name="m", strategies=[{"semanticMemoryStrategy": {"name": "facts"}}]
            )
            await service.create_event(
                "default",
                memory.id,
                actor_id="dan",
                session_id="s1",
                payload=conversation("I drink green tea."),
            )
            jobs = await settled(service, memory.id)
            assert [j.status for j in jobs] == ["COMPLETED"]  # the second answer of the same request was good
            retry = brain.seen[1][2]
            assert "not valid" in retry  # the re-ask quotes the problem

            brain.garbage = 10**6  # from now on, nothing but garbage
            event = await service.create_event(
                "default",
                memory.id,
                actor_id="dan",
                session_id="s2",
                payload=conversation("I drink green tea at noon."),
            )
            jobs = await settled(service, memory.id)
            failed = [j for j in jobs if j.status == "FAILED"]
            assert len(failed) == 1 and failed[0].attempts == 2
            assert "JSON" in (failed[0].failure_reason or "") or "valid" in (failed[0].failure_reason or "")
            assert (
                await service.get_event("default", memory.id, "dan", "s2", event.event_id)
            ).event_id == event.event_id

            brain.garbage = 0
            await service.start_job("default", memory.id, failed[0].job_id)
            jobs = await settled(service, memory.id)
            assert {j.status for j in jobs} == {"COMPLETED"}
            with pytest.raises(Invalid, match="only a FAILED job"):
                await service.start_job("default", memory.id, failed[0].job_id)


async def test_a_model_that_cannot_be_reached_fails_the_job_with_the_reason(
    sqlite_url: Callable[[str], str],
) -> None:
    closed = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
    async with memory_service(sqlite_url("m"), model_url=closed, model_seconds=2.0, attempts=1) as service:
        memory = await service.create_memory(
            "default", name="m", strategies=[{"semanticMemoryStrategy": {"name": "facts"}}]
        )
        event = await service.create_event(
            "default", memory.id, actor_id="eve", session_id="s1", payload=conversation("x")
        )
        jobs = await settled(service, memory.id)
        assert jobs[0].status == "FAILED"
        reason = jobs[0].failure_reason or ""
        assert "memory model's URL" in reason and "127.0.0.1:9" not in reason  # (the operator's, redacted)
        assert jobs[0].event_ids == [event.event_id]


async def test_without_a_model_strategies_are_refused_and_the_rest_works(
    sqlite_url: Callable[[str], str],
) -> None:
    async with memory_service(sqlite_url("m")) as service:
        with pytest.raises(Unavailable, match="SWITCHBOARD_MEMORY_MODEL"):
            await service.create_memory(
                "default", name="m", strategies=[{"semanticMemoryStrategy": {"name": "facts"}}]
            )
        memory = await service.create_memory("default", name="m")
        event = await service.create_event(
            "default", memory.id, actor_id="a", session_id="s", payload=conversation("hello")
        )
        assert (await service.list_events("default", memory.id, "a", "s")).items == [event]
        ok, failed = await service.batch_create(
            "default",
            memory.id,
            [
                {
                    "requestIdentifier": "r1",
                    "namespaces": ["/notes/a/"],
                    "content": {"text": "The user's dog is called Rex."},
                    "timestamp": 1.0,
                },
            ],
        )
        assert failed == [] and len(ok) == 1
        found = await service.retrieve("default", memory.id, query="what is the name of my pet?")
        assert [r.memory_record_id for r in found] == [ok[0]["memoryRecordId"]]
