"""The A2A front's task and push-config stores over a real store: task states written behind
in batches (many tasks ending together cost one transaction; a refused row, or one the database
cannot take, fails alone), and a task made here just now needs no read of its push configs
until one is set."""

from __future__ import annotations

import json
import logging

import anyio
import pytest
from a2a.server.context import ServerCallContext
from a2a.types import Task, TaskPushNotificationConfig, TaskState

from gateway.a2a._stores import StoredPushConfigs, StoredTasks, _Batches
from gateway.core.types import Principal
from gateway.store import Store, StoreA2a, TaskRow

pytestmark = pytest.mark.anyio


class CountingA2a(StoreA2a):
    """The real store, counting its transactions for tasks and its reads of push configs."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.batches: list[int] = []
        self.push_reads = 0

    async def save_tasks(self, rows: list[TaskRow]) -> list[str]:  # type: ignore[override]
        self.batches.append(len(rows))
        await anyio.sleep(0.05)  # (a slow disk: the tasks ending meanwhile join the next batch)
        return await super().save_tasks(rows)

    async def get_push(self, task_id: str, tenant: str | None = None, owner: str | None = None) -> list[str]:
        self.push_reads += 1
        return list(await super().get_push(task_id, tenant, owner))


def _context(subject: str) -> ServerCallContext:
    return ServerCallContext(
        state={"target": ("default", "g", "helper"), "principal": Principal(subject=subject)}
    )


def _task(task_id: str, state: TaskState) -> Task:
    task = Task(id=task_id, context_id="c1")
    task.status.state = state
    return task


async def test_many_tasks_ending_together_are_written_in_few_transactions(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingA2a(store)
    tasks = StoredTasks(counting)
    await counting.save_task(TaskRow("bobs", "default", "g/helper", "bob", "c1", 3, 1, '{"id": "bobs"}'))
    ada = _context("ada")
    with caplog.at_level(logging.WARNING, logger="gateway.a2a._stores"):
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(tasks.save, _task(f"t{i}", TaskState.TASK_STATE_COMPLETED), ada)
            tg.start_soon(tasks.save, _task("bobs", TaskState.TASK_STATE_COMPLETED), ada)
        await tasks.drain()
    written = counting.batches[1:]  # (the first: bob's own task)
    assert sum(written) == 31 and len(written) < 31 // 2, written
    assert any("bobs" in r.getMessage() and "another caller" in r.getMessage() for r in caplog.records)
    fresh = StoredTasks(StoreA2a(store))  # (another process: nothing at hand, all read from the store)
    for i in range(30):
        found = await fresh.get(f"t{i}", ada)
        assert found is not None and found.status.state == TaskState.TASK_STATE_COMPLETED
    assert await fresh.get("bobs", ada) is None  # bob's task stayed his
    await tasks.aclose()


async def test_a_row_the_database_cannot_take_fails_alone(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    counting = CountingA2a(store)
    tasks = StoredTasks(counting)
    ada = _context("ada")
    late = _task("late", TaskState.TASK_STATE_COMPLETED)
    late.status.timestamp.FromSeconds(253402300799)  # (year 9999: its nanoseconds overflow a BIGINT)
    with caplog.at_level(logging.WARNING, logger="gateway.a2a._stores"):
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(tasks.save, _task(f"ok{i}", TaskState.TASK_STATE_COMPLETED), ada)
            tg.start_soon(tasks.save, late, ada)
        await tasks.drain()
    assert any("late" in r.getMessage() and "not saved" in r.getMessage() for r in caplog.records)
    fresh = StoredTasks(StoreA2a(store))
    assert all([await fresh.get(f"ok{i}", ada) is not None for i in range(10)])
    await tasks.aclose()


async def test_two_rows_of_one_task_waiting_together_both_return(store: Store) -> None:
    """A task's older writer can still hold its row in the queue when a newer one comes (a lock
    dropped once a settled state is written): the newer row is written, and both return."""
    batches = _Batches(CountingA2a(store))
    row = TaskRow("x", "default", "g/helper", "ada", "c1", 3, 1, '{"id": "x", "v": 1}')
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(batches.save, TaskRow("first", "default", "g/helper", "ada", "c1", 3, 1, "{}"))
            await anyio.sleep(0.01)  # (the first batch is in flight: the next rows wait together)
            tg.start_soon(batches.save, row)  # (and the next: both wait for the next batch)
            tg.start_soon(
                batches.save, TaskRow("x", "default", "g/helper", "ada", "c1", 4, 2, '{"id": "x", "v": 2}')
            )
    assert await StoreA2a(store).get_task("default", "g/helper", "ada", "x") == '{"id": "x", "v": 2}'


async def test_a_new_tasks_push_configs_are_not_read_until_one_is_set(store: Store) -> None:
    counting = CountingA2a(store)
    pushes = StoredPushConfigs(counting, _seal, _unseal)
    ada = _context("ada")
    pushes.none_yet("new")
    assert await pushes.get_info_for_dispatch("new") == [] and counting.push_reads == 0
    config = TaskPushNotificationConfig(task_id="new", id="hook", url="https://hooks.example/a2a")
    await pushes.set_info("new", config, ada)
    reads = counting.push_reads
    sent = await pushes.get_info_for_dispatch("new")  # set here: it counts at once
    assert [c.url for c in sent] == ["https://hooks.example/a2a"] and counting.push_reads == reads + 1
    assert await pushes.get_info_for_dispatch("old") == [] and counting.push_reads == reads + 2
    await counting.aclose()


def _seal(doc: dict[str, object], purpose: bytes) -> str:
    return json.dumps(doc)  # (sealing is the broker's, tested with it: here the configs' keeping)


def _unseal(token: str, purpose: bytes) -> dict[str, object] | None:
    doc: dict[str, object] = json.loads(token)
    return doc
