"""Human approval through a real `switchboard serve`: where the gateway lets the client decide
(`approver: client`), one call approved by the user through elicitation (both eras) and one
declined there; one held for an administrator who rejects it through the admin API; and where
an approver other than the caller is required (the default), an automated client that accepts
its own elicitation cannot get its call run until an administrator approves it. Only approved
calls run, and every decision is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext

from tests.e2e.harness import Served, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root: Path = tmp_path_factory.mktemp("approvals")
    config = root / "switchboard.yaml"
    config.write_text(
        """
gateways:
  - name: default
    approvals: [{tools: ["mail___send_email"], timeout_seconds: 30, approver: client}]
    targets:
      - name: mail
        kind: function
        functions: ["tests.fixtures.functions:send_email", "tests.fixtures.functions:sent"]
  - name: guarded
    policies:
      - |
        @approval("required")
        permit(principal, action == Switchboard::Action::"mail___send_email", resource);
      - 'permit(principal, action == Switchboard::Action::"mail___sent", resource);'
    targets:
      - name: mail
        kind: function
        functions: ["tests.fixtures.functions:send_email", "tests.fixtures.functions:sent"]
  - name: strict
    approvals: [{tools: ["mail___send_email"], timeout_seconds: 30}]
    targets:
      - name: mail
        kind: function
        functions: ["tests.fixtures.functions:send_email", "tests.fixtures.functions:sent"]
"""
    )
    with serve(root / "data", config) as s:
        yield s


def answering(approve: bool, seen: list[str]) -> Any:
    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": approve})

    return answer


async def sent(client: Client) -> list[str]:
    return list((await client.call_tool("mail___sent", {})).structured_content["result"])  # type: ignore[index]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_user_approves_or_declines_in_the_client(served: Served, mode: str) -> None:
    asked: list[str] = []
    to = f"yes-{mode}@example.com"
    async with Client(served.mcp, mode=mode, elicitation_callback=answering(True, asked)) as client:
        done = await client.call_tool("mail___send_email", {"to": to, "body": "hi"})
        assert done.content[0].text == f"sent to {to}"  # type: ignore[union-attr]
        assert "mail___send_email" in asked[0] and "[REDACTED:email]" in asked[0]  # arguments shown, masked
        assert to in await sent(client)
    no = f"no-{mode}@example.com"
    async with Client(served.mcp, mode=mode, elicitation_callback=answering(False, asked)) as client:
        refused = await client.call_tool("mail___send_email", {"to": no, "body": "hi"})
        assert refused.is_error and "was not approved" in refused.content[0].text  # type: ignore[union-attr]
        assert no not in await sent(client)


async def test_an_administrator_rejects_a_held_call(served: Served) -> None:
    results: list[types.CallToolResult] = []
    async with (
        Client(served.mcp, mode="legacy") as client,  # no elicitation: the call is held
        httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin,
        anyio.create_task_group() as tg,
    ):

        async def call() -> None:
            results.append(
                await client.call_tool("mail___send_email", {"to": "held@example.com", "body": "x"})
            )

        tg.start_soon(call)
        pending: list[dict[str, Any]] = []
        for _ in range(100):
            pending = (await admin.get("/admin/v1/approvals", params={"status": "pending"})).json()[
                "approvals"
            ]
            if pending:
                break
            await anyio.sleep(0.05)
        assert len(pending) == 1 and pending[0]["tool"] == "mail___send_email"
        assert "held@example.com" not in pending[0]["arguments"]  # the approver sees it masked
        decided = await admin.post(
            f"/admin/v1/approvals/{pending[0]['id']}", json={"decision": "reject", "reason": "not today"}
        )
        assert decided.status_code == 200 and decided.json()["status"] == "rejected"
        again = await admin.post(f"/admin/v1/approvals/{pending[0]['id']}", json={"decision": "approve"})
        assert again.status_code == 409
    result = results[0]
    assert result.is_error
    assert result.content[0].text == (  # type: ignore[union-attr]
        "mail___send_email was rejected by an administrator (admin API): not today; it did not run."
    )
    async with Client(served.mcp, mode="legacy") as client:
        assert "held@example.com" not in await sent(client)


async def pending_approval(admin: httpx2.AsyncClient, gateway: str) -> dict[str, Any]:
    """The pending approval of the held call (polled: a held call is recorded before it waits)."""
    with anyio.fail_after(10):
        while True:
            pending = (await admin.get("/admin/v1/approvals", params={"status": "pending"})).json()
            held = [a for a in pending["approvals"] if a["gateway"] == gateway]
            if held:
                return held[0]  # type: ignore[no-any-return]
            await anyio.sleep(0.05)


@pytest.mark.parametrize(
    ("gateway", "mode"), [("strict", "legacy"), ("strict", "2026-07-28"), ("guarded", "legacy")]
)
async def test_a_client_accepting_its_own_elicitation_cannot_run_a_call_held_for_an_administrator(
    served: Served, gateway: str, mode: str
) -> None:
    asked: list[str] = []
    to = f"self-{gateway}-{mode}@example.com"
    results: list[types.CallToolResult] = []
    async with (
        Client(served.gateway(gateway), mode=mode, elicitation_callback=answering(True, asked)) as client,
        httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin,
        anyio.create_task_group() as tg,
    ):

        async def call() -> None:
            results.append(await client.call_tool("mail___send_email", {"to": to, "body": "hi"}))

        tg.start_soon(call)
        held = await pending_approval(admin, gateway)
        assert not results and to not in await sent(client)  # held: the client's yes did not count
        assert asked == []  # and it was not even asked
        decided = await admin.post(f"/admin/v1/approvals/{held['id']}", json={"decision": "approve"})
        assert decided.status_code == 200 and decided.json()["decided_by"] == "an administrator (admin API)"
    assert results[0].content[0].text == f"sent to {to}"  # type: ignore[union-attr]
    async with Client(served.gateway(gateway), mode="legacy") as client:
        assert to in await sent(client)


async def test_arguments_too_long_to_show_the_approver_are_never_held(served: Served) -> None:
    """A harmless long member first and the real one after it: the approver would see only the
    first part, so the call is refused outright and nothing waits for an approval."""
    hidden = "attacker@example.net"
    async with (
        Client(served.gateway("strict"), mode="legacy") as client,
        httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin,
    ):
        refused = await client.call_tool("mail___send_email", {"body": "x" * 5000, "to": hidden})
        assert refused.is_error and "longer than an approver is shown" in refused.content[0].text  # type: ignore[union-attr]
        pending = (await admin.get("/admin/v1/approvals", params={"status": "pending"})).json()["approvals"]
        assert pending == []
        assert hidden not in await sent(client)
