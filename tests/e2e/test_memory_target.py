"""A memory as a gateway target, through a real ``switchboard serve``: before its memory exists the
gateway serves and the tools say how to make it; then MCP clients with two users' keys remember and
recall, each their own records only, and the admin API shows whose each record is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.harness import Served, serve_config

pytestmark = pytest.mark.anyio

CONFIG = """
gateways:
  - name: default
    auth: {kind: api_key}
    targets:
      - name: mem
        kind: memory
        memory: notes
        top_k: 3
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_config(tmp_path_factory.mktemp("memory-target"), CONFIG) as s:
        yield s


def _text(result: types.CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def _calls(served: Served, key: str, *calls: tuple[str, dict[str, Any]]) -> list[types.CallToolResult]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        Client(streamable_http_client(served.mcp, http_client=http), mode="legacy") as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"mem___remember", "mem___recall", "mem___list", "mem___forget"} <= names
        return [await client.call_tool(f"mem___{tool}", arguments) for tool, arguments in calls]


async def test_remember_then_recall_through_mcp_each_caller_their_own(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers, timeout=30) as admin:
        keys = {
            who: (await admin.post("/admin/v1/gateways/default/keys", json={"subject": who})).json()["key"]
            for who in ("alice", "bob@example.com")
        }
        (early,) = await _calls(served, keys["alice"], ("recall", {"query": "anything"}))
        assert early.is_error and "no memory 'notes' yet" in _text(early)
        assert "POST /admin/v1/memories" in _text(early)

        made = await admin.post("/admin/v1/memories", json={"name": "notes"})
        assert made.status_code == 201, made.text
        memory_id = made.json()["id"]

        remembered, recalled = await _calls(
            served,
            keys["alice"],
            ("remember", {"text": "Alice's favourite city is Lisbon."}),
            ("recall", {"query": "Which town does she like best?"}),
        )
        assert not remembered.is_error, _text(remembered)
        record_id = (remembered.structured_content or {})["id"]
        records = (recalled.structured_content or {})["records"]
        assert [r["id"] for r in records] == [record_id]
        assert records[0]["text"] == "Alice's favourite city is Lisbon." and "Lisbon" in _text(recalled)

        theirs, refused, invalid = await _calls(
            served,
            keys["bob@example.com"],
            ("recall", {"query": "Alice's favourite city is Lisbon."}),
            ("forget", {"id": record_id}),
            ("remember", {"text": ""}),
        )
        assert (theirs.structured_content or {})["records"] == []
        assert refused.is_error and "no record" in _text(refused)
        assert invalid.is_error  # (the arguments break the tool's schema: the model reads why)

        shown = (await admin.get(f"/admin/v1/memories/{memory_id}/records/{record_id}")).json()
        assert shown["record"]["actorId"] == "alice"
        assert shown["record"]["namespaces"] == ["/actors/alice/notes/"]
        assert shown["sources"]["written"] == "directly"
