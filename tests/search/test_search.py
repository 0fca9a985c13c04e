"""The search tool in a live gateway (the hub, its catalog and its pipeline): what it finds, for
whom, in which list, and how soon after the catalog changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.config import GatewaySpec
from gateway.core.types import CallContext, Principal
from gateway.hub import Hub, LiveGateway

pytestmark = pytest.mark.anyio

TRACKER = [f"tests.fixtures.issue_tracker:{f}" for f in ("list_repositories", "list_issues", "all_issues")]
FUNCTIONS = [
    "tests.fixtures.functions:add",
    "tests.fixtures.functions:move",
    "tests.fixtures.functions:fails",
]
ALICE = Principal(tenant="default", subject="alice")


def spec(search: dict[str, Any], **extra: Any) -> GatewaySpec:
    targets = [{"name": "fx", "kind": "function", "functions": FUNCTIONS}, *extra.pop("targets", [])]
    return GatewaySpec.model_validate({"name": "g", "search": search, "targets": targets, **extra})


async def search(gateway: LiveGateway, query: str, principal: Principal = ALICE, **more: Any) -> list[str]:
    ctx = CallContext(principal=principal, gateway="g")
    result = await gateway.call(more.pop("name", "switchboard_search"), {"query": query, **more}, ctx)
    assert not result.is_error, result.content
    assert result.structured is not None
    assert json.loads(result.content[0]["text"]) == result.structured  # (text for clients without structure)
    return [tool["name"] for tool in result.structured["tools"]]


async def live(hub: Hub, gateway: GatewaySpec) -> LiveGateway:
    await hub.apply("default", [gateway])
    found = hub.get("default", "g")
    assert found is not None
    return found


async def test_the_search_tool_finds_tools_with_their_whole_definitions_by_either_name() -> None:
    async with Hub() as hub:
        gateway = await live(hub, spec({"enabled": True}))
        assert [t["name"] for t in gateway.tool_list(ALICE)] == [
            "fx___add",
            "fx___move",
            "fx___fails",
            "switchboard_search",
        ]
        assert (await search(gateway, "add two integers"))[0] == "fx___add"
        assert (await search(gateway, "move a point", name="x_amz_bedrock_agentcore_search"))[
            0
        ] == "fx___move"
        ctx = CallContext(principal=ALICE, gateway="g")
        result = await gateway.call("switchboard_search", {"query": "add numbers", "limit": 1}, ctx)
        assert result.structured is not None
        (tool,) = result.structured["tools"]
        assert tool["name"] == "fx___add" and tool["inputSchema"]["required"] == ["a"]
        assert "switchboard_search" not in await search(gateway, "search tools")  # (never itself)


async def test_bad_input_is_a_clear_error() -> None:
    async with Hub() as hub:
        gateway = await live(hub, spec({"enabled": True, "max_results": 3}))
        ctx = CallContext(principal=ALICE, gateway="g")
        for arguments, said in [
            ({}, "query"),
            ({"query": "x", "limit": 4}, "limit"),
            ({"query": "x", "k": 1}, "k"),
        ]:
            with pytest.raises(Exception, match=said):
                await gateway.call("switchboard_search", arguments, ctx)
        blank = await gateway.call("switchboard_search", {"query": "   "}, ctx)
        assert blank.is_error and "plain words" in blank.content[0]["text"]


async def test_progressive_lists_the_search_tool_and_the_pinned_ones_and_every_tool_stays_callable() -> None:
    async with Hub() as hub:
        gateway = await live(hub, spec({"progressive": True, "pinned": ["fx___mo*"]}))
        assert [t["name"] for t in gateway.tool_list(ALICE)] == ["fx___move", "switchboard_search"]
        assert "fx___add" in await search(gateway, "add two integers")
        added = await gateway.call("fx___add", {"a": 2, "b": 3}, CallContext(principal=ALICE, gateway="g"))
        assert added.structured == {"result": 5}
        named = await live(hub, spec({"progressive": True, "name": "x_amz_bedrock_agentcore_search"}))
        assert [t["name"] for t in named.tool_list(ALICE)] == ["x_amz_bedrock_agentcore_search"]


async def test_a_tool_no_policy_permits_the_caller_is_never_found() -> None:
    bob_may = 'permit(principal == Switchboard::User::"bob", action == Switchboard::Action::"{}", resource);'
    policies = [
        'permit(principal == Switchboard::User::"alice", action, resource);',
        bob_may.format("switchboard_search"),
        bob_may.format("fx___move"),
    ]
    bob = Principal(tenant="default", subject="bob")
    async with Hub() as hub:
        gateway = await live(hub, spec({"enabled": True}, policies=policies))
        assert "fx___add" in await search(gateway, "add two integers")
        for query in ("add two integers", "add", "fx add", "fails", "integers"):
            assert set(await search(gateway, query, bob, limit=10)) <= {"fx___move"}
        assert await search(gateway, "move a point", bob) == ["fx___move"]


async def test_a_target_added_is_found_at_once_and_one_removed_is_gone() -> None:
    more = {"name": "echo", "kind": "function", "functions": ["tests.fixtures.functions:blocking_sleep"]}
    async with Hub() as hub:
        gateway = await live(hub, spec({"enabled": True}))
        assert not any(n.startswith("echo___") for n in await search(gateway, "sleep blocking seconds"))
        gateway = await live(hub, spec({"enabled": True}, targets=[more]))
        assert (await search(gateway, "sleep blocking seconds"))[0] == "echo___blocking_sleep"
        gateway = await live(hub, spec({"enabled": True}))
        assert not any(n.startswith("echo___") for n in await search(gateway, "sleep blocking seconds"))


async def test_a_gateway_without_search_has_no_search_tool() -> None:
    async with Hub() as hub:
        gateway = await live(hub, spec({}))
        assert "switchboard_search" not in [t["name"] for t in gateway.tool_list(ALICE)]
        with pytest.raises(Exception, match="switchboard_search"):
            await gateway.call(
                "switchboard_search", {"query": "x"}, CallContext(principal=ALICE, gateway="g")
            )


async def test_what_a_caller_may_not_call_changes_nothing_they_find() -> None:
    """Non-interference: a caller who may call only some tools gets, for any query, what a
    gateway holding only those tools answers (a hidden tool's words weigh nothing)."""
    hidden = {
        "name": "vault",
        "kind": "function",
        "functions": ["tests.fixtures.issue_tracker:delete_repository"],
    }
    policies = ['permit(principal, action, resource) when { resource != Switchboard::Target::"vault" };']
    targets = [{"name": "tracker", "kind": "function", "functions": TRACKER}]
    queries = ["delete a repository for good", "list issues", "repository issues delete", "good labels"]
    async with Hub() as hub:
        await hub.apply(
            "default",
            [
                GatewaySpec.model_validate(
                    {
                        "name": "g",
                        "search": {"enabled": True},
                        "policies": policies,
                        "targets": [*targets, hidden],
                    }
                ),
                GatewaySpec.model_validate({"name": "h", "search": {"enabled": True}, "targets": targets}),
            ],
        )
        with_hidden, without = hub.get("default", "g"), hub.get("default", "h")
        assert with_hidden is not None and without is not None
        for query in queries:
            seen = await search(with_hidden, query, limit=10)
            assert "vault___delete_repository" not in seen
            ctx = CallContext(principal=ALICE, gateway="h")
            alone = await without.call("switchboard_search", {"query": query, "limit": 10}, ctx)
            assert alone.structured is not None
            assert seen == [t["name"] for t in alone.structured["tools"]], query


async def test_a_tool_named_like_the_alias_stays_callable() -> None:
    target = {
        "name": "fx",
        "kind": "function",
        "functions": [{"function": "tests.fixtures.functions:add", "name": "x_amz_bedrock_agentcore_search"}],
    }
    spec = GatewaySpec.model_validate(
        {"name": "g", "search": {"enabled": True}, "prefix_tools": False, "targets": [target]}
    )
    async with Hub() as hub:
        gateway = await live(hub, spec)
        added = await gateway.call(
            "x_amz_bedrock_agentcore_search", {"a": 1, "b": 2}, CallContext(principal=ALICE, gateway="g")
        )
        assert added.structured == {"result": 3}
        assert await search(gateway, "add two integers") == ["x_amz_bedrock_agentcore_search"]


async def test_a_sessions_found_tools_join_its_list_and_it_alone_is_told() -> None:
    """list_found: the tools a session's searches found are added to that session's list (what
    the caller may call of them, the latest 32), and the session is told only when its list
    changed; a call without a session, or another session, changes nothing."""
    told: list[tuple[tuple[str, str], str]] = []
    bob = Principal(tenant="default", subject="bob")
    deny_add = (
        'forbid(principal == Switchboard::User::"bob", action == Switchboard::Action::"fx___add", resource);'
    )
    async with Hub() as hub:
        hub.subscribe_sessions(lambda key, session: told.append((key, session)))
        gateway = await live(
            hub,
            spec(
                {"progressive": True, "list_found": True},
                policies=["permit(principal, action, resource);", deny_add],
            ),
        )
        names = ["switchboard_search"]
        assert [t["name"] for t in gateway.tool_list(ALICE, "s1")] == names
        await search(gateway, "add two integers")  # (no session: nothing kept)
        assert told == [] and [t["name"] for t in gateway.tool_list(ALICE, "s1")] == names

        async def in_session(query: str, session: str, principal: Principal = ALICE) -> list[str]:
            ctx = CallContext(principal=principal, gateway="g", session_id=session)
            result = await gateway.call("switchboard_search", {"query": query, "limit": 1}, ctx)
            assert result.structured is not None
            return [t["name"] for t in result.structured["tools"]]

        assert await in_session("add two integers", "s1") == ["fx___add"]
        assert told == [(("default", "g"), "s1")]
        assert [t["name"] for t in gateway.tool_list(ALICE, "s1")] == [*names, "fx___add"]
        assert await in_session("add two integers", "s1") == ["fx___add"]
        assert len(told) == 1  # (its list did not change: it is not told again)
        assert [t["name"] for t in gateway.tool_list(ALICE, "s2")] == names
        assert await in_session("move a point", "s2", bob) == ["fx___move"]
        assert [t["name"] for t in gateway.tool_list(bob, "s2")] == [*names, "fx___move"]
        assert [t["name"] for t in gateway.tool_list(bob, "s1")] == names  # (what bob may not call)


async def test_found_tools_are_kept_only_for_live_sessions_and_dropped_when_they_end() -> None:
    """An id the MCP front does not know as a live 2025-era session's (one a client made up, or
    sent in the 2026 era) keeps nothing; a session's found tools go when it ends; turning
    list_found on or off keeps the search's index."""
    async with Hub() as hub:
        hub.knows_session = lambda key, session: session == "live"
        gateway = await live(hub, spec({"progressive": True}))
        provider = hub._search[("default", "g")]
        gateway = await live(hub, spec({"progressive": True, "list_found": True}))
        assert hub._search[("default", "g")] is provider and provider.spec.list_found

        async def in_session(session: str) -> None:
            ctx = CallContext(principal=ALICE, gateway="g", session_id=session)
            assert not (await gateway.call("switchboard_search", {"query": "add two integers"}, ctx)).is_error

        await in_session("made-up")
        assert provider.found("made-up") == () and len(gateway.tool_list(ALICE, "made-up")) == 1
        await in_session("live")
        assert "fx___add" in provider.found("live")
        hub.session_ended("live")
        assert provider.found("live") == () and len(gateway.tool_list(ALICE, "live")) == 1


async def test_a_found_tool_every_session_lists_tells_nobody_and_a_dropped_session_is_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """list_found: finding a pinned tool changes no list, so no session is told; past the
    sessions kept, the least recent one's finds are dropped and that session is told (its list
    is back to the pinned tools)."""
    monkeypatch.setattr("gateway.search._provider.SESSIONS_KEPT", 2)
    told: list[str] = []
    async with Hub() as hub:
        hub.subscribe_sessions(lambda key, session: told.append(session))
        gateway = await live(hub, spec({"progressive": True, "list_found": True, "pinned": ["fx___add"]}))

        async def in_session(query: str, session: str) -> None:
            ctx = CallContext(principal=ALICE, gateway="g", session_id=session)
            result = await gateway.call("switchboard_search", {"query": query, "limit": 1}, ctx)
            assert not result.is_error, result.content

        await in_session("add two integers", "s1")  # (fx___add: pinned, listed already)
        assert told == [] and [t["name"] for t in gateway.tool_list(ALICE, "s1")] == [
            "fx___add",
            "switchboard_search",
        ]
        await in_session("move a point", "s1")
        await in_session("move a point", "s2")
        assert told == ["s1", "s2"]
        await in_session("add two integers", "s3")  # (only what it lists anyway: no slot taken)
        assert told == ["s1", "s2"] and set(hub._search[("default", "g")]._found) == {"s1", "s2"}
        await in_session("move a point", "s3")  # (a third session: s1, the least recent, is dropped)
        assert told == ["s1", "s2", "s1", "s3"]
        assert "fx___move" not in [t["name"] for t in gateway.tool_list(ALICE, "s1")]
        assert "fx___move" in [t["name"] for t in gateway.tool_list(ALICE, "s3")]
