"""Python functions served as MCP tools by the quickstart gateway.

Each function's type hints become the tool's input schema and its docstring
the description. A parameter typed ``CallContext`` gets the call's context.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from gateway.core.types import CallContext

_TICKETS = [
    {"id": "SUP-101", "title": "Cannot log in after password reset", "priority": "high", "status": "open"},
    {"id": "SUP-102", "title": "Invoice PDF is blank", "priority": "medium", "status": "open"},
    {"id": "SUP-103", "title": "Feature request: dark mode", "priority": "low", "status": "open"},
    {"id": "SUP-104", "title": "Export to CSV times out", "priority": "high", "status": "closed"},
]


class Ticket(BaseModel):
    id: str
    title: str
    priority: Literal["low", "medium", "high"]
    status: Literal["open", "closed"]


class TicketList(BaseModel):
    tickets: list[Ticket]
    as_of: str


def open_tickets(
    priority: Literal["low", "medium", "high"] | None = None,
    limit: int = Field(10, ge=1, le=100, description="At most this many tickets."),
) -> TicketList:
    """List open support tickets, most urgent first.

    Filter by priority to see only those tickets.
    """
    order = {"high": 0, "medium": 1, "low": 2}
    rows = [t for t in _TICKETS if t["status"] == "open" and (priority is None or t["priority"] == priority)]
    rows.sort(key=lambda t: order[t["priority"]])
    return TicketList(
        tickets=[Ticket.model_validate(t) for t in rows[:limit]],
        as_of=datetime.now(UTC).isoformat(timespec="seconds"),
    )


async def summarize_ticket(ticket_id: str, ctx: CallContext) -> str:
    """Summarize one ticket, reporting progress while it works."""
    ticket = next((t for t in _TICKETS if t["id"] == ticket_id), None)
    if ticket is None:
        raise ValueError(f"no ticket {ticket_id!r}; open_tickets lists the ids")
    await ctx.channel.progress(1, 2, "found the ticket")
    summary = f"{ticket['id']} ({ticket['priority']}, {ticket['status']}): {ticket['title']}"
    await ctx.channel.progress(2, 2, "done")
    return summary


async def close_ticket(ticket_id: str, ctx: CallContext) -> str:
    """Close a ticket, after asking the user to confirm."""
    answer = await ctx.channel.elicit(
        f"Close ticket {ticket_id}?",
        {"type": "object", "properties": {"confirm": {"type": "boolean"}}, "required": ["confirm"]},
    )
    if answer.get("action") != "accept" or not answer.get("content", {}).get("confirm"):
        return f"{ticket_id} left open"
    return f"{ticket_id} closed"
