"""Code mode through a real `switchboard serve` (ADR 0047): a multi-step task (open bugs across
three repositories, counted per repository) done by separate tool calls and by one program gives
the same answer; inside a program a tool the caller's policies deny raises the gateway's
refusal; a program that loops forever or floods its output is stopped by the sandbox's limits,
saying which; the program's calls are audited as the caller's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client

from tests.e2e.harness import Served, keyed_client, serve_config

pytestmark = pytest.mark.anyio

CONFIG = """
gateways:
  - name: default
    auth: {kind: api_key}
    search: {enabled: true}
    code_mode: {enabled: true, wall_seconds: 5, output_bytes: 4096}
    policies:
      - 'permit(principal, action, resource);'
      - 'forbid(principal, action == Switchboard::Action::"tracker___delete_repository", resource);'
    targets:
      - name: tracker
        kind: function
        functions:
          - tests.fixtures.issue_tracker:list_repositories
          - tests.fixtures.issue_tracker:list_issues
          - tests.fixtures.issue_tracker:delete_repository
"""
PROGRAM = """
counts = {}
for repo in (await tools.tracker___list_repositories(org="acme"))["result"]:
    issues = (await tools.tracker___list_issues(repo=repo, state="open"))["result"]
    counts[repo] = sum("bug" in issue["labels"] for issue in issues)
print("open bugs:", sum(counts.values()))
counts
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_config(tmp_path_factory.mktemp("code-mode"), CONFIG) as served:
        yield served


async def run(mcp: Client, code: str) -> tuple[bool, dict[str, Any], str]:
    answer = await mcp.call_tool("switchboard_run_program", {"code": code})
    assert isinstance(answer.structured_content, dict), answer
    text = "".join(getattr(c, "text", "") for c in answer.content)
    return answer.is_error, answer.structured_content, text


async def test_a_task_by_separate_calls_and_by_one_program_gives_the_same_answer(live: Served) -> None:
    async with keyed_client(live, "ana") as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {"switchboard_run_program", "switchboard_program_tools", "switchboard_search"} <= names
        by_calls: dict[str, int] = {}
        repos = (await mcp.call_tool("tracker___list_repositories", {"org": "acme"})).structured_content
        assert repos is not None
        for repo in repos["result"]:
            found = await mcp.call_tool("tracker___list_issues", {"repo": repo, "state": "open"})
            assert found.structured_content is not None
            by_calls[repo] = sum("bug" in i["labels"] for i in found.structured_content["result"])

        failed, out, text = await run(mcp, PROGRAM)
        assert not failed, text
        assert out["result"] == by_calls == {"acme/api": 2, "acme/web": 1, "acme/cli": 2}
        assert out["stdout"] == "open bugs: 5\n" and out["toolCalls"] == 4
        assert "open bugs: 5" in text and json.dumps(by_calls) in text

        stubs = await mcp.call_tool("switchboard_program_tools", {"names": ["tracker___list_issues", "nope"]})
        assert stubs.structured_content is not None
        listed = stubs.structured_content["stubs"]
        assert "async def tracker___list_issues(*, repo: str, state: str | None = None)" in listed
        assert stubs.structured_content["missing"] == ["nope"]

    async with httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin:
        query = {"gateway": "default", "tool": "tracker___list_issues"}
        records = (await admin.get("/admin/v1/audit", params=query)).json()["records"]
    assert len(records) == 6 and {r["subject"] for r in records} == {"ana"}  # 3 direct, 3 from the program


async def test_a_denied_tool_raises_the_refusal_inside_the_program(live: Served) -> None:
    code = """
try:
    await tools.call("tracker___delete_repository", {"repo": "acme/api"})
    outcome = "deleted"
except ToolError as refused:
    outcome = f"refused: {refused}"
outcome
"""
    async with keyed_client(live, "ana") as mcp:
        failed, out, _ = await run(mcp, code)
    assert not failed and out["result"].startswith("refused: ") and "policy" in out["result"], out
    assert "deleted" not in out["result"]


async def test_a_program_that_loops_or_floods_is_stopped_by_the_sandbox(live: Served) -> None:
    async with keyed_client(live, "ana") as mcp:
        failed, out, text = await run(mcp, "while True:\n    pass\n")
        assert failed and "wall time" in out["error"] and "wall time" in text
        failed, out, text = await run(mcp, "print('x' * 1_000_000)\nprint('done')")
        assert len(out["stdout"]) <= 4096 and "output cut" in out["stderr"]
        failed, out, _ = await run(mcp, "1 / 0")
        assert failed and "ZeroDivisionError" in out["error"]
        failed, out, _ = await run(mcp, "await tools.tracker___list_issues(repo='acme/none')")
        assert failed and "no repository" in out["error"]  # (an uncaught ToolError)
        assert not (await run(mcp, "6 * 7"))[0]  # (the program's sandbox still serves)
