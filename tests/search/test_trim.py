"""Trimmed results (``results:`` on a target, ADR 0047): an answer's list is cut to its first
items and kept fields, the rest answered from the gateway's store by a cursor that only its own
caller can use, without calling the upstream again."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import GatewaySpec
from gateway.core.errors import InvalidArguments
from gateway.core.types import CallContext, Principal
from gateway.hub import Hub, LiveGateway

pytestmark = pytest.mark.anyio

ANA, BEN = (Principal(tenant="default", subject=s) for s in ("ana", "ben"))
FUNCTIONS = ["tests.fixtures.issue_tracker:all_issues", "tests.fixtures.issue_tracker:list_repositories"]


async def live(hub: Hub, results: dict[str, Any]) -> LiveGateway:
    target = {"name": "t", "kind": "function", "functions": FUNCTIONS, "results": results}
    await hub.apply("default", [GatewaySpec.model_validate({"name": "g", "targets": [target]})])
    gateway = hub.get("default", "g")
    assert gateway is not None
    return gateway


async def call(gateway: LiveGateway, who: Principal, **arguments: Any) -> dict[str, Any]:
    result = await gateway.call("t___all_issues", arguments, CallContext(principal=who, gateway="g"))
    assert not result.is_error and result.structured is not None, result
    return dict(result.structured)


async def test_a_long_list_is_cut_projected_and_paged_by_its_cursor() -> None:
    async with Hub() as hub:
        gateway = await live(hub, {"max_items": 4, "fields": ["repo", "number", "title"]})
        listed = {t["name"]: t for t in gateway.tool_list(ANA)}
        assert "outputSchema" not in listed["t___all_issues"]  # (no longer the function's shape)
        assert "result_cursor" in listed["t___all_issues"]["inputSchema"]["properties"]

        first = await call(gateway, ANA)
        assert first["count"] == 11 and [i["title"] for i in first["issues"]][:1] == ["Login fails with SSO"]
        assert first["issues"][0] == {"repo": "acme/api", "number": 1, "title": "Login fails with SSO"}
        assert first["trimmed"]["shown"] == 4 and first["trimmed"]["total"] == 11
        seen = list(first["issues"])
        cursor = first["trimmed"]["result_cursor"]
        while cursor:
            page = await call(gateway, ANA, result_cursor=cursor)
            seen += page["issues"]
            cursor = page["trimmed"].get("result_cursor")
        assert len(seen) == 11 and len({(i["repo"], i["number"]) for i in seen}) == 11

        spent = first["trimmed"]["result_cursor"]
        with pytest.raises(InvalidArguments, match="used or expired"):  # (a cursor is used once)
            await call(gateway, ANA, result_cursor=spent)
        again = (await call(gateway, ANA))["trimmed"]["result_cursor"]
        ctx = CallContext(principal=BEN, gateway="g")
        with pytest.raises(InvalidArguments, match="result_cursor"):  # (another caller's cursor)
            await gateway.call("t___all_issues", {"result_cursor": again}, ctx)
        with pytest.raises(InvalidArguments, match="call the tool again without it"):
            await gateway.call("t___all_issues", {"result_cursor": "made-up"}, ctx)


async def test_a_short_answer_is_whole_and_says_nothing_of_trimming() -> None:
    async with Hub() as hub:
        gateway = await live(hub, {"max_items": 50})
        whole = await call(gateway, ANA)
        assert len(whole["issues"]) == 11 and "trimmed" not in whole
        repos = await gateway.call(
            "t___list_repositories", {"org": "acme"}, CallContext(principal=ANA, gateway="g")
        )
        assert repos.structured == {"result": ["acme/api", "acme/web", "acme/cli"]}


async def test_a_cursor_belongs_to_its_gateway() -> None:
    target = {"name": "t", "kind": "function", "functions": FUNCTIONS, "results": {"max_items": 2}}
    async with Hub() as hub:
        specs = [GatewaySpec.model_validate({"name": n, "targets": [target]}) for n in ("g", "other")]
        await hub.apply("default", specs)
        mine, other = hub.get("default", "g"), hub.get("default", "other")
        assert mine is not None and other is not None
        cursor = (await call(mine, ANA))["trimmed"]["result_cursor"]
        with pytest.raises(InvalidArguments, match="result_cursor"):
            await other.call(
                "t___all_issues", {"result_cursor": cursor}, CallContext(principal=ANA, gateway="other")
            )
        assert len((await call(mine, ANA, result_cursor=cursor))["issues"]) == 2


async def test_a_tools_own_result_cursor_argument_stays_its_own() -> None:
    target = {
        "name": "t",
        "kind": "function",
        "functions": ["tests.fixtures.issue_tracker:issues_after"],
        "results": {"max_items": 3},
    }
    async with Hub() as hub:
        await hub.apply("default", [GatewaySpec.model_validate({"name": "g", "targets": [target]})])
        gateway = hub.get("default", "g")
        assert gateway is not None
        ctx = CallContext(principal=ANA, gateway="g")
        answer = await gateway.call("t___issues_after", {"result_cursor": "9"}, ctx)
        assert answer.structured == {
            "result": ["Windows paths", "Release 2.0"]
        }  # (the tool's own, not a page)
