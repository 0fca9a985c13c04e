"""Human approval: calls to tools that need it wait for a person's yes, and the yes is recorded first.

A gateway's `approvals` rules name tools (globs), and a Cedar permit annotated
``@approval("required")`` asks for approval of the calls it permits. Before such a call runs:

- if the calling client can ask its user (elicitation, either era), it is asked — the tool,
  and its arguments with secrets masked — and the answer is recorded;
- otherwise the call is held as a pending approval that an approver decides through the
  admin API (``GET /admin/v1/approvals?status=pending``, ``POST /admin/v1/approvals/{id}``)
  within ``timeout_seconds`` (then it expires, and the call is refused).

Nothing runs until the approval is stored; a refusal says who refused and why.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import orjson

from gateway.audit import digest
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult
from gateway.redaction import redact
from gateway.store._approvals import StoreApprovals

POLL_SECONDS = 0.25
DEFAULT_TIMEOUT_SECONDS = 300.0
QUESTION = {
    "type": "object",
    "properties": {"approve": {"type": "boolean", "title": "Approve this call"}},
    "required": ["approve"],
}


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    tools: tuple[str, ...]
    timeout_seconds: float

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

    async def stage(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        tool = call.public_name or call.name
        rule = next((r for r in self.rules if r.applies(tool)), None)
        if rule is None and ctx.approval_required:  # a policy asked for it
            rule = ApprovalRule((), DEFAULT_TIMEOUT_SECONDS)
        if rule is None:
            return await call_next(call, ctx)
        preview = orjson.dumps(redact(call.arguments)).decode()
        subject = ctx.principal.subject
        if ctx.channel.supports("elicitation"):
            params = {
                "mode": "form",
                "message": f"Allow {tool} to run with {preview[:1000]}?",
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
