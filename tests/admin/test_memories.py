"""The admin API's view of memories, in process (the admin routes on a real store and memory
service, extraction by a scripted model on loopback): making and listing memories, records and
jobs, a record with the events it came from and its text before an update, deleting, the
answers for bad input, and another tenant's key, which finds nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from gateway.admin import admin_routes
from gateway.hub import Hub
from gateway.settings import Settings
from gateway.store import Store
from gateway.system import Switchboard
from memory import LocalEmbedder, MemoryService, ModelSettings
from tests.support.memory_model import MemoryModel
from tests.support.model_server import serve_model

pytestmark = pytest.mark.anyio

EMBEDDER = LocalEmbedder()
M = "/admin/v1/memories"
STRATEGIES = [
    {"semanticMemoryStrategy": {"name": "facts"}},
    {"summaryMemoryStrategy": {"name": "summaries"}},
]


@dataclass
class Admin:
    system: Switchboard
    service: MemoryService
    http: httpx.AsyncClient  # the default tenant's admin key
    other: httpx.AsyncClient  # tenant acme's admin key
    brain: MemoryModel


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    brain = MemoryModel(facts={"Lisbon": ["The user lives in Lisbon."]})
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        with serve_model(brain.script()) as model:
            async with Hub() as hub:
                system = Switchboard(Settings(data_dir=tmp_path), store, hub)
                keys = [await system.create_tenant(t) for t in ("default", "acme")]
                service = MemoryService(
                    store.engine,
                    EMBEDDER,
                    model=ModelSettings(kind="openai", model="scripted", url=model.url + "/v1", timeout=10),
                    write_options=store.write_options,
                    window=0.05,
                    backoff=0.05,
                )
                await service.open()
                system.memory = service
                app = Starlette(routes=admin_routes(lambda: system))
                clients = [
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app),
                        base_url="http://admin",
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    for key in keys
                ]
                async with clients[0] as http, clients[1] as other, anyio.create_task_group() as tg:
                    tg.start_soon(service.run)
                    yield Admin(system, service, http, other, brain)
                    tg.cancel_scope.cancel()
    finally:
        await store.close()


def _said(*turns: str) -> list[dict[str, Any]]:
    roles = ("USER", "ASSISTANT")
    return [{"conversational": {"content": {"text": t}, "role": roles[i % 2]}} for i, t in enumerate(turns)]


async def test_a_record_shows_the_events_it_came_from_and_its_text_before_an_update(admin: Admin) -> None:
    made = await admin.http.post(M, json={"name": "travel", "eventExpiryDays": 30, "strategies": STRATEGIES})
    assert made.status_code == 201, made.text
    memory = made.json()
    assert memory["eventExpiryDays"] == 30
    assert [s["name"] for s in memory["strategies"]] == ["facts", "summaries"]
    facts, summaries = (s["strategyId"] for s in memory["strategies"])
    assert (await admin.http.get(M)).json()["memories"] == [memory]
    assert (await admin.http.get(f"{M}/{memory['id']}")).json() == memory

    first = await admin.service.create_event(
        "default", memory["id"], actor_id="alice", session_id="s1",
        payload=_said("I live in Lisbon, by the river.", "Lovely!"),
    )  # fmt: skip
    await admin.service.wait_idle("default", memory["id"])
    second = await admin.service.create_event(
        "default", memory["id"], actor_id="alice", session_id="s1", payload=_said("I cycle to work.")
    )
    await admin.service.wait_idle("default", memory["id"])

    jobs = (await admin.http.get(f"{M}/{memory['id']}/jobs")).json()["jobs"]
    assert [j["status"] for j in jobs] == ["COMPLETED", "COMPLETED"]
    assert [j["eventIds"] for j in jobs] == [[second.event_id], [first.event_id]]  # newest first

    listed = (await admin.http.get(f"{M}/{memory['id']}/records", params={"strategy": facts})).json()
    (fact,) = listed["records"]
    assert fact["content"]["text"] == "The user lives in Lisbon." and fact["actorId"] == "alice"
    shown = (await admin.http.get(f"{M}/{memory['id']}/records/{fact['memoryRecordId']}")).json()
    assert shown["record"] == fact
    sources = shown["sources"]
    assert [e["eventId"] for e in sources["events"]] == [first.event_id]
    assert sources["events"][0]["conversation"] == [
        {"role": "USER", "text": "I live in Lisbon, by the river."},
        {"role": "ASSISTANT", "text": "Lovely!"},
    ]
    assert sources["events"][0]["at"].endswith("Z") and sources["events"][0]["sessionId"] == "s1"
    assert sources["job"] == jobs[1]["jobId"] and sources["previousText"] is None
    assert sources["strategy"] == facts and sources["missingEvents"] == []

    # The session's summary was made by the first job and rewritten by the second.
    summary = (await admin.http.get(f"{M}/{memory['id']}/records", params={"strategy": summaries})).json()
    (record,) = summary["records"]
    assert record["sessionId"] == "s1"
    explained = (await admin.http.get(f"{M}/{memory['id']}/records/{record['memoryRecordId']}")).json()
    assert [e["eventId"] for e in explained["sources"]["events"]] == [first.event_id, second.event_id]
    assert explained["sources"]["job"] == jobs[0]["jobId"]
    assert explained["sources"]["earlierJobs"] == [jobs[1]["jobId"]]
    assert "Lisbon" in explained["sources"]["previousText"]
    assert "cycle" in explained["record"]["content"]["text"]

    # Filters: by actor, by namespace (a prefix), paged.
    assert (await admin.http.get(f"{M}/{memory['id']}/records", params={"actor": "bob"})).json() == {
        "records": []
    }
    by_space = await admin.http.get(
        f"{M}/{memory['id']}/records", params={"namespace": f"/strategies/{facts}/", "limit": 1}
    )
    assert [r["memoryRecordId"] for r in by_space.json()["records"]] == [fact["memoryRecordId"]]
    everything = (await admin.http.get(f"{M}/{memory['id']}/records", params={"limit": 1})).json()
    assert len(everything["records"]) == 1 and "nextCursor" in everything
    rest = await admin.http.get(f"{M}/{memory['id']}/records", params={"cursor": everything["nextCursor"]})
    assert len(rest.json()["records"]) == 1 and "nextCursor" not in rest.json()

    # An event that is gone is named, not shown.
    await admin.service.delete_event("default", memory["id"], "alice", "s1", second.event_id)
    again = (await admin.http.get(f"{M}/{memory['id']}/records/{record['memoryRecordId']}")).json()
    assert again["sources"]["missingEvents"] == [second.event_id]

    gone = await admin.http.delete(f"{M}/{memory['id']}/records/{fact['memoryRecordId']}")
    assert gone.status_code == 204
    missing = await admin.http.get(f"{M}/{memory['id']}/records/{fact['memoryRecordId']}")
    assert missing.status_code == 404 and fact["memoryRecordId"] in missing.json()["error"]
    assert (await admin.http.delete(f"{M}/{memory['id']}")).status_code == 204
    assert (await admin.http.get(f"{M}/{memory['id']}")).status_code == 404
    assert (await admin.http.get(M)).json() == {"memories": []}


async def test_another_tenants_key_finds_nothing_and_deletes_nothing(admin: Admin) -> None:
    memory = (await admin.http.post(M, json={"name": "private"})).json()
    written, _ = await admin.service.batch_create(
        "default",
        memory["id"],
        [{"content": {"text": "The code is 1234."}, "namespaces": ["/notes/ada/"]}],
        actor_id="ada",
    )
    record = f"{M}/{memory['id']}/records/{written[0]['memoryRecordId']}"
    shown = (await admin.http.get(record)).json()
    assert shown["record"]["content"]["text"] == "The code is 1234." and shown["record"]["actorId"] == "ada"
    assert shown["sources"]["written"] == "directly" and shown["sources"]["events"] == []

    assert (await admin.other.get(M)).json() == {"memories": []}
    for method, path in (
        ("GET", f"{M}/{memory['id']}"),
        ("GET", f"{M}/{memory['id']}/records"),
        ("GET", record),
        ("GET", f"{M}/{memory['id']}/jobs"),
        ("DELETE", record),
        ("DELETE", f"{M}/{memory['id']}"),
    ):
        answer = await admin.other.request(method, path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]
    assert (await admin.http.get(record)).status_code == 200  # untouched
    # The same name is free in the other tenant.
    assert (await admin.other.post(M, json={"name": "private"})).status_code == 201
    anonymous = await admin.http.get(M, headers={"Authorization": "Bearer nope"})
    assert anonymous.status_code == 401


async def test_bad_input_is_answered_by_what_was_wrong(admin: Admin) -> None:
    assert (await admin.http.post(M, json={"name": "dup"})).status_code == 201
    taken = await admin.http.post(M, json={"name": "dup"})
    assert taken.status_code == 400 and "already exists" in taken.json()["error"]
    shape = await admin.http.post(M, json={"name": "x", "strategies": [{"bogusStrategy": {}}]})
    assert shape.status_code == 422 and shape.json()["issues"]
    named = await admin.http.post(
        M, json={"name": "x", "strategies": [{"semanticMemoryStrategy": {"name": "9lives"}}]}
    )
    assert named.status_code == 400 and "9lives" in named.json()["error"]
    days = await admin.http.post(M, json={"name": "x", "eventExpiryDays": 1})
    assert days.status_code == 422
    dup_id = (await admin.http.get(M)).json()["memories"][0]["id"]
    limit = await admin.http.get(f"{M}/{dup_id}/records", params={"limit": "lots"})
    assert limit.status_code == 400 and "limit" in limit.json()["error"]
    cursor = await admin.http.get(f"{M}/{dup_id}/records", params={"cursor": "forged"})
    assert cursor.status_code == 400 and "nextToken" in cursor.json()["error"]

    store = admin.system.store
    admin.system.memory = MemoryService(store.engine, EMBEDDER, write_options=store.write_options)
    needs = await admin.http.post(M, json={"name": "smart", "strategies": STRATEGIES})
    assert needs.status_code == 503 and "SWITCHBOARD_MEMORY_MODEL" in needs.json()["error"]
    admin.system.memory = None
    assert (await admin.http.get(M)).status_code == 503


async def test_a_document_goes_straight_into_long_term_memory(admin: Admin) -> None:
    memory = (await admin.http.post(M, json={"name": "manuals"})).json()
    text = "The boiler must be serviced every year.\n\nIts warranty lasts five years from installation."
    made = await admin.http.post(
        f"{M}/{memory['id']}/documents", json={"actorId": "ada", "text": text, "source": "boiler.pdf"}
    )
    assert made.status_code == 201, made.text
    records = made.json()["records"]
    assert [r["namespaces"] for r in records] == [["/documents/ada/"]]  # (short paragraphs: one passage)
    found = await admin.service.retrieve("default", memory["id"], query="how long is the guarantee?")
    assert "warranty lasts five years" in found[0].text and found[0].sources["document"] == "boiler.pdf"
    shown = (await admin.http.get(f"{M}/{memory['id']}/records/{records[0]['memoryRecordId']}")).json()
    assert shown["sources"]["document"] == "boiler.pdf"
    bad = await admin.http.post(f"{M}/{memory['id']}/documents", json={"actorId": "a b", "text": "x"})
    assert bad.status_code == 400 and "actorId" in bad.json()["error"]
    other = await admin.other.post(f"{M}/{memory['id']}/documents", json={"actorId": "ada", "text": "x"})
    assert other.status_code == 404
