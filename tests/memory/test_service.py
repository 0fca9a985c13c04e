"""The memory service without a model: memories, events and branches, records, expiry, bad
input, isolation between tenants and actors, and replicas that share PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from memory import Invalid, NotFound
from memory._schema import metadata
from tests.e2e.postgres import fresh_database
from tests.memory.conftest import conversation, memory_service

pytestmark = pytest.mark.anyio


async def test_the_migration_makes_exactly_the_tables_memory_declares(
    sqlite_url: Callable[[str], str],
) -> None:
    async with memory_service(sqlite_url("m"), run=False) as service, service.db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"version_table": "mem_alembic_version"}), metadata
            )
        )
    assert [d for d in diff if "mem_" in repr(d)] == []


async def test_events_list_newest_first_with_branches_metadata_and_pages(
    sqlite_url: Callable[[str], str],
) -> None:
    async with memory_service(sqlite_url("m"), run=False) as service:
        memory = await service.create_memory("default", name="chat", event_expiry_days=7)
        made = []
        for i in range(5):
            made.append(
                await service.create_event(
                    "default",
                    memory.id,
                    actor_id="user:1",
                    session_id="s1",
                    timestamp=1000.0 + i,
                    payload=conversation(f"turn {i}"),
                    metadata={"kind": {"stringValue": "even" if i % 2 == 0 else "odd"}},
                )
            )
        page = await service.list_events("default", memory.id, "user:1", "s1", max_results=2)
        assert [e.event_id for e in page.items] == [made[4].event_id, made[3].event_id]
        rest = await service.list_events(
            "default", memory.id, "user:1", "s1", max_results=10, next_token=page.next_token
        )
        assert [e.event_id for e in rest.items] == [
            e.event_id for e in reversed(made[:3])
        ] and rest.next_token is None

        odd = await service.list_events(
            "default",
            memory.id,
            "user:1",
            "s1",
            filter={
                "eventMetadata": [
                    {
                        "left": {"metadataKey": "kind"},
                        "operator": "EQUALS_TO",
                        "right": {"metadataValue": {"stringValue": "odd"}},
                    }
                ]
            },
        )
        assert [e.event_id for e in odd.items] == [made[3].event_id, made[1].event_id]

        fork = await service.create_event(
            "default",
            memory.id,
            actor_id="user:1",
            session_id="s1",
            timestamp=2000.0,
            payload=conversation("what if"),
            branch={"name": "alt", "rootEventId": made[1].event_id},
        )
        more = await service.create_event(
            "default",
            memory.id,
            actor_id="user:1",
            session_id="s1",
            timestamp=2001.0,
            payload=conversation("and then"),
            branch={"name": "alt"},
        )
        alt = await service.list_events(
            "default", memory.id, "user:1", "s1", filter={"branch": {"name": "alt"}}
        )
        assert [e.event_id for e in alt.items] == [more.event_id, fork.event_id]
        with_parents = await service.list_events(
            "default",
            memory.id,
            "user:1",
            "s1",
            filter={"branch": {"name": "alt", "includeParentBranches": True}},
        )
        assert [e.event_id for e in with_parents.items] == [
            more.event_id,
            fork.event_id,
            made[1].event_id,
            made[0].event_id,
        ]

        assert (await service.list_actors("default", memory.id)).items == ["user:1"]
        assert [s for s, _ in (await service.list_sessions("default", memory.id, "user:1")).items] == ["s1"]
        await service.delete_event("default", memory.id, "user:1", "s1", made[0].event_id)
        with pytest.raises(NotFound):
            await service.get_event("default", memory.id, "user:1", "s1", made[0].event_id)


async def test_bad_input_is_refused_with_what_to_fix_and_nothing_is_stored(
    sqlite_url: Callable[[str], str],
) -> None:
    async with memory_service(sqlite_url("m"), run=False) as service:
        with pytest.raises(NotFound, match="no memory 'nope'"):
            await service.create_event(
                "default", "nope", actor_id="a", session_id="s", payload=conversation("x")
            )
        with pytest.raises(Invalid, match=r"\{userId\}"):
            await service.create_memory(
                "default",
                name="m",
                strategies=[
                    {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/x/{userId}/"]}}
                ],
            )
        with pytest.raises(Invalid, match="eventExpiryDuration"):
            await service.create_memory("default", name="m", event_expiry_days=1000)
        memory = await service.create_memory("default", name="m")
        with pytest.raises(Invalid, match="already exists"):
            await service.create_memory("default", name="m")
        big = [{"conversational": {"content": {"text": "x" * 99_000}, "role": "USER"}}] * 11
        with pytest.raises(Invalid, match="at most 1,048,576"):
            await service.create_event("default", memory.id, actor_id="a", session_id="s", payload=big)
        with pytest.raises(Invalid, match="rootEventId 'missing'"):
            await service.create_event(
                "default",
                memory.id,
                actor_id="a",
                session_id="s",
                payload=conversation("x"),
                branch={"name": "b", "rootEventId": "missing"},
            )
        with pytest.raises(Invalid, match="does not exist"):
            await service.create_event(
                "default",
                memory.id,
                actor_id="a",
                session_id="s",
                payload=conversation("x"),
                branch={"name": "b"},
            )
        with pytest.raises(Invalid, match="sessionId"):
            await service.create_event(
                "default", memory.id, actor_id="a", session_id="bad id!", payload=conversation("x")
            )
        with pytest.raises(Invalid, match="nextToken"):
            await service.list_events("default", memory.id, "a", "s", next_token="forged")
        assert (await service.list_actors("default", memory.id)).items == []


async def test_a_client_token_makes_a_retried_event_one_event(sqlite_url: Callable[[str], str]) -> None:
    async with memory_service(sqlite_url("m"), run=False) as service:
        memory = await service.create_memory("default", name="m")
        first = await service.create_event(
            "default", memory.id, actor_id="a", session_id="s", payload=conversation("x"), client_token="t1"
        )
        again = await service.create_event(
            "default", memory.id, actor_id="a", session_id="s", payload=conversation("x"), client_token="t1"
        )
        assert again.event_id == first.event_id
        assert len((await service.list_events("default", memory.id, "a", "s")).items) == 1


async def test_events_and_records_expire(sqlite_url: Callable[[str], str]) -> None:
    now = [1_000_000.0]
    async with memory_service(sqlite_url("m"), run=False, clock=lambda: now[0]) as service:
        memory = await service.create_memory("default", name="m", event_expiry_days=3)
        event = await service.create_event(
            "default", memory.id, actor_id="a", session_id="s", payload=conversation("x")
        )
        ok, _ = await service.batch_create(
            "default",
            memory.id,
            [
                {
                    "requestIdentifier": "r",
                    "namespaces": ["/n/"],
                    "content": {"text": "The sky is blue."},
                    "timestamp": 1.0,
                }
            ],
        )
        async with (
            service.db.write() as conn
        ):  # a record that expires in a day (as a strategy's expiry would set)
            from memory._schema import records

            await conn.execute(sa.update(records).values(expires=now[0] + 86400))
        now[0] += 2 * 86400
        assert await service.retrieve("default", memory.id, query="sky colour") == []
        assert (await service.list_records("default", memory.id)).items == []
        assert (
            await service.get_event("default", memory.id, "a", "s", event.event_id)
        ).event_id == event.event_id
        now[0] += 2 * 86400
        assert await service.events.expire() == 1
        assert await service.records.expire() == 1
        with pytest.raises(NotFound):
            await service.get_record("default", memory.id, ok[0]["memoryRecordId"])


async def test_deleted_records_are_gone_from_the_index_and_updates_replace_their_text(
    sqlite_url: Callable[[str], str],
) -> None:
    async with memory_service(sqlite_url("m"), run=False) as service:
        memory = await service.create_memory("default", name="m")
        ok, _ = await service.batch_create(
            "default",
            memory.id,
            [
                {
                    "requestIdentifier": "1",
                    "namespaces": ["/n/a/"],
                    "content": {"text": "The user is allergic to peanuts."},
                    "timestamp": 1.0,
                },
                {
                    "requestIdentifier": "2",
                    "namespaces": ["/n/a/"],
                    "content": {"text": "The user plays the violin."},
                    "timestamp": 1.0,
                },
            ],
        )
        peanuts, violin = (r["memoryRecordId"] for r in ok)
        await service.batch_update(
            "default",
            memory.id,
            [{"memoryRecordId": violin, "timestamp": 2.0, "content": {"text": "The user plays the cello."}}],
        )
        found = await service.retrieve("default", memory.id, query="cello")
        assert found[0].memory_record_id == violin and found[0].text == "The user plays the cello."
        await service.delete_record("default", memory.id, peanuts)
        found = await service.retrieve("default", memory.id, query="peanut allergy", top_k=5)
        assert peanuts not in [r.memory_record_id for r in found]
        ok, failed = await service.batch_delete("default", memory.id, [violin, peanuts])
        assert [r["memoryRecordId"] for r in ok] == [violin] and [r["memoryRecordId"] for r in failed] == [
            peanuts
        ]
        assert await service.retrieve("default", memory.id, query="cello") == []


async def test_ingest_puts_a_document_into_long_term_memory_in_passages(
    sqlite_url: Callable[[str], str],
) -> None:
    async with memory_service(sqlite_url("m"), run=False) as service:
        memory = await service.create_memory("default", name="m")
        document = "\n\n".join(
            [
                f"Section {i}. " + ("The warranty covers parts and labour for two years. " * 20)
                for i in range(3)
            ]
            + ["Returns are accepted within 30 days with the receipt."]
        )
        records = await service.ingest("default", memory.id, actor_id="a", text=document, source="policy.txt")
        assert len(records) >= 2 and all(r.namespaces == ["/documents/a/"] for r in records)
        found = await service.retrieve(
            "default", memory.id, query="can I bring it back after three weeks?", top_k=1
        )
        assert "Returns are accepted" in found[0].text
        assert found[0].sources["document"] == "policy.txt"


_PEOPLE = st.lists(
    st.tuples(
        st.sampled_from(["t1", "t2"]),
        st.sampled_from(["ann", "ben", "cy"]),
        st.sampled_from(
            ["likes hiking", "owns a red car", "works as a nurse", "speaks Japanese", "is vegetarian"]
        ),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=_PEOPLE, query=st.sampled_from(["hobbies", "car", "job", "languages", "diet"]))
async def test_tenants_and_actors_never_see_each_others_records(
    sqlite_url: Callable[[str], str], people: list[tuple[str, str, str]], query: str
) -> None:
    import uuid

    async with memory_service(sqlite_url(f"p{uuid.uuid4().hex}"), run=False) as service:
        memories = {t: await service.create_memory(t, name="shared_name") for t in ("t1", "t2")}
        owner: dict[str, tuple[str, str]] = {}
        for tenant, actor, fact in people:
            ok, _ = await service.batch_create(
                tenant,
                memories[tenant].id,
                [
                    {
                        "requestIdentifier": "r",
                        "namespaces": [f"/actors/{actor}/"],
                        "content": {"text": f"The user {fact}."},
                        "timestamp": 1.0,
                    }
                ],
                actor_id=actor,
            )
            owner[ok[0]["memoryRecordId"]] = (tenant, actor)
        for tenant in ("t1", "t2"):
            other = memories["t2" if tenant == "t1" else "t1"]
            with pytest.raises(NotFound):
                await service.retrieve(tenant, other.id, query=query)
            for actor in ("ann", "ben", "cy"):
                found = await service.retrieve(
                    tenant, memories[tenant].id, query=query, top_k=20, actor_id=actor
                )
                assert all(owner[r.memory_record_id] == (tenant, actor) for r in found)
                listed = await service.list_records(
                    tenant, memories[tenant].id, actor_id=actor, max_results=100
                )
                mine = {rid for rid, who in owner.items() if who == (tenant, actor)}
                assert {r.memory_record_id for r in listed.items} == mine


async def test_replicas_on_postgresql_see_each_others_writes_and_deletes() -> None:
    async with (
        fresh_database("sb_memory_replicas") as url,
        memory_service(url, run=False) as one,
        memory_service(url, run=False) as two,
    ):
        memory = await one.create_memory("default", name="m")
        assert (
            await two.retrieve("default", memory.id, query="anything") == []
        )  # two's index is loaded, empty
        ok, _ = await one.batch_create(
            "default",
            memory.id,
            [
                {
                    "requestIdentifier": "r",
                    "namespaces": ["/n/"],
                    "content": {"text": "The office moved to Porto."},
                    "timestamp": 1.0,
                }
            ],
        )
        rid = ok[0]["memoryRecordId"]
        assert [
            r.memory_record_id for r in await two.retrieve("default", memory.id, query="where is the office?")
        ] == [rid]
        await one.delete_record("default", memory.id, rid)
        assert await two.retrieve("default", memory.id, query="where is the office?") == []
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                left: Any = (await conn.execute(sa.text("SELECT count(*) FROM mem_records"))).scalar()
            assert left == 0
        finally:
            await engine.dispose()
