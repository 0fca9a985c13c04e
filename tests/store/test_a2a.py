"""A2A tasks and push configs in the store (SQLite and PostgreSQL): each caller's own, listed
newest first in pages, a task id never taken over by another caller."""

from __future__ import annotations

import pytest

from gateway.store import Store, StoreA2a, StoreError, TaskRow

pytestmark = pytest.mark.anyio


def _row(task_id: str, owner: str = "ada", updated: int = 1, state: int = 3, context: str = "c1") -> TaskRow:
    return TaskRow(task_id, "default", "g/helper", owner, context, state, updated, f'{{"id": "{task_id}"}}')


async def test_tasks_are_the_callers_own_and_listed_newest_first_in_pages(store: Store) -> None:
    tasks = StoreA2a(store)
    for i in range(5):
        await tasks.save_task(_row(f"t{i}", updated=100 + i, context="c1" if i % 2 else "c2"))
    await tasks.save_task(_row("b0", owner="bob", updated=999))
    await tasks.save_task(_row("t1", updated=500, state=4))  # saved again: it moves up
    assert await tasks.get_task("default", "g/helper", "ada", "t1") == '{"id": "t1"}'
    assert await tasks.get_task("default", "g/helper", "bob", "t1") is None
    assert await tasks.get_task("default", "g/other", "ada", "t1") is None
    first, total = await tasks.list_tasks("default", "g/helper", "ada", limit=2)
    assert [r.id for r in first] == ["t1", "t4"] and total == 5
    rest, _ = await tasks.list_tasks(
        "default", "g/helper", "ada", before=(first[-1].updated_ns, first[-1].id)
    )
    assert [r.id for r in rest] == ["t3", "t2", "t0"]
    odd, total = await tasks.list_tasks("default", "g/helper", "ada", context_id="c1")
    assert [r.id for r in odd] == ["t1", "t3"] and total == 2
    ended, _ = await tasks.list_tasks("default", "g/helper", "ada", state=4)
    assert [r.id for r in ended] == ["t1"]
    recent, _ = await tasks.list_tasks("default", "g/helper", "ada", after_ns=103)
    assert [r.id for r in recent] == ["t1", "t4", "t3"]
    with pytest.raises(StoreError, match="belongs to another caller"):
        await tasks.save_task(_row("t1", owner="bob"))
    await tasks.delete_task("default", "g/helper", "ada", "t0")
    assert await tasks.get_task("default", "g/helper", "ada", "t0") is None


async def test_push_configs_are_kept_per_caller_and_all_go_to_dispatch(store: Store) -> None:
    tasks = StoreA2a(store)
    await tasks.set_push("t1", "a", "default", "ada", "sealed-a")
    await tasks.set_push("t1", "a", "default", "ada", "sealed-a2")  # replaced
    await tasks.set_push("t1", "b", "default", "bob", "sealed-b")
    assert await tasks.get_push("t1", "default", "ada") == ["sealed-a2"]
    assert sorted(await tasks.get_push("t1")) == ["sealed-a2", "sealed-b"]
    await tasks.delete_push("t1", "default", "bob", "a")  # not bob's: nothing happens
    assert await tasks.get_push("t1", "default", "ada") == ["sealed-a2"]
    await tasks.delete_push("t1", "default", "ada", None)
    assert await tasks.get_push("t1") == ["sealed-b"]


async def test_tasks_saved_together_refuse_only_another_callers_row(store: Store) -> None:
    """One transaction for many rows (the front's write-behind batches): a row whose id is
    another caller's is refused by name, and the rest are written."""
    tasks = StoreA2a(store)
    try:
        await tasks.save_task(_row("taken", owner="bob", updated=7))
        refused = await tasks.save_tasks(
            [_row("n1", updated=1), _row("taken", updated=2), _row("n2", updated=3, state=4)]
        )
        assert refused == ["taken"]
        assert await tasks.get_task("default", "g/helper", "ada", "n1") == '{"id": "n1"}'
        assert await tasks.get_task("default", "g/helper", "ada", "taken") is None
        kept, _ = await tasks.list_tasks("default", "g/helper", "bob")
        assert [(r.id, r.updated_ns) for r in kept] == [("taken", 7)]  # bob's row as it was
        ended, _ = await tasks.list_tasks("default", "g/helper", "ada", state=4)
        assert [r.id for r in ended] == ["n2"]
        assert await tasks.save_tasks([_row("n1", updated=9, state=4)]) == []  # a newer state
        assert [r.id for r in (await tasks.list_tasks("default", "g/helper", "ada", state=4))[0]] == [
            "n1",
            "n2",
        ]
    finally:
        await tasks.aclose()
