"""Per-user upstream sessions against a real MCP server (the Python SDK fixture over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from gateway.config import McpTarget
from gateway.core.errors import ToolExecutionError
from gateway.core.types import CallContext, Principal, ToolCall
from gateway.providers.mcp import McpProvider
from tests.e2e.test_federation import free_port, start_upstream, stop

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    port = free_port()
    proc = start_upstream(port)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc)


def as_user(subject: str) -> CallContext:
    return CallContext(principal=Principal(subject=subject))


async def whoami(provider: McpProvider, ctx: CallContext) -> str:
    result = await provider.call_tool(ToolCall("whoami", {}), ctx)
    return str(result.content[0]["text"])


async def test_each_user_calls_with_their_own_credential(upstream_url: str) -> None:
    config = McpTarget.model_validate(
        {
            "name": "py",
            "kind": "mcp",
            "url": upstream_url,
            "sessions": "per_user",
            "users": {
                "alice": {"headers": {"Authorization": "Bearer alice-token"}},
                "bob": {"headers": {"Authorization": "Bearer bob-token"}},
            },
        }
    )
    async with McpProvider(config) as provider:
        assert "whoami" in {t.name for t in await provider.list_tools(CallContext())}  # the shared session
        async with anyio.create_task_group() as tg:  # concurrently: sessions never mix
            seen: dict[str, list[str]] = {"alice": [], "bob": []}

            async def call(user: str) -> None:
                for _ in range(5):
                    seen[user].append(await whoami(provider, as_user(user)))

            tg.start_soon(call, "alice")
            tg.start_soon(call, "bob")
        assert seen == {"alice": ["Bearer alice-token"] * 5, "bob": ["Bearer bob-token"] * 5}
        assert provider.user_sessions == 2
        with pytest.raises(ToolExecutionError, match="none is configured for user 'carol'"):
            await whoami(provider, as_user("carol"))


async def test_idle_user_sessions_are_closed_and_reopened(upstream_url: str) -> None:
    config = McpTarget.model_validate(
        {
            "name": "py",
            "kind": "mcp",
            "url": upstream_url,
            "sessions": "per_user",
            "user_session_idle_seconds": 0.2,
            "max_user_sessions": 1,
            "users": {"alice": {"headers": {"Authorization": "Bearer a"}}, "bob": {}},
        }
    )
    async with McpProvider(config) as provider:
        assert await whoami(provider, as_user("alice")) == "Bearer a"
        assert await whoami(provider, as_user("bob")) == "nobody"  # a user with no header of their own
        assert provider.user_sessions == 1  # the cap closed alice's idle session
        for _ in range(50):
            if provider.user_sessions == 0:
                break
            await anyio.sleep(0.1)
        assert provider.user_sessions == 0
        assert await whoami(provider, as_user("alice")) == "Bearer a"  # opened again on demand


async def test_a_session_opening_is_not_closed_as_idle(upstream_url: str) -> None:
    # Idle time shorter than opening a session takes: the reaper must leave a session that a
    # caller is waiting for (CI once saw it closed mid-open, and the call wait out its timeout).
    config = McpTarget.model_validate(
        {
            "name": "py",
            "kind": "mcp",
            "url": upstream_url,
            "sessions": "per_user",
            "user_session_idle_seconds": 0.01,
            "timeout_seconds": 5,
            "users": {"alice": {"headers": {"Authorization": "Bearer a"}}},
        }
    )
    async with McpProvider(config) as provider:
        for _ in range(5):
            assert await whoami(provider, as_user("alice")) == "Bearer a"
            await anyio.sleep(0.05)  # idle: closed, and opened again by the next call


def test_users_without_per_user_sessions_is_refused() -> None:
    with pytest.raises(ValueError, match="only apply with `sessions: per_user`"):
        McpTarget.model_validate({"name": "py", "kind": "mcp", "url": "http://x/mcp", "users": {"a": {}}})
