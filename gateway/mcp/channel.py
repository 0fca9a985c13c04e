"""The back-channel to the calling client, in either protocol era.

2025 era: progress, logs, elicitation, sampling and roots are server-to-client
messages on the call's own SSE stream.

2026-07-28 era: there is no server-to-client request. A provider that asks a
question makes the call answer ``input_required`` with the questions; the
client answers and retries the same call carrying the answers and the sealed
``requestState`` (sealed and bound to the request and the caller by the SDK's
RequestStateBoundary). The provider then runs again from the start and every
question it asked before is answered from what the client sent, so its code
reads the same in both eras. (Side effects before a question therefore run
once per round; providers that must not repeat them ask first.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mcp_types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import INVALID_PARAMS

from gateway.core.errors import InputRequired, MissingClientCapability
from gateway.core.types import CAPABILITY_OF, JSON

MODERN = "2026-07-28"
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


def _dump(model: Any) -> JSON:
    out: JSON = model.model_dump(by_alias=True, mode="json", exclude_none=True)
    return out


class McpChannel:
    """ClientChannel over one MCP request."""

    def __init__(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: types.RequestParams,
        *,
        log_level: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.min_log_level = LOG_LEVELS.index(log_level) if log_level in LOG_LEVELS else 0
        self.modern = ctx.protocol_version >= MODERN
        self._asked = 0
        self._answers: dict[str, JSON] = {}
        if self.modern and isinstance(params, types.InputResponseRequestParams):
            if params.request_state:
                try:
                    state = orjson.loads(params.request_state)
                    self._answers = {str(k): v for k, v in dict(state.get("answers", {})).items()}
                except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                    raise MCPError(INVALID_PARAMS, "Invalid or expired requestState") from None
            for key, response in (params.input_responses or {}).items():
                self._answers[key] = _dump(response)

    def supports(self, capability: str) -> bool:
        """A capability the client declared; dotted for a sub-capability (``elicitation.url``)."""
        found: object = self.ctx.session.client_capabilities
        for part in capability.split("."):
            found = getattr(found, part, None) if found is not None else None
        return found is not None

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        await self.ctx.session.report_progress(progress, total, message)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        if level in LOG_LEVELS and LOG_LEVELS.index(level) < self.min_log_level:
            return  # below what the session asked for with logging/setLevel
        await self.ctx.session.send_log_message(
            level,  # type: ignore[arg-type]
            data,
            logger,
            related_request_id=self.ctx.request_id,
        )

    async def ask(self, requests: Mapping[str, JSON]) -> dict[str, JSON]:
        askable(requests, self.supports)
        if self.modern:
            missing = {k: dict(r) for k, r in requests.items() if k not in self._answers}
            if missing:
                raise InputRequired(missing, dict(self._answers))
            return {k: self._answers[k] for k in requests}
        return {key: await self._legacy(r["method"], r.get("params") or {}) for key, r in requests.items()}

    async def _legacy(self, method: str, params: JSON) -> JSON:
        session = self.ctx.session
        if method == "elicitation/create" and params.get("mode") == "url":
            result: Any = await session.elicit_url(
                params.get("message", ""),
                params.get("url", ""),
                params.get("elicitationId", ""),
                related_request_id=self.ctx.request_id,
            )
        elif method == "elicitation/create":
            result = await session.elicit_form(
                params.get("message", ""),
                params.get("requestedSchema", {}),
                related_request_id=self.ctx.request_id,
            )
        elif method == "sampling/createMessage":
            request = types.CreateMessageRequest(
                params=types.CreateMessageRequestParams.model_validate(params)
            )
            result = await session.send_request(request, types.CreateMessageResult, metadata=self._related)
        else:
            result = await session.send_request(
                types.ListRootsRequest(), types.ListRootsResult, metadata=self._related
            )
        return _dump(result)

    @property
    def _related(self) -> ServerMessageMetadata:
        # on this call's own stream, so the answer comes back while the call waits
        return ServerMessageMetadata(related_request_id=self.ctx.request_id)

    def _key(self, key: str | None) -> str:
        self._asked += 1
        return key or f"q{self._asked}"

    async def elicit(self, message: str, requested_schema: JSON, *, key: str | None = None) -> JSON:
        k = self._key(key)
        params = {"mode": "form", "message": message, "requestedSchema": requested_schema}
        return (await self.ask({k: {"method": "elicitation/create", "params": params}}))[k]

    async def sample(self, request: JSON, *, key: str | None = None) -> JSON:
        k = self._key(key)
        return (await self.ask({k: {"method": "sampling/createMessage", "params": request}}))[k]

    async def list_roots(self, *, key: str | None = None) -> JSON:
        k = self._key(key)
        return (await self.ask({k: {"method": "roots/list", "params": {}}}))[k]


def input_required(pending: InputRequired) -> JSON:
    """The ``input_required`` result asking the client the pending questions."""
    return {
        "resultType": "input_required",
        "inputRequests": pending.requests,
        "requestState": orjson.dumps({"answers": pending.answered}).decode(),
    }


def askable(requests: Mapping[str, JSON], supports: Callable[[str], bool]) -> None:
    """Refuse questions the client cannot be asked (an unknown method, or one whose capability
    it did not declare: MissingClientCapability)."""
    for request in requests.values():
        capability = CAPABILITY_OF.get(request.get("method", ""))
        if capability is None:
            raise ValueError(f"cannot ask the client {request.get('method')!r}")
        if not supports(capability):
            raise MissingClientCapability(capability)
