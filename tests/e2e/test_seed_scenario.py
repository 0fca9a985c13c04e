"""The seed scenario, end to end through one gateway URL: a support agent (an MCP client
following a scripted plan; no LLM is reachable here) finds today's top open support
tickets in Jira, searches the knowledge base in Confluence for each, drafts a reply from
the article it finds, and sends it by Gmail. Sending is held for a person's approval:
nothing reaches Gmail until an approver says yes.

Jira, Confluence and Gmail are Prism serving the connectors' API documents; the users'
OAuth consent runs against the test authorization server.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client

from gateway.connectors import catalog
from tests.e2e.test_connectors import (
    CONSENT,
    World,
    client_for,
    consent,
    enable,
    gateway_world,
    key_for,
    picked_up,
    text,
)
from tests.support.prism import Prism, prism

pytestmark = pytest.mark.anyio

PLATFORMS = ("jira", "confluence", "google")
TODAYS_TOP = "project = SUP AND status = Open AND created >= startOfDay() ORDER BY priority DESC"
APPROVALS = """    approvals:
      - tools: [google___send_email]
        timeout_seconds: 120
"""


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, dict[str, Prism]]]:
    root = tmp_path_factory.mktemp("seed")
    with gateway_world(root, APPROVALS) as world:
        upstreams: dict[str, Prism] = {}
        with (
            prism(catalog().entries["jira"].spec_path) as upstreams["jira"],
            prism(catalog().entries["confluence"].spec_path) as upstreams["confluence"],
            prism(catalog().entries["google"].spec_path) as upstreams["google"],
        ):
            for name in PLATFORMS:
                enable(world.data, name, world.issuer, upstreams[name].url)
            yield world, upstreams


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, f"{tool}: {text(result)}"
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def sign_in_everywhere(world: World, client: Client, user: str, key: str) -> None:
    """The user's first call to each platform answers its consent link; they consent once each."""
    probes = {
        "jira": ("jira___search_issues", {"jql": "project = SUP"}),
        "confluence": ("confluence___search", {"cql": "space = KB"}),
        "google": ("google___search_email", {"q": "in:sent"}),
    }
    for name, (tool, args) in probes.items():
        first = await client.call_tool(tool, args)
        assert first.is_error, f"{name}: a user without consent must get the link first"
        link = CONSENT.search(text(first))
        assert link is not None, text(first)
        await consent(world.issuer, link.group(1), user, key)


def reply(ticket: dict[str, Any], article: dict[str, Any], page: dict[str, Any]) -> str:
    """The scripted plan's 'draft': the ticket's problem, the article and its link."""
    summary = ticket["fields"]["summary"]
    body = re.sub(r"<[^>]+>", " ", str((page.get("body") or {}).get("storage", {}).get("value", "")))
    excerpt = " ".join(body.split())[:400]
    title = article.get("content", {}).get("title") or page.get("title")
    return (
        f"Hello,\n\nabout your request {ticket['key']} ({summary}): our article "
        f'"{title}" explains what to do.\n\n{excerpt}\n\nBest regards,\nSupport'
    )


def raw_email(to: str, subject: str, body: str) -> str:
    message = EmailMessage()
    message["To"] = to
    message["From"] = "support@example.com"
    message["Subject"] = subject
    message.set_content(body)
    return base64.urlsafe_b64encode(message.as_bytes()).decode().rstrip("=")


def sends(upstream: Prism) -> int:
    return sum(1 for line in upstream.lines if "post /gmail/v1/users/me/messages/send" in line.lower())


async def test_top_tickets_answered_from_the_knowledge_base_with_approval_to_send(
    desk: tuple[World, dict[str, Prism]],
) -> None:
    world, upstreams = desk
    for name in PLATFORMS:
        await picked_up(world.served, name)
    key = await key_for(world.served, "support-agent")
    async with client_for(world.served, key) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert {"jira___search_issues", "confluence___search", "google___send_email"} <= listed
        await sign_in_everywhere(world, client, "support-agent", key)

        # 1. Today's top open tickets, most urgent first (trimmed to what the plan reads).
        found = await call(
            client,
            "jira___search_issues",
            {"jql": TODAYS_TOP, "limit": 3},
        )
        tickets = found["items"][:3]
        assert tickets and all(t["key"].startswith("SUP-") for t in tickets), found
        assert all(set(t) <= {"id", "key", "fields"} for t in tickets), tickets[0]

        drafts: list[tuple[str, str, str]] = []
        for ticket in tickets:
            detail = await call(client, "jira___get_issue", {"issueIdOrKey": ticket["key"]})
            words = re.findall(r"[A-Za-z]{5,}", ticket["fields"]["summary"])[:3]
            # 2. The knowledge base, for the ticket's words.
            hits = await call(
                client,
                "confluence___search",
                {"cql": f'type = page AND space = KB AND text ~ "{" ".join(words)}"', "limit": 5},
            )
            assert hits["items"], hits
            article = hits["items"][0]
            page = await call(client, "confluence___get_page", {"id": str(article["content"]["id"])})
            reporter = (detail.get("fields") or {}).get("reporter") or {}
            to = reporter.get("emailAddress") or "customer@example.com"
            subject = f"Re: {ticket['key']} {ticket['fields']['summary']}"
            drafts.append((to, subject, reply(ticket, article, page)))

        # 3. Send each reply: held until a person approves.
        assert sends(upstreams["google"]) == 0
        results: list[types.CallToolResult] = []
        async with (
            httpx2.AsyncClient(base_url=world.served.base, headers=world.served.admin_headers) as admin,
            anyio.create_task_group() as tg,
        ):
            for to, subject, body in drafts:

                async def send(raw: str = raw_email(to, subject, body)) -> None:
                    results.append(await client.call_tool("google___send_email", {"raw": raw}))

                tg.start_soon(send)
            pending: list[dict[str, Any]] = []
            for _ in range(200):
                pending = (await admin.get("/admin/v1/approvals", params={"status": "pending"})).json()[
                    "approvals"
                ]
                if len(pending) == len(drafts):
                    break
                await anyio.sleep(0.05)
            assert len(pending) == len(drafts), pending
            assert {p["tool"] for p in pending} == {"google___send_email"}
            await anyio.sleep(0.5)
            assert sends(upstreams["google"]) == 0, "nothing is sent before the approval"
            for held in pending:
                decided = await admin.post(f"/admin/v1/approvals/{held['id']}", json={"decision": "approve"})
                assert decided.status_code == 200, decided.text
        assert len(results) == len(drafts)
        assert not [r for r in results if r.is_error], [text(r) for r in results]
        assert all((r.structured_content or {}).get("id") for r in results)
    assert sends(upstreams["google"]) == len(drafts)
    for name, upstream in upstreams.items():
        assert upstream.violations() == [], name
