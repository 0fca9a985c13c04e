"""Audit rows on both stores: what is written is read back the same (SQLite's own appender
converts values as the store's column types do), newest first, per tenant."""

from __future__ import annotations

import time

import pytest

from gateway.store import CallRecord, Store, StoreCalls

pytestmark = pytest.mark.anyio


def rec(tool: str, tenant: str = "default", at: float | None = None) -> CallRecord:
    return CallRecord(
        at if at is not None else time.time(),
        tenant,
        "g",
        "alice",
        "key:1",
        tool,
        "allowed",
        "d" * 64,
        "ok",
        None,
        1.25,
        None,
    )


async def test_audit_rows_read_back_as_written(store: Store) -> None:
    calls = StoreCalls(store)
    try:
        first = rec("t___a", at=1_767_225_600.123456)  # 2026-01-01T00:00:00.123456Z
        await calls.write([first])
        await calls.write([rec("t___b"), rec("t___c", tenant="acme")])
        rows = await calls.query("default")
        assert [r["tool"] for r in rows] == ["t___b", "t___a"]
        assert rows[1] == {
            "at": "2026-01-01T00:00:00.123456+00:00",
            "gateway": "g",
            "subject": "alice",
            "client": "key:1",
            "tool": "t___a",
            "decision": "allowed",
            "arguments_digest": "d" * 64,
            "outcome": "ok",
            "error": None,
            "duration_ms": 1.25,
            "approval": None,
        }
        assert [r["tool"] for r in await calls.query("acme")] == ["t___c"]
    finally:
        await calls.aclose()
