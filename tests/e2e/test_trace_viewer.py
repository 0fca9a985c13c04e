"""The trace viewer in a real browser: Debian's headless Chromium, driven by Playwright.

An agent session (a 2025-11-25 MCP session: one session id) makes three calls through a
real ``switchboard serve``; then the browser signs in with the admin key, finds the
session, opens a step and reads its inputs and outputs. The page is saved as a
screenshot under ``test-output/``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import anyio
import httpx2
import orjson
import pytest
from mcp import Client
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.harness import ROOT, Served, serve_config

CHROMIUM = os.environ.get("SWITCHBOARD_TEST_CHROMIUM", "/usr/bin/chromium")
OUTPUT = ROOT / "test-output" / "trace_viewer"
CONFIG = """
gateways:
  - name: default
    targets:
      - name: tickets
        kind: function
        functions:
          - examples.quickstart.tools:open_tickets
          - examples.quickstart.tools:summarize_ticket
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_config(tmp_path_factory.mktemp("viewer"), CONFIG) as s:
        anyio.run(_agent_session, s)
        yield s


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (Debian's package chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # As root in a container, and with no network beyond loopback to reach for.
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


async def _agent_session(served: Served) -> None:
    """Three calls in one MCP session (the last one fails)."""
    async with Client(served.mcp, mode="legacy") as client:
        await client.call_tool("tickets___open_tickets", {"priority": "high"})
        await client.call_tool("tickets___summarize_ticket", {"ticket_id": "SUP-101"})
        await client.call_tool("tickets___summarize_ticket", {"ticket_id": "NOPE"})


def _wait_for_sessions(served: Served, deadline: float) -> list[str]:
    """The session ids the viewer lists (spans reach the store a moment after the calls)."""
    with httpx2.Client(headers=served.admin_headers) as http:
        while True:
            page = http.get(f"{served.base}/ui/traces")
            assert page.status_code == 200, page.text
            if "/ui/traces/sessions/" in page.text:
                return [part.split('"', 1)[0] for part in page.text.split('href="/ui/traces/sessions/')[1:]]
            assert time.monotonic() < deadline, "no session reached the trace store"
            time.sleep(0.1)


def test_viewer_finds_the_session_and_shows_a_step(served: Served, page: Page) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    sessions = _wait_for_sessions(served, time.monotonic() + 20)
    assert len(sessions) == 1

    page.goto(f"{served.base}/ui/traces")
    expect(page.get_by_role("heading", name="Sign in to the trace viewer")).to_be_visible()
    page.get_by_label("Admin key").fill("sb_admin_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not an admin key")
    assert served.admin_key
    page.get_by_label("Admin key").fill(served.admin_key)
    page.get_by_role("button", name="Sign in").click()

    # The search: by tool, then for errors only; the session is there both times.
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    page.get_by_label("Tool").fill("summarize")
    page.get_by_label("errors only").check()
    page.get_by_role("button", name="Search").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=sessions[0]))
    expect(row).to_contain_text("anonymous")
    expect(row.get_by_role("cell").nth(5)).to_have_text("4")  # steps: tools/list and three calls
    expect(row.get_by_role("cell").nth(6)).to_have_text("1")  # errors
    page.get_by_label("Tool").fill("no_such_tool")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No sessions match.")).to_be_visible()
    page.get_by_label("Tool").fill("")
    page.get_by_label("errors only").uncheck()
    page.get_by_role("button", name="Search").click()

    page.get_by_role("link", name=sessions[0]).click()
    expect(page.get_by_role("heading", name=f"Session {sessions[0]}")).to_be_visible()
    steps = page.locator("details.step")
    expect(steps).to_have_count(4)
    expect(steps.filter(has_text="tools/list")).to_have_count(1)  # the client's, for output schemas
    second = steps.filter(has_text="tools/call tickets___summarize_ticket").first
    second.locator("> summary").click()
    expect(second.get_by_label("Inputs")).to_contain_text('"ticket_id": "SUP-101"')
    expect(second.get_by_label("Outputs")).to_contain_text("Cannot log in after password reset")
    expect(second).to_contain_text("target tickets")
    failed = steps.filter(has_text="tool_error")
    expect(failed).to_have_count(1)
    failed.locator("> summary").click()
    expect(failed).to_contain_text("no ticket 'NOPE'")
    page.locator("details.step > summary").first.focus()
    # The log line of the failure is JSON and names the failing step's trace.
    logged = [orjson.loads(line) for line in served.output if line.startswith("{")]
    failure = next(line for line in logged if "failed unexpectedly" in line["message"])
    assert failure["level"] == "error" and "ValueError: no ticket 'NOPE'" in failure["exception"]
    expect(failed).to_contain_text(f"trace {failure['trace_id']}")
    shot = OUTPUT / "session.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    # Another tenant's key sees none of it; signing out shows the sign-in page again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the trace viewer")).to_be_visible()
    page.goto(f"{served.base}/ui/traces/sessions/{sessions[0]}")
    expect(page.get_by_role("heading", name="Sign in to the trace viewer")).to_be_visible()
