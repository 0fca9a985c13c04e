"""The quickstart, as a newcomer runs it: both targets answer, in both eras."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext

from examples.quickstart.http_function import app
from tests.e2e.harness import ROOT, Served, serve
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root: Path = tmp_path_factory.mktemp("quickstart")
    text = (ROOT / "examples" / "quickstart" / "switchboard.yaml").read_text()
    with serve_app(app) as function_url:
        config = root / "switchboard.yaml"
        config.write_text(text.replace("http://127.0.0.1:8081", function_url))
        with serve(root / "data", config) as served:
            yield served


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_quickstart_tools_answer(quickstart: Served, mode: str) -> None:
    async def confirm(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with Client(quickstart.mcp, mode=mode, elicitation_callback=confirm) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert names == [
            "tickets___open_tickets",
            "tickets___summarize_ticket",
            "tickets___close_ticket",
            "units___celsius_to_fahrenheit",
        ]
        tickets = await client.call_tool("tickets___open_tickets", {"priority": "high"})
        assert [t["id"] for t in tickets.structured_content["tickets"]] == ["SUP-101"]  # type: ignore[index]
        converted = await client.call_tool("units___celsius_to_fahrenheit", {"celsius": 100})
        assert converted.structured_content == {"celsius": 100.0, "fahrenheit": 212.0}
        closed = await client.call_tool("tickets___close_ticket", {"ticket_id": "SUP-102"})
        assert closed.content[0].text == "SUP-102 closed"  # type: ignore[union-attr]
        missing = await client.call_tool("tickets___summarize_ticket", {"ticket_id": "NOPE"})
        assert missing.is_error and "no ticket 'NOPE'" in missing.content[0].text  # type: ignore[union-attr]
