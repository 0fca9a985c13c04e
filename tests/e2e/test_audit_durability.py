"""The call audit survives `kill -9`: every call the gateway answered has its row (SQLite and
PostgreSQL); and while the database refuses audit records, calls are refused before they run
and the refusals are kept in the spill file until the database takes them."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store import normalize_url
from tests.e2e.harness import serve
from tests.e2e.postgres import fresh_database

pytestmark = pytest.mark.anyio

CONFIG = """
gateways:
  - name: default
    targets:
      - {name: fx, kind: function, functions: ["tests.fixtures.functions:add"]}
"""
CALLS = 300
CONCURRENCY = 8
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "fx___add",
}
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_database("switchboard_e2e_audit") as url:
        yield url


async def call(http: httpx2.AsyncClient, url: str, i: int) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": i,
        "method": "tools/call",
        "params": {"name": "fx___add", "arguments": {"a": i, "b": 1}, "_meta": META},
    }
    answer = await http.post(url, json=body, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


async def answer_calls(url: str) -> int:
    """CALLS calls, CONCURRENCY at a time; returns how many were answered with their result."""
    answered = 0

    async def worker(ids: range) -> None:
        nonlocal answered
        async with httpx2.AsyncClient(timeout=30) as http:
            for i in ids:
                result = await call(http, url, i)
                assert result["structuredContent"] == {"result": i + 1}
                answered += 1

    async with anyio.create_task_group() as tg:
        for w in range(CONCURRENCY):
            tg.start_soon(worker, range(w, CALLS, CONCURRENCY))
    return answered


def kill_9(proc: Any) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


async def test_kill_9_keeps_every_answered_call_sqlite(tmp_path: Path) -> None:
    config = tmp_path / "sw.yaml"
    config.write_text(CONFIG)
    with serve(tmp_path / "data", config) as live:
        answered = await answer_calls(live.mcp)
        kill_9(live.proc)
    with sqlite3.connect(tmp_path / "data" / "switchboard.db") as db:
        (rows,) = db.execute("SELECT count(*) FROM sb_call_audit WHERE tool = 'fx___add'").fetchone()
    assert answered == CALLS
    assert rows == CALLS


async def pg_rows(url: str, where: str = "tool = 'fx___add'") -> list[tuple[Any, ...]]:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            found = await conn.execute(sa.text(f"SELECT decision, outcome FROM sb_call_audit WHERE {where}"))
            return [tuple(r) for r in found]
    finally:
        await engine.dispose()


async def test_kill_9_keeps_every_answered_call_postgres(database: str, tmp_path: Path) -> None:
    config = tmp_path / "sw.yaml"
    config.write_text(CONFIG)
    with serve(tmp_path / "data", config, env={"SWITCHBOARD_DATABASE_URL": database}) as live:
        answered = await answer_calls(live.mcp)
        kill_9(live.proc)
    assert answered == CALLS
    assert len(await pg_rows(database)) == CALLS


async def alter(url: str, statement: str) -> None:
    engine = create_async_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def test_unwritable_audit_refuses_calls_and_spills_the_refusals(database: str, tmp_path: Path) -> None:
    config = tmp_path / "sw.yaml"
    config.write_text(CONFIG)
    env = {"SWITCHBOARD_DATABASE_URL": database}
    with serve(tmp_path / "data", config, env=env) as live:
        async with httpx2.AsyncClient(timeout=30) as http:
            assert (await call(http, live.mcp, 1))["structuredContent"] == {"result": 2}
            # The audit table goes away under the running gateway (as a lost grant or a full disk would).
            await alter(database, "ALTER TABLE sb_call_audit RENAME TO sb_call_audit_away")
            first = await call(http, live.mcp, 2)  # ran: the database was not known to refuse yet
            assert first["structuredContent"] == {"result": 3}
            refused = await call(http, live.mcp, 3)
            assert refused["isError"] is True
            assert "the call audit cannot be written" in refused["content"][0]["text"]
            spill = tmp_path / "data" / "audit-spill.jsonl"
            assert len(spill.read_bytes().splitlines()) == 2  # the call that ran and the refusal
            await alter(database, "ALTER TABLE sb_call_audit_away RENAME TO sb_call_audit")
            with anyio.fail_after(20):  # the writer offers the spill again every 2 s
                while (await call(http, live.mcp, 4)).get("isError"):
                    pass
    rows = await pg_rows(database)
    assert sorted(rows) == sorted(
        [("allowed", "ok"), ("allowed", "ok"), ("refused", "refused")]
        + [("refused", "refused")] * (len(rows) - 4)
        + [("allowed", "ok")]
    )
