"""Code mode in a live gateway, in process (ADR 0047): each of a program's calls meets the
gateway as it is at that moment, and what a program asks that the MCP front would refuse is
refused inside it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.config import GatewaySpec, ResilienceSpec, SearchSpec
from gateway.core.types import CallContext, Principal
from gateway.hub import Hub
from gateway.interpreters import CodeInterpreters
from gateway.settings import Settings
from tests.fixtures import issue_tracker

pytestmark = pytest.mark.anyio

ANA = Principal(tenant="default", subject="ana")
TRACKER = [f"tests.fixtures.issue_tracker:{f}" for f in ("list_repositories", "list_issues")]
LOOP = """
seen = []
for _ in range(100):
    try:
        await tools.tracker___list_repositories(org="acme")
        seen.append("ok")
    except ToolError as refused:
        seen.append(str(refused))
        break
    await asyncio.sleep(0.05)
seen
"""


def spec(*policies: str) -> GatewaySpec:
    return GatewaySpec.model_validate(
        {
            "name": "g",
            "code_mode": {"enabled": True, "wall_seconds": 20},
            "policies": ["permit(principal, action, resource);", *policies],
            "targets": [{"name": "tracker", "kind": "function", "functions": TRACKER}],
        }
    )


async def run(hub: Hub, code: str) -> dict[str, Any]:
    gateway = hub.get("default", "g")
    assert gateway is not None
    result = await gateway.call(
        "switchboard_run_program", {"code": code}, CallContext(principal=ANA, gateway="g")
    )
    assert result.structured is not None, result
    return dict(result.structured)


async def test_a_policy_revoked_while_a_program_runs_refuses_its_next_call(tmp_path: Path) -> None:
    interpreters = CodeInterpreters(Settings(data_dir=tmp_path))
    async with interpreters.open(), Hub(interpreters=interpreters) as hub:
        await hub.apply("default", [spec()])
        answers: list[dict[str, Any]] = []

        async def program() -> None:
            answers.append(await run(hub, "import asyncio\n" + LOOP))

        before = issue_tracker.CALLS["list_repositories"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(program)
            with anyio.fail_after(30):
                while issue_tracker.CALLS["list_repositories"] == before:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            forbid = (
                'forbid(principal, action == Switchboard::Action::"tracker___list_repositories", resource);'
            )
            await hub.apply("default", [spec(forbid)])
        seen = answers[0]["result"]
        assert seen[0] == "ok" and "policy" in seen[-1], answers[0]


async def test_what_the_front_would_refuse_is_refused_inside(tmp_path: Path) -> None:
    interpreters = CodeInterpreters(Settings(data_dir=tmp_path))
    async with interpreters.open(), Hub(interpreters=interpreters) as hub:
        await hub.apply("default", [spec()])
        code = """
out = []
for arguments in ({"repo": float("nan")}, {"repo": "x" * (5 * 1024 * 1024)}):
    try:
        await tools.call("tracker___list_issues", arguments)
        out.append("called")
    except ToolError as refused:
        out.append(str(refused))
try:
    await tools.call("switchboard_run_program", {"code": "1"})
except ToolError as refused:
    out.append(str(refused))
out
"""
        answer = await run(hub, code)
        out = answer["result"]
        assert out is not None, answer.get("error")
        assert "finite numbers" in out[0] and "over the limit" in out[1]
        assert "cannot be called from a program" in out[2]
        deep = await run(hub, "v = []\nfor _ in range(100):\n    v = [v]\nv")
        assert deep["result"] is None and "nested deeper" in deep["note"], deep


async def test_a_program_ends_by_the_calls_deadline_and_its_sandbox_with_it(tmp_path: Path) -> None:
    """The target's call_timeout_seconds bounds a program whose own wall time is longer: the
    program is stopped by its limit (a plain answer, not a cancelled call), and no session of it
    is left behind."""
    interpreters = CodeInterpreters(Settings(data_dir=tmp_path))
    async with interpreters.open(), Hub(interpreters=interpreters) as hub:
        short = spec().model_copy(update={"resilience": ResilienceSpec(call_timeout_seconds=4)})
        await hub.apply("default", [short])
        began = anyio.current_time()
        answer = await run(hub, "while True:\n    pass\n")
        took = anyio.current_time() - began
        limit = re.search(r"wall time limit \(([0-9.]+)\)", answer["error"])
        assert limit is not None and 1 <= float(limit.group(1)) <= 3.5, answer
        assert took < 20  # (its own wall_seconds, 20, did not apply)
        assert not [s for _, s in interpreters.sessions("default") if s.status == "READY"]


async def test_a_programs_own_searches_leave_the_sessions_list_alone(tmp_path: Path) -> None:
    """With list_found, what a program's searches find is the program's: the session's list and
    its notices are for the model's own searches."""
    told: list[str] = []
    interpreters = CodeInterpreters(Settings(data_dir=tmp_path))
    async with interpreters.open(), Hub(interpreters=interpreters) as hub:
        hub.subscribe_sessions(lambda key, session: told.append(session))
        found = spec().model_copy(
            update={"search": SearchSpec(progressive=True, list_found=True, pinned=["switchboard_*"])}
        )
        await hub.apply("default", [found])
        gateway = hub.get("default", "g")
        assert gateway is not None
        ctx = CallContext(principal=ANA, gateway="g", session_id="s1")
        query = "list the issues of a repository"
        code = f'found = await tools.switchboard_search(query="{query}")\nfound["tools"][0]["name"]'
        result = await gateway.call("switchboard_run_program", {"code": code}, ctx)
        assert result.structured is not None and result.structured["result"] == "tracker___list_issues", (
            result
        )
        assert told == [] and "tracker___list_issues" not in {t["name"] for t in gateway.tool_list(ANA, "s1")}
        await gateway.call("switchboard_search", {"query": "list the issues of a repository"}, ctx)
        assert told == ["s1"] and "tracker___list_issues" in {t["name"] for t in gateway.tool_list(ANA, "s1")}
