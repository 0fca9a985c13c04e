"""The back-channel to the calling client, in either protocol era.

2025 era: progress, elicitation and sampling are server-to-client messages on
the call's own SSE stream.

2026-07-28 era: there is no server-to-client request. A tool that asks for
input makes the call return ``input_required`` with the question; the client
answers and retries the same call carrying the answers and the sealed
``requestState``. The tool then runs again from the start and each question
it asked before is answered from what the client sent, in order, so the tool's
code reads the same in both eras. (Side effects before a question therefore
run once per round; tools that must not repeat them should ask first.)
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from gateway.core.errors import InputRequired, ToolExecutionError
from gateway.core.types import JSON

MODERN = "2026-07-28"


class McpChannel:
    """ClientChannel over one MCP request."""

    def __init__(self, ctx: ServerRequestContext[Any, Any], params: types.InputResponseRequestParams) -> None:
        self.ctx = ctx
        self.modern = ctx.protocol_version >= MODERN
        self._asked = 0
        self._answers: dict[str, JSON] = {}
        if self.modern:
            if params.request_state:
                try:
                    state = orjson.loads(params.request_state)
                    self._answers = dict(state.get("answers", {}))
                except (orjson.JSONDecodeError, AttributeError):
                    raise MCPError(INVALID_PARAMS, "Invalid or expired requestState") from None
            for key, response in (params.input_responses or {}).items():
                self._answers[key] = response.model_dump(by_alias=True, mode="json", exclude_none=True)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        await self.ctx.session.report_progress(progress, total, message)

    async def _ask(self, method: str, params: JSON) -> JSON:
        self._asked += 1
        key = f"q{self._asked}"
        if key in self._answers:
            return self._answers[key]
        raise InputRequired(key, {"method": method, "params": params}, self._answers)

    async def elicit(self, message: str, requested_schema: JSON) -> JSON:
        if self.modern:
            return await self._ask(
                "elicitation/create",
                {"mode": "form", "message": message, "requestedSchema": requested_schema},
            )
        caps = self.ctx.session.client_capabilities
        if caps is None or caps.elicitation is None:
            raise ToolExecutionError(
                "This tool asks the user for input, but the client does not support elicitation."
            )
        result = await self.ctx.session.elicit_form(
            message, requested_schema, related_request_id=self.ctx.request_id
        )
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)

    async def sample(self, request: JSON) -> JSON:
        if self.modern:
            return await self._ask("sampling/createMessage", request)
        caps = self.ctx.session.client_capabilities
        if caps is None or caps.sampling is None:
            raise ToolExecutionError(
                "This tool asks for a model completion, but the client does not support sampling."
            )
        params = types.CreateMessageRequestParams.model_validate(request)
        result = await self.ctx.session.create_message(
            params.messages,
            max_tokens=params.max_tokens,
            system_prompt=params.system_prompt,
            temperature=params.temperature,
            stop_sequences=params.stop_sequences,
            model_preferences=params.model_preferences,
            related_request_id=self.ctx.request_id,
        )
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)

    def input_required(self, pending: InputRequired) -> JSON:
        """The ``input_required`` result asking the client the pending question."""
        return {
            "resultType": "input_required",
            "inputRequests": {pending.key: pending.request},
            "requestState": orjson.dumps({"answers": pending.answered}).decode(),
        }
