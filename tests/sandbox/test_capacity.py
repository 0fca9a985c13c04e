"""Session limits hold under concurrent starts: an interpreter's own, and a tenant's across every
interpreter (the gateway's admission hook)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from sandbox import AtCapacity, Interpreter, InterpreterConfig

pytestmark = pytest.mark.anyio


async def _race(interpreter: Interpreter, tenant: str, starts: int) -> tuple[int, list[str]]:
    made, refused = 0, []

    async def start() -> None:
        nonlocal made
        try:
            await interpreter.start(tenant)
            made += 1
        except AtCapacity as exc:
            refused.append(str(exc))

    async with anyio.create_task_group() as tg:
        for _ in range(starts):
            tg.start_soon(start)
    return made, refused


async def test_concurrent_starts_never_pass_the_interpreters_limit(tmp_path: Path) -> None:
    interpreter = Interpreter("cap", InterpreterConfig(warm=0, max_sessions=2), tmp_path / "sandboxes")
    async with interpreter.running():
        made, refused = await _race(interpreter, "t", 6)
        assert (made, len(refused)) == (2, 4) and "its limit" in refused[0]
        assert len(interpreter.live) == 2


async def test_a_tenants_quota_is_kept_while_others_are_served(tmp_path: Path) -> None:
    holder: list[Interpreter] = []

    def admit(tenant: str) -> str | None:
        return "over quota" if tenant == "greedy" and holder[0].count(tenant) >= 1 else None

    interpreter = Interpreter("q", InterpreterConfig(warm=0, admit=admit), tmp_path / "sandboxes")
    holder.append(interpreter)
    async with interpreter.running():
        made, refused = await _race(interpreter, "greedy", 4)
        assert (made, refused) == (1, ["over quota"] * 3)
        other, _ = await _race(interpreter, "modest", 2)
        assert other == 2
