"""Interceptors on their own: the built-in redaction, and request/response interceptors that
rewrite, refuse, or fail closed."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.errors import ToolExecutionError
from gateway.core.types import CallContext, ToolCall, ToolResult
from gateway.stages.interceptors import (
    GatewayInterceptors,
    Interceptor,
    builtin_redact,
    python_interceptor,
    redact_text,
)
from tests.fixtures.functions import leak, uppercase_user

pytestmark = pytest.mark.anyio


def test_redaction_masks_secrets_and_pii_and_leaves_the_rest() -> None:
    masked = redact_text(leak("ann"))
    assert "ann@example.com" not in masked and "[REDACTED:email]" in masked
    assert "[REDACTED:github_token]" in masked and "[REDACTED:aws_access_key]" in masked
    assert "[REDACTED:card]" in masked  # a Luhn-valid number
    assert "1234 5678 9012 3456" in masked  # not a card number: kept
    assert "user ann:" in masked
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLXNpZw"
    assert redact_text(f"token={jwt}") == "token=[REDACTED:jwt]"
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
    assert redact_text(f"k: {pem}") == "k: [REDACTED:private_key]"
    assert redact_text("SSN 123-45-6789") == "SSN [REDACTED:us_ssn]"


async def run(
    interceptors: list[Interceptor], arguments: dict[str, Any]
) -> tuple[ToolResult, dict[str, Any]]:
    seen: dict[str, Any] = {}

    async def upstream(call: ToolCall, ctx: CallContext) -> ToolResult:
        seen.update(call.arguments)
        return ToolResult.text(leak(str(call.arguments.get("user"))))

    stage = GatewayInterceptors("g", interceptors)
    return await stage(ToolCall("leak", arguments, public_name="fx___leak"), CallContext(), upstream), seen


async def test_request_rewrite_refusal_and_response_redaction() -> None:
    chain = [
        Interceptor("rewrite", "request", (), python_interceptor(uppercase_user)),
        Interceptor("redact", "response", (), builtin_redact),
    ]
    result, seen = await run(chain, {"user": "ann"})
    assert seen == {"user": "ANN"}
    text = result.content[0]["text"]
    assert "ANN@example.com" not in text and "[REDACTED:email]" in text
    refused, seen = await run(chain, {"user": "mallory"})
    assert refused.is_error and refused.content[0]["text"] == "mallory may not ask this" and seen == {}


async def test_only_matching_tools_and_failures_fail_closed() -> None:
    result, _ = await run(
        [Interceptor("redact", "response", ("other___*",), builtin_redact)], {"user": "ann"}
    )
    assert "ann@example.com" in result.content[0]["text"]  # not this tool

    def broken(envelope: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("interceptor crashed")

    with pytest.raises(
        ToolExecutionError, match="interceptor broken failed: RuntimeError: interceptor crashed"
    ):
        await run([Interceptor("broken", "request", (), python_interceptor(broken))], {"user": "ann"})
