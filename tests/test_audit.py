"""The audit log on its own: a call returns only once its record is committed, concurrent
calls share one commit, refused records are spilled (never dropped) and replayed, and while
the database refuses records new calls are refused before they run (by default)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup

from gateway.core.pipeline import compose
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult
from gateway.stages.audit import AuditLog, AuditUnavailable, GatewayAudit
from gateway.store import CallRecord

pytestmark = pytest.mark.anyio


def rec(tool: str = "t___x") -> CallRecord:
    return CallRecord(0.0, "default", "g", "alice", None, tool, "allowed", "d", "ok", None, 1.0)


class Database:
    """Commits batches; `gate` holds a commit open; `down` refuses."""

    def __init__(self) -> None:
        self.commits: list[list[CallRecord]] = []
        self.gate: anyio.Event | None = None
        self.entered = anyio.Event()
        self.down = False

    async def write(self, records: Sequence[CallRecord]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionError("database unreachable")
        self.commits.append(list(records))

    @property
    def rows(self) -> list[CallRecord]:
        return [r for c in self.commits for r in c]


async def test_a_call_returns_only_once_its_record_is_committed() -> None:
    db = Database()
    db.gate = anyio.Event()
    log = AuditLog(db.write)
    returned = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)

        async def call() -> None:
            await log.record(rec())
            returned.set()

        tg.start_soon(call)
        await db.entered.wait()
        await anyio.wait_all_tasks_blocked()
        assert not returned.is_set() and db.rows == []  # the commit is still open: no answer yet
        db.gate.set()
        await returned.wait()
        assert len(db.rows) == 1
        log.close()


@asynccontextmanager
async def first_commit_held(db: Database, tool: str) -> AsyncIterator[tuple[AuditLog, TaskGroup]]:
    """A running log whose first commit (of ``tool``'s record) is held open; yields the log and
    the task group of the calls."""
    db.gate = anyio.Event()
    log = AuditLog(db.write)
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)
        async with anyio.create_task_group() as calls:
            calls.start_soon(log.record, rec(tool))
            await db.entered.wait()
            yield log, calls
        log.close()


async def test_calls_waiting_during_a_commit_share_the_next_one() -> None:
    db = Database()
    async with first_commit_held(db, "first") as (log, calls):
        for i in range(20):
            calls.start_soon(log.record, rec(f"t{i}"))
        await anyio.wait_all_tasks_blocked()
        assert db.gate is not None
        db.gate.set()
    assert [len(c) for c in db.commits] == [1, 20]


async def test_a_cancelled_call_keeps_its_record() -> None:
    db = Database()
    async with first_commit_held(db, "gone") as (_, calls):
        calls.cancel_scope.cancel()
        assert db.gate is not None
        db.gate.set()
    assert [r.tool for r in db.rows] == ["gone"]


async def test_refused_records_are_spilled_then_replayed_never_dropped(tmp_path: Path) -> None:
    db = Database()
    db.down = True
    spill = tmp_path / "audit-spill.jsonl"
    log = AuditLog(db.write, spill=spill, unwritable="spill", retry_seconds=3600)
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)
        for i in range(3):
            await log.record(rec(f"down{i}"))  # answered: the record is in the spill file
        assert db.rows == [] and len(spill.read_bytes().splitlines()) == 3
        assert log.failing is not None and log.refusing() is None  # spill mode serves on
        db.down = False
        await log.record(rec("back"))  # the next group commits, then the spill moves over
        await log.record(rec("after"))
        assert sorted(r.tool for r in db.rows) == ["after", "back", "down0", "down1", "down2"]
        assert spill.read_bytes() == b"" and log.failing is None
        log.close()


async def test_spilled_records_are_written_at_start(tmp_path: Path) -> None:
    db = Database()
    db.down = True
    spill = tmp_path / "audit-spill.jsonl"
    first = AuditLog(db.write, spill=spill)
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await first.record(rec("spilled"))
        first.close()
    db.down = False
    second = AuditLog(db.write, spill=spill)  # the next start of the gateway
    async with anyio.create_task_group() as tg:
        tg.start_soon(second.run)
        await second.record(rec("new"))
        second.close()
    assert [r.tool for r in db.rows] == ["spilled", "new"]


async def test_a_record_that_cannot_be_kept_fails_the_call(tmp_path: Path) -> None:
    db = Database()
    db.down = True
    log = AuditLog(db.write, spill=tmp_path / "missing" / "spill.jsonl")
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)
        with pytest.raises(AuditUnavailable, match="could not be kept"):
            await log.record(rec())
        log.close()


async def test_calls_are_refused_before_they_run_while_the_audit_is_unwritable(tmp_path: Path) -> None:
    db = Database()
    db.down = True
    log = AuditLog(db.write, spill=tmp_path / "spill.jsonl", retry_seconds=3600)
    ran: list[str] = []

    async def tool(call: ToolCall, ctx: CallContext) -> ToolResult:
        ran.append(call.name)
        return ToolResult.text("done")

    handler = compose([GatewayAudit("default", "g", log)], tool)
    ctx = CallContext(principal=Principal(subject="alice"), gateway="g")
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)
        first = await handler(ToolCall("t___a", {}, public_name="t___a"), ctx)
        assert not first.is_error and ran == ["t___a"]  # it ran before the database was seen down
        refused = await handler(ToolCall("t___b", {}, public_name="t___b"), ctx)
        assert refused.is_error and ran == ["t___a"]
        assert "the call audit cannot be written" in refused.content[0]["text"]
        db.down = False
        await log._replay()  # (what the writer does every retry_seconds)
        again = await handler(ToolCall("t___b", {}, public_name="t___b"), ctx)
        assert not again.is_error and ran == ["t___a", "t___b"]
        log.close()
    assert [(r.tool, r.decision) for r in db.rows] == [
        ("t___a", "allowed"),
        ("t___b", "refused"),
        ("t___b", "allowed"),
    ]
