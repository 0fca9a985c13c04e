"""Pipeline stages intercept tool calls: ``await stage(call, ctx, call_next)``.

The chain is composed once from configuration. Error mapping is the fixed
outermost stage: a ToolExecutionError (or an unexpected provider exception)
becomes an ``isError`` result; request and auth errors pass through to the
front, which turns them into wire errors. The catalog router is the terminal.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from functools import partial
from typing import Protocol

from gateway.core.errors import AuthError, CredentialRequired, InputRequired, RequestError, ToolExecutionError
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult

logger = logging.getLogger(__name__)


class Stage(Protocol):
    """One interceptor in the call path."""

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult: ...


async def map_errors(call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
    """Outermost stage: tool failures become results the model can read."""
    try:
        return await call_next(call, ctx)
    except ToolExecutionError as exc:
        return ToolResult.error(exc.message)
    except CredentialRequired as exc:
        return await _consent(exc, call, ctx, call_next)
    except (RequestError, AuthError, InputRequired):
        raise
    except Exception as exc:
        logger.exception("tool %s failed unexpectedly", call.public_name or call.name)
        return ToolResult.error(f"Tool {call.public_name or call.name!r} failed: {type(exc).__name__}: {exc}")


async def _consent(
    exc: CredentialRequired, call: ToolCall, ctx: CallContext, call_next: CallNext
) -> ToolResult:
    """Send the user to the consent page through URL elicitation when the client can open one,
    then try the call again; otherwise hand the model the link."""
    if not ctx.channel.supports("elicitation.url"):
        return ToolResult.error(exc.message)
    params = {
        "mode": "url",
        "message": f"Switchboard needs your permission to use {exc.provider} for you.",
        "url": exc.consent_url,
        "elicitationId": secrets.token_urlsafe(12),
    }
    answer = (await ctx.channel.ask({"consent": {"method": "elicitation/create", "params": params}}))[
        "consent"
    ]
    if answer.get("action") != "accept":
        return ToolResult.error(f"Authorization of {exc.provider} was not given ({answer.get('action')}).")
    try:
        return await call_next(call, ctx)
    except CredentialRequired as again:
        return ToolResult.error(again.message)


def compose(stages: Sequence[Stage], terminal: CallNext) -> CallNext:
    """Build the chain once: ``map_errors -> stages... -> terminal``."""
    handler: CallNext = terminal
    for stage in reversed([map_errors, *stages]):
        handler = partial(stage, call_next=handler)
    return handler
