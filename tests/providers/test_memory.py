"""The memory target's provider on a real memory service (SQLite, the local embedder): every caller
reaches their own records only, by actor id and by namespace; what the model gets back; the
configuration; and the errors a model can read when the memory is missing or not served."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.config import MemoryTarget, load_document
from gateway.core.errors import ConfigError, ToolExecutionError, ToolNotFound, UpstreamUnavailable
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult
from gateway.providers import provider_class
from gateway.providers.memory import MemoryProvider, actor_id
from memory import LocalEmbedder, MemoryService, ModelSettings

pytestmark = pytest.mark.anyio

EMBEDDER = LocalEmbedder()  # (its weights load once, on first use)
ACTOR = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_/]*(?::[a-zA-Z0-9-_/]+)*")  # AgentCore's actorId
SEGMENT = re.compile(r"[A-Za-z0-9_-]+")  # one namespace segment


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[MemoryService]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}")
    # A model is configured so a memory may have strategies; nothing here runs extraction.
    model = ModelSettings(kind="openai", model="never-asked", url="http://127.0.0.1:9/v1")
    made = MemoryService(engine, EMBEDDER, model=model)
    await made.open()
    try:
        yield made
    finally:
        await engine.dispose()


def _provider(service: MemoryService | None, **fields: Any) -> MemoryProvider:
    config = MemoryTarget.model_validate({"name": "mem", "kind": "memory", "memory": "notes", **fields})
    provider = MemoryProvider(config)
    provider.memory = service
    return provider


def _ctx(subject: str, tenant: str = "default") -> CallContext:
    return CallContext(principal=Principal(tenant=tenant, subject=subject))


async def _call(provider: MemoryProvider, subject: str, tool: str, **arguments: Any) -> ToolResult:
    return await provider.call_tool(ToolCall(tool, arguments, f"mem___{tool}"), _ctx(subject))


def _ids(result: ToolResult) -> list[str]:
    assert result.structured is not None
    return [r["id"] for r in result.structured["records"]]


async def test_a_caller_never_recalls_or_forgets_another_callers_records(service: MemoryService) -> None:
    await service.create_memory("default", name="notes")
    provider = _provider(service)
    secret = "Bob's locker code is 4711."
    bobs = (await _call(provider, "bob", "remember", text=secret)).structured
    assert bobs is not None
    alices = (await _call(provider, "alice", "remember", text="Alice likes green tea.")).structured
    assert alices is not None
    assert bobs["namespace"] == "/actors/bob/notes/" and alices["namespace"] == "/actors/alice/notes/"

    found = await _call(provider, "alice", "recall", query=secret, top_k=10)
    assert _ids(found) == [alices["id"]]  # the exact text of bob's record: still only her own
    assert found.content[0]["text"].count("4711") == 1  # (the query, said back)
    assert bobs["id"] not in _ids(await _call(provider, "alice", "list", limit=100))
    assert _ids(await _call(provider, "bob", "recall", query=secret)) == [bobs["id"]]

    with pytest.raises(ToolExecutionError) as refused:
        await _call(provider, "alice", "forget", id=bobs["id"])
    with pytest.raises(ToolExecutionError) as unknown:
        await _call(provider, "alice", "forget", id="mem-00000000-0000-0000-0000-000000000000")
    # Another's record reads exactly as one that does not exist.
    assert str(refused.value).replace(bobs["id"], "X") == str(unknown.value).replace(
        "mem-00000000-0000-0000-0000-000000000000", "X"
    )
    memory_id = (await provider._memory(service, "default")).id
    kept = await service.get_record("default", memory_id, bobs["id"])
    assert kept.text == secret and kept.actor_id == "bob"

    forgotten = await _call(provider, "bob", "forget", id=bobs["id"])
    assert forgotten.structured == {"id": bobs["id"], "forgotten": True}
    assert _ids(await _call(provider, "bob", "list")) == []


async def test_remembered_text_is_recalled_by_a_paraphrase(service: MemoryService) -> None:
    await service.create_memory("default", name="notes")
    provider = _provider(service, top_k=2)
    for text in (
        "The user's daughter is allergic to peanuts.",
        "The user drives a blue Volvo.",
        "The user's favourite composer is Bach.",
    ):
        await _call(provider, "ada@example.com", "remember", text=text, metadata={"topic": "family"})
    found = await _call(provider, "ada@example.com", "recall", query="Which foods must her child avoid?")
    assert found.structured is not None
    records = found.structured["records"]
    assert len(records) == 2  # the target's top_k
    assert records[0]["text"] == "The user's daughter is allergic to peanuts."
    assert 0 < records[0]["score"] <= 1 and records[0]["createdAt"].endswith("Z")
    assert records[0]["namespace"] == f"/actors/{actor_id('ada@example.com')}/notes/"
    assert "1. [" in found.content[0]["text"] and "peanuts" in found.content[0]["text"]
    memory_id = (await provider._memory(service, "default")).id
    stored = await service.get_record("default", memory_id, records[0]["id"])
    assert stored.metadata == {"topic": {"stringValue": "family"}}
    nothing = await _call(provider, "someone-else", "recall", query="peanuts")
    assert nothing.structured == {"records": []} and "Nothing" in nothing.content[0]["text"]


async def test_list_pages_newest_first(service: MemoryService) -> None:
    await service.create_memory("default", name="notes")
    provider = _provider(service)
    made = []
    for i in range(5):
        result = await _call(provider, "ada", "remember", text=f"Fact number {i}.")
        assert result.structured is not None
        made.append(result.structured["id"])
    first = await _call(provider, "ada", "list", limit=2)
    assert first.structured is not None and _ids(first) == made[::-1][:2]
    second = await _call(provider, "ada", "list", limit=2, cursor=first.structured["nextCursor"])
    assert second.structured is not None and _ids(second) == made[::-1][2:4]
    last = await _call(provider, "ada", "list", limit=2, cursor=second.structured["nextCursor"])
    assert last.structured is not None and "nextCursor" not in last.structured
    assert _ids(last) == [made[0]]
    with pytest.raises(ToolExecutionError, match="nextCursor"):
        await _call(provider, "ada", "list", cursor="not-a-cursor")


async def test_the_strategy_and_session_narrow_what_a_caller_reaches(service: MemoryService) -> None:
    strategies = [
        {"semanticMemoryStrategy": {"name": "facts"}},
        {"summaryMemoryStrategy": {"name": "summaries"}},
    ]
    view = await service.create_memory("default", name="notes", strategies=strategies)
    facts, summaries = view.strategies
    # Records as extraction would write them (the owner read from the strategy's namespace).
    written = {}
    for strategy, namespace, text in (
        (facts, f"/strategies/{facts.strategy_id}/actors/ada/", "Ada works as a pilot."),
        (
            summaries,
            f"/strategies/{summaries.strategy_id}/actors/ada/sessions/s1/",
            "Ada talked about planes.",
        ),
        (
            summaries,
            f"/strategies/{summaries.strategy_id}/actors/ada/sessions/s2/",
            "Ada talked about airports.",
        ),
        (facts, f"/strategies/{facts.strategy_id}/actors/bob/", "Bob works as a pilot."),
    ):
        item = {
            "content": {"text": text},
            "namespaces": [namespace],
            "memoryStrategyId": strategy.strategy_id,
        }
        ok, failed = await service.batch_create("default", view.id, [item])
        assert not failed
        written[text] = ok[0]["memoryRecordId"]
    everything = _provider(service)
    note = (await _call(everything, "ada", "remember", text="Ada's pilot licence renews in June.")).structured
    assert note is not None
    found = await _call(everything, "ada", "recall", query="pilot airplanes", top_k=10)
    mine = {written[t] for t in written if t.startswith("Ada")} | {note["id"]}
    assert set(_ids(found)) == mine  # notes and every strategy's records, never bob's
    assert set(_ids(await _call(everything, "ada", "list"))) == mine

    only_facts = _provider(service, strategy=facts.strategy_id)
    assert [t.name for t in await only_facts.list_tools(_ctx("ada"))] == ["recall", "list", "forget"]
    with pytest.raises(ToolNotFound):  # (what it wrote, its recall could not find)
        await _call(only_facts, "ada", "remember", text="x")
    assert _ids(await _call(only_facts, "ada", "recall", query="pilot", top_k=10)) == [
        written["Ada works as a pilot."]
    ]
    with pytest.raises(ToolExecutionError, match="no record"):  # a note: not this target's to forget
        await _call(only_facts, "ada", "forget", id=note["id"])

    one_session = _provider(service, strategy=summaries.strategy_id, session="s1")
    assert _ids(await _call(one_session, "ada", "list")) == [written["Ada talked about planes."]]

    missing = _provider(service, strategy="nosuch-strategy")
    with pytest.raises(ToolExecutionError, match="nosuch-strategy"):
        await _call(missing, "ada", "recall", query="x")


async def test_a_memory_is_found_by_name_or_id_and_its_absence_is_a_tool_error(
    service: MemoryService,
) -> None:
    provider = _provider(service)
    with pytest.raises(ToolExecutionError, match=r"no memory 'notes' yet.*POST /admin/v1/memories"):
        await _call(provider, "ada", "recall", query="x")
    view = await service.create_memory("default", name="notes")
    await _call(provider, "ada", "remember", text="Made after the target.")
    by_id = _provider(service, memory=view.id)
    assert len(_ids(await _call(by_id, "ada", "list"))) == 1
    with pytest.raises(ToolExecutionError, match="no memory"):  # another tenant's memory: none
        await by_id.call_tool(ToolCall("list", {}), _ctx("ada", tenant="acme"))
    await service.delete_memory("default", view.id)
    again = await service.create_memory("default", name="notes")  # (a new id under the old name)
    assert _ids(await _call(provider, "ada", "list")) == []  # the new memory, found again by its name
    await _call(provider, "ada", "remember", text="Into the new one.")
    assert len((await service.list_records("default", again.id)).items) == 1


async def test_without_a_memory_service_the_tools_are_listed_and_calls_are_unavailable() -> None:
    provider = _provider(None)
    tools = {t.name: t for t in await provider.list_tools(_ctx("ada"))}
    assert set(tools) == {"remember", "recall", "list", "forget"}
    assert tools["remember"].input_schema["required"] == ["text"]
    assert tools["recall"].annotations == {"openWorldHint": False, "readOnlyHint": True}
    assert tools["forget"].annotations is not None and tools["forget"].annotations["destructiveHint"]
    with pytest.raises(UpstreamUnavailable, match="serves no memory"):
        await _call(provider, "ada", "recall", query="x")
    with pytest.raises(ToolNotFound):
        await _call(provider, "ada", "teleport")
    assert provider_class("memory") is MemoryProvider


@pytest.mark.parametrize(
    "subject",
    [
        "ada",
        "ada-lovelace_1",
        "ada@example.com",
        "auth0|1234",
        "user:7",
        "a/b",
        "--x",
        "a--b",
        "é",
        "",
        "x" * 300,
    ],
)
def test_every_subject_is_an_actor_id_of_one_namespace_segment(subject: str) -> None:
    made = actor_id(subject)
    assert ACTOR.fullmatch(made) and SEGMENT.fullmatch(made) and len(made) <= 100
    assert (made == subject) == (subject in ("ada", "ada-lovelace_1"))


def test_subjects_that_read_alike_are_different_actors() -> None:
    subjects = ["ada@example.com", "ada_example.com", "ada.example.com", "ada_example_com", "ada--1"]
    made = [actor_id(s) for s in subjects]
    assert len(set(made)) == len(subjects)
    # A subject shaped like a made id is made again, never taken as that id.
    assert actor_id(made[0]) != made[0]


def _load(**fields: Any) -> MemoryTarget:
    target = {"name": "m", "kind": "memory", "memory": "notes", **fields}
    doc = load_document(yaml.safe_dump({"gateways": [{"name": "g", "targets": [target]}]}), "sw.yaml")
    loaded = doc.gateways[0].targets[0]
    assert isinstance(loaded, MemoryTarget)
    return loaded


def test_the_configuration_keeps_each_callers_namespace_apart() -> None:
    target = _load()
    assert target.namespace == "/actors/{actorId}/notes/" and target.top_k == 5
    assert _load(namespace="/t/{sessionId}/{actorId}/", session="s1").session == "s1"
    for fields, problem in (
        ({"namespace": "/shared/"}, "must hold {actorId}/"),
        ({"namespace": "/a/{actorId}"}, "must hold {actorId}/"),
        ({"namespace": "/a/{actorId}/{memoryStrategyId}/"}, "{memoryStrategyId} is not a variable here"),
        ({"namespace": "/a/{actorId}/{sessionId}/"}, "give the target a `session`"),
        ({"namespace": "/a b/{actorId}/"}, "letters, digits"),
        ({"top_k": 0}, "greater than or equal to 1"),
        ({"memory": "../x"}, "targets[0].memory"),
    ):
        with pytest.raises(ConfigError) as refused:
            _load(**fields)
        assert problem in str(refused.value), fields
