"""Trimmed results (ADR 0047): a target's large answers cut to what a model can use, as the
connectors' shaped tools are, for targets nobody has curated (``results:`` on any target).

The list in an answer (``items``: its dotted path; default: the answer itself when it is a list,
else its longest list member) keeps ``fields`` of each item and its first ``max_items``; the rest
waits in the gateway's result store under a cursor for ``keep_seconds``, bound to the caller and
the tool. The answer says so in ``structuredContent.trimmed`` (shown, total, ``result_cursor``)
and in a line of text; the same tool called with only ``result_cursor`` answers the next items,
from the store, without calling the upstream again. Trimmed tools publish no output schema (their
answers are no longer the upstream's shape).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from gateway.config import ResultsSpec
from gateway.core.errors import InvalidArguments, ToolExecutionError
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from gateway.core.wrappers import WrapperProvider
from gateway.openapi.shaping import lookup, project, tree

CURSOR = "result_cursor"
MAX_KEPT = 8 * 1024 * 1024  # bytes of a trimmed answer's rest kept for its cursor


class Store(Protocol):
    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: str, ttl: int) -> Any: ...


class Trimmed(WrapperProvider):
    """``inner``'s tools with their answers trimmed; ``store`` keeps the rest (None: the first
    items only, with a note)."""

    def __init__(self, inner: ToolProvider, spec: ResultsSpec, store: Store | None) -> None:
        super().__init__(inner)
        self.spec = spec
        self.keep = tree(spec.fields)
        self.store = store
        self.own_cursor: set[str] = set()  # tools with a result_cursor argument of their own: not paged

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        out = []
        for tool in await self.inner.list_tools(ctx):
            schema = dict(tool.input_schema)
            properties = dict(schema.get("properties") or {})
            if CURSOR in properties:
                self.own_cursor.add(tool.name)
            else:
                properties[CURSOR] = {
                    "type": "string",
                    "description": "A trimmed answer's result_cursor: its next items (nothing else needed).",
                }
                schema["properties"] = properties
                if schema.get("required"):  # (a cursor alone is enough)
                    schema["anyOf"] = [{"required": list(schema.pop("required"))}, {"required": [CURSOR]}]
            out.append(replace(tool, input_schema=schema, output_schema=None))
        return out

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        arguments = dict(call.arguments)
        cursor = arguments.pop(CURSOR, None) if call.name not in self.own_cursor else None
        if cursor is not None:
            return await self._next(call.name, str(cursor), ctx)
        result = await self.inner.call_tool(replace(call, arguments=arguments), ctx)
        if result.is_error:
            return result
        body = result.structured if result.structured is not None else _json_text(result)
        if body is None:
            return result
        key, items = _items(body, self.spec.items)
        if items is None:
            kept = project(body, self.keep)
            return _answer(dict(kept) if isinstance(kept, Mapping) else {"result": kept}, None, call.name)
        rest = {k: v for k, v in body.items() if k != key} if isinstance(body, Mapping) else {}
        return await self._page(call.name, rest, key, project(items, self.keep), 0, ctx)

    async def _page(
        self, tool: str, rest: JSON, key: str, items: list[Any], offset: int, ctx: CallContext
    ) -> ToolResult:
        """Answer ``items`` (the list's part from ``offset`` on) cut to ``max_items``; what is left
        is kept under a new cursor (the list's later part only)."""
        total = offset + len(items)
        shown, left = items[: self.spec.max_items], items[self.spec.max_items :]
        trimmed: JSON | None = None
        if left or offset:
            trimmed = {"shown": len(shown), "from": offset, "total": total}
        if left and trimmed is not None:
            kept = json.dumps(
                {"tool": tool, "key": key, "items": left, "offset": offset + len(shown)}, default=str
            )
            if len(kept) > MAX_KEPT:
                trimmed["note"] = f"the rest is not kept: more than {MAX_KEPT} bytes; narrow the request"
            elif self.store is None:
                trimmed["note"] = "the rest is not kept: this gateway has no result store"
            else:
                cursor = secrets.token_urlsafe(16)
                try:
                    await self.store.set(self._key(ctx, tool, cursor), kept, self.spec.keep_seconds)
                    trimmed[CURSOR] = cursor
                except Exception as exc:  # noqa: BLE001 - the store down: the answer still goes out
                    trimmed["note"] = f"the rest is not kept: the result store failed ({type(exc).__name__})"
        return _answer({**rest, key: shown}, trimmed, tool)

    async def _next(self, tool: str, cursor: str, ctx: CallContext) -> ToolResult:
        """The next items of a trimmed answer; a cursor is used once (its page gives a new one)."""
        key = self._key(ctx, tool, cursor)
        found: Any = None
        if self.store is not None:
            try:
                found = await self.store.get(key)
                if found:
                    await self.store.set(key, "", 1)  # (spent)
            except Exception as exc:  # noqa: BLE001 - reported as what it is
                raise ToolExecutionError(
                    f"the result store failed ({type(exc).__name__}); call the tool again"
                ) from None
        kept = json.loads(found) if isinstance(found, str | bytes) and found else None
        if not isinstance(kept, dict) or kept.get("tool") != tool:
            problem = (
                f"not a cursor this tool gave you, or used or expired (after {self.spec.keep_seconds} s); "
                "call the tool again without it"
            )
            raise InvalidArguments(tool, CURSOR, problem)
        return await self._page(tool, {}, str(kept["key"]), list(kept["items"]), int(kept["offset"]), ctx)

    def _key(self, ctx: CallContext, tool: str, cursor: str) -> str:
        """The store key of a cursor: its caller (tenant, gateway, subject, client), target and tool."""
        who = [ctx.tenant, ctx.gateway, ctx.principal.subject, ctx.principal.client_id, self.id, tool, cursor]
        return "trim:" + hashlib.sha256(json.dumps(who).encode()).hexdigest()


def _json_text(result: ToolResult) -> Any:
    texts = [c.get("text") for c in result.content if c.get("type") == "text"]
    if len(texts) != 1 or not isinstance(texts[0], str):
        return None
    try:
        return json.loads(texts[0])
    except ValueError:
        return None


def _items(body: Any, path: str | None) -> tuple[str, list[Any] | None]:
    """Where the answer's list is (the key it is answered under) and the list."""
    if isinstance(body, list):
        return "items", body
    if not isinstance(body, Mapping):
        return "items", None
    if path is not None:
        found = lookup(body, path)
        return (path, found) if isinstance(found, list) else ("items", None)
    lists = [(len(v), k) for k, v in body.items() if isinstance(v, list)]
    if not lists:
        return "items", None
    _, key = max(lists)
    return key, body[key]


def _answer(structured: JSON, trimmed: JSON | None, tool: str) -> ToolResult:
    if trimmed is not None:
        structured = {**structured, "trimmed": trimmed}
    content: list[JSON] = [{"type": "text", "text": json.dumps(structured, default=str)}]
    if trimmed is not None and CURSOR in trimmed:
        note = f"[showing {trimmed['shown']} of {trimmed['total']} items; call {tool} with {CURSOR}="
        content.append({"type": "text", "text": f'{note}"{trimmed[CURSOR]}" for the next]'})
    return ToolResult(content=tuple(content), structured=structured)
