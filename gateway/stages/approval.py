"""Human approval: calls to tools that need it wait for a yes from someone other than the caller,
and the yes is recorded first.

A gateway's `approvals` rules name tools (globs) and who decides (``approver``); a Cedar permit
annotated ``@approval("required")`` asks for approval of the calls it permits (decided by the
approver of the first rule naming the tool, else by an administrator). Before such a call runs:

- ``approver: admin`` (the default): the call is held as a pending approval that an
  administrator decides through the admin API (``GET /admin/v1/approvals?status=pending``,
  ``POST /admin/v1/approvals/{id}``) within ``timeout_seconds`` (then it expires, and the call
  is refused). The calling client is not asked: whatever it could answer does not count.
- ``approver: client`` (opt-in): the calling client is asked (elicitation, either era) — the
  tool, and its arguments with secrets masked — and its answer is recorded. That proves only
  that the caller's own client said yes (an automated client can answer its own question);
  a client that cannot be asked is held for an administrator as above.

Nothing runs until the approval is stored; a refusal says who refused and why.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from gateway.core.redaction import redact_text
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult
from gateway.stages.audit import digest
from gateway.store import StoreApprovals

POLL_SECONDS = 0.25
DEFAULT_TIMEOUT_SECONDS = 300.0
PREVIEW_CHARS = 1800
"""The most of a call's arguments (JSON, masked) an approver is shown; a call with longer ones is refused."""
QUESTION = {
    "type": "object",
    "properties": {"approve": {"type": "boolean", "title": "Approve this call"}},
    "required": ["approve"],
}


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    tools: tuple[str, ...]
    timeout_seconds: float
    approver: str = "admin"  # "admin" or "client" (config.ApprovalSpec.approver)

    def applies(self, tool: str) -> bool:
        return not self.tools or any(fnmatch.fnmatchcase(tool, p) for p in self.tools)


class GatewayApprovals:
    """The approval stage of one gateway."""

    def __init__(
        self, tenant: str, gateway: str, rules: Sequence[ApprovalRule], store: StoreApprovals
    ) -> None:
        self.tenant = tenant
        self.gateway = gateway
        self.rules = list(rules)
        self.store = store

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        tool = call.public_name or call.name
        rule = next((r for r in self.rules if r.applies(tool)), None)
        if rule is None and ctx.approval_required:  # a policy asked for it: an administrator decides
            rule = ApprovalRule((), DEFAULT_TIMEOUT_SECONDS)
        if rule is None:
            return await call_next(call, ctx)
        preview, whole = arguments_preview(call.arguments)
        if not whole:
            # An approver who sees part of the arguments approves what they did not see (a long
            # harmless member first, the dangerous one after it): such a call is not held at all.
            return ToolResult.error(
                f"{tool} needs approval, and its arguments are longer than an approver is shown "
                f"({PREVIEW_CHARS} characters as JSON); it did not run. Send shorter arguments, or ask "
                "an administrator to exempt the tool from approval."
            )
        subject = ctx.principal.subject
        if rule.approver == "client" and ctx.channel.supports("elicitation"):
            params = {
                "mode": "form",
                "message": f"Allow {tool} to run with {preview}?",
                "requestedSchema": QUESTION,
            }
            answer = (
                await ctx.channel.ask({"approval": {"method": "elicitation/create", "params": params}})
            )["approval"]
            approved = (
                answer.get("action") == "accept" and (answer.get("content") or {}).get("approve") is True
            )
            ctx.approval = await self.store.create(
                self.tenant,
                self.gateway,
                tool,
                subject,
                digest(call.arguments),
                preview,
                status="approved" if approved else "rejected",
                decided_by=f"{subject} (asked in the client)",
            )
            if not approved:
                return ToolResult.error(f"{tool} was not approved ({answer.get('action')}); it did not run.")
            return await call_next(call, ctx)
        approval_id = await self.store.create(
            self.tenant, self.gateway, tool, subject, digest(call.arguments), preview
        )
        ctx.approval = approval_id
        with anyio.move_on_after(min(rule.timeout_seconds, max(0.0, ctx.remaining()))):
            while True:
                found = await self.store.get(self.tenant, approval_id)
                if found is not None and found["status"] != "pending":
                    break
                await anyio.sleep(POLL_SECONDS)
        found = await self.store.get(self.tenant, approval_id)
        if found is None or found["status"] == "pending":
            await self.store.decide(self.tenant, approval_id, "expired", "the gateway (no decision in time)")
            return ToolResult.error(
                f"{tool} waited {rule.timeout_seconds:g} s for approval {approval_id} and got none; "
                "it did not run."
            )
        if found["status"] != "approved":
            why = f": {found['reason']}" if found.get("reason") else ""
            return ToolResult.error(f"{tool} was rejected by {found['decided_by']}{why}; it did not run.")
        return await call_next(call, ctx)


def arguments_preview(arguments: Mapping[str, Any]) -> tuple[str, bool]:
    """A call's arguments as the approver sees them (JSON, secrets masked, capped), and whether
    that is all of them.

    Serialising is linear (C); only the first `PREVIEW_CHARS` (and a margin) are scanned.
    """
    try:
        text = orjson.dumps(arguments).decode()
    except orjson.JSONEncodeError:  # integers past 64 bits: the standard encoder takes any size
        text = json.dumps(arguments, default=repr)
    return redact_text(text, PREVIEW_CHARS), len(text) <= PREVIEW_CHARS
