"""Tool pinning through a real `switchboard serve`: an upstream that changes a tool's
description after approval loses that tool until an administrator approves it again."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.e2e.harness import ROOT, serve
from tests.e2e.test_federation import free_port, start_upstream, stop

pytestmark = pytest.mark.anyio


async def test_a_changed_tool_is_hidden_and_refused_until_approved_again(tmp_path: Path) -> None:
    port = free_port()
    upstream = start_upstream(port)
    config = tmp_path / "sw.yaml"
    config.write_text(
        "gateways:\n  - name: default\n    targets:\n"
        f"      - {{name: py, kind: mcp, url: 'http://127.0.0.1:{port}/mcp', protocol: legacy}}\n"
    )
    changed = [anyio.Event()]

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed[-1].set()

    try:
        with serve(tmp_path / "data", config) as served:
            async with (
                Client(served.mcp, mode="legacy", message_handler=on_message) as client,
                httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin,
            ):
                pins_url = "/admin/v1/gateways/default/targets/py/pins"
                names = {t.name for t in (await client.list_tools()).tools}
                assert "py___add" in names  # approved when the target was added
                review = (await admin.get(pins_url)).json()["tools"]
                assert {e["status"] for e in review} == {"approved"}

                # The upstream changes `add`'s description: the tool disappears and is refused.
                assert (await client.call_tool("py___redescribe", {})).content[0].text == "redescribed"  # type: ignore[union-attr]
                with anyio.fail_after(15):
                    await changed[-1].wait()
                names = {t.name for t in (await client.list_tools()).tools}
                assert "py___add" not in names and "py___count" in names
                refused = await client.call_tool("py___add", {"a": 1, "b": 2})
                assert refused.is_error
                assert "changed upstream since it was approved" in refused.content[0].text  # type: ignore[union-attr]

                # The administrator sees what changed, in the API and in the CLI.
                entry = next(e for e in (await admin.get(pins_url)).json()["tools"] if e["tool"] == "add")
                assert entry["status"] == "changed"
                assert any(line.startswith("+") and "id_rsa" in line for line in entry["diff"])
                assert any(line.startswith("-") and "Add two integers." in line for line in entry["diff"])
                cli = await anyio.run_process(
                    [
                        sys.executable,
                        "-m",
                        "gateway.cli",
                        "pins",
                        "default",
                        "py",
                        "--data-dir",
                        str(tmp_path / "data"),
                    ],
                    cwd=ROOT,
                    check=False,
                )
                out = cli.stdout.decode()
                assert cli.returncode == 0, cli.stderr.decode()
                assert "changed  add" in out and "id_rsa" in out, out

                # A new tool waits for approval too (this target does not opt out).
                assert (await client.call_tool("py___toggle", {})).content[0].text == "added"  # type: ignore[union-attr]
                for _ in range(150):  # the gateway lists the upstream again when it hears of the change
                    review = (await admin.get(pins_url)).json()["tools"]
                    if any(e["tool"] == "extra" and e["status"] == "new" for e in review):
                        break
                    await anyio.sleep(0.1)
                assert any(e["tool"] == "extra" and e["status"] == "new" for e in review), review
                assert "py___extra" not in {t.name for t in (await client.list_tools()).tools}

                # Approving a tool the upstream does not serve is refused and changes nothing.
                bad = await admin.post(pins_url, json={"tools": ["nope"]})
                assert bad.status_code == 422 and "does not serve 'nope'" in bad.json()["error"]

                # An empty list approves nothing (it is not "approve everything waiting").
                nothing = await admin.post(pins_url, json={"tools": []})
                assert nothing.status_code == 200 and nothing.json()["approved"] == []

                # Approval brings `add` back, as the upstream now describes it. The body comes
                # chunked (no Content-Length): it is read all the same, and names only `add`.
                async def chunked() -> Any:
                    yield b'{"tools": ["add"]}'

                changed.append(anyio.Event())
                approved = await admin.post(
                    pins_url, content=chunked(), headers={"content-type": "application/json"}
                )
                assert approved.status_code == 200, approved.text
                assert approved.json()["approved"] == ["add"]
                with anyio.fail_after(15):
                    await changed[-1].wait()
                tools = {t.name: t for t in (await client.list_tools()).tools}
                assert "id_rsa" in (tools["py___add"].description or "")
                assert "py___extra" not in tools  # still waiting: only `add` was approved
                assert (await client.call_tool("py___add", {"a": 1, "b": 2})).structured_content == {
                    "result": 3
                }
    finally:
        stop(upstream)
