"""The task table of the MCP front (gateway.mcp.tasks): expiry, the per-caller bound, keys that
are never reused within a task, and answers checked against their question (ADR 0038). The
whole flow over the wire is tests/e2e/test_mcp_tasks.py."""

from __future__ import annotations

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from gateway.mcp import tasks
from gateway.mcp.tasks import MAX_TASKS_PER_CALLER, Task, TaskTable

pytestmark = pytest.mark.anyio

ALICE = ("default", "gw", "alice")
BOB = ("default", "gw", "bob")
ASK = {"method": "elicitation/create", "params": {"mode": "form", "message": "ok?", "requestedSchema": {}}}


def _table() -> TaskTable:
    def no_requests(ctx: object) -> tasks.Owner:
        raise AssertionError("not a request test")

    return TaskTable(no_requests)


async def test_a_task_past_its_ttl_is_cancelled_and_forgotten() -> None:
    table = _table()
    task = table.add(ALICE, anyio.CancelScope())
    assert table.find(ALICE, task.id) is task
    task.expires = anyio.current_time() - 1
    table._swept = 0.0  # (the sweep runs at most once a second)
    with pytest.raises(MCPError) as unknown:
        table.find(ALICE, task.id)
    assert unknown.value.code == -32602
    assert task.scope.cancel_called


async def test_another_callers_task_is_unknown_in_the_same_words() -> None:
    table = _table()
    task = table.add(ALICE, anyio.CancelScope())
    with pytest.raises(MCPError) as theirs:
        table.find(BOB, task.id)
    with pytest.raises(MCPError) as never:
        table.find(BOB, "x" * len(task.id))
    assert theirs.value.code == never.value.code == -32602
    assert theirs.value.message == never.value.message.replace("x" * len(task.id), task.id)


async def test_a_caller_keeps_a_bounded_number_of_tasks() -> None:
    table = _table()
    made = [table.add(ALICE, anyio.CancelScope()) for _ in range(MAX_TASKS_PER_CALLER)]
    with pytest.raises(MCPError, match="Too many tasks") as refused:
        table._make_room(ALICE)  # all of them still running
    assert refused.value.code == -32600
    table._make_room(BOB)  # (the bound is per caller)
    made[3].settle({"content": []})
    table._make_room(ALICE)  # the oldest ended task makes way
    with pytest.raises(MCPError):
        table.find(ALICE, made[3].id)
    assert table.find(ALICE, made[4].id) is made[4]


async def test_keys_are_never_reused_and_answers_must_fit_their_question() -> None:
    task = Task(ALICE, anyio.CancelScope())
    answers: list[dict[str, object]] = []

    async def asks() -> None:
        answers.append(await task.ask({"ok": ASK}))
        answers.append(await task.ask({"ok": ASK}))  # the tool asks under the same key again

    async with anyio.create_task_group() as tg:
        tg.start_soon(asks)
        await anyio.wait_all_tasks_blocked()
        assert (task.status, list(task.pending)) == ("input_required", ["ok"])
        with pytest.raises(MCPError, match="not an answer to elicitation/create") as wrong:
            task.answer({"ok": {"content": {}}})
        assert wrong.value.code == -32602 and list(task.pending) == ["ok"]
        task.answer({"ok": {"action": "accept", "content": {"n": 1}}})
        await anyio.wait_all_tasks_blocked()
        assert list(task.pending) == ["ok.2"]  # a new key: "ok" was answered already
        task.answer({"ok": {"action": "decline"}})  # an answered key: ignored
        assert task.status == "input_required"
        task.answer({"ok.2": {"action": "cancel"}})
    # The tool reads each answer under its own key.
    assert answers == [{"ok": {"action": "accept", "content": {"n": 1}}}, {"ok": {"action": "cancel"}}]
    assert task.status == "working" and not task.pending
