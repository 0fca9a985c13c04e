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

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from gateway.config import ResultsSpec
from gateway.core.errors import InvalidArguments
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from gateway.core.wrappers import WrapperProvider
from gateway.openapi.shaping import lookup, project, tree

CURSOR = "result_cursor"


class Store(Protocol):
    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: str, ttl: int) -> Any: ...


class Trimmed(WrapperProvider):
    """``inner``'s tools with their answers trimmed; ``store`` keeps the rest (set by the hub)."""

    def __init__(self, inner: ToolProvider, spec: ResultsSpec) -> None:
        super().__init__(inner)
        self.spec = spec
        self.keep = tree(spec.fields) if spec.fields else None
        self.store: Store | None = None

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        out = []
        for tool in await self.inner.list_tools(ctx):
            schema = dict(tool.input_schema)
            properties = dict(schema.get("properties") or {})
            if CURSOR not in properties:
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
        cursor = arguments.pop(CURSOR, None)
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
        shown = items[offset : offset + self.spec.max_items]
        trimmed: JSON | None = None
        if offset + len(shown) < len(items) or offset:
            trimmed = {"shown": len(shown), "from": offset, "total": len(items)}
        if offset + len(shown) < len(items) and trimmed is not None:
            if self.store is None:
                trimmed["note"] = "the rest is not kept: this gateway has no result store"
            else:
                cursor = secrets.token_urlsafe(12)
                kept = {"tool": tool, "key": key, "items": items, "offset": offset + len(shown)}
                text = json.dumps(kept, default=str)
                await self.store.set(self._key(ctx, cursor), text, self.spec.keep_seconds)
                trimmed[CURSOR] = cursor
        return _answer({**rest, key: shown}, trimmed, tool)

    async def _next(self, tool: str, cursor: str, ctx: CallContext) -> ToolResult:
        found = await self.store.get(self._key(ctx, cursor)) if self.store is not None else None
        kept = json.loads(found) if isinstance(found, str | bytes) else None
        if not isinstance(kept, dict) or kept.get("tool") != tool:
            problem = (
                f"not a cursor this tool gave you, or it has expired (after {self.spec.keep_seconds} s); "
                "call the tool again without it"
            )
            raise InvalidArguments(tool, CURSOR, problem)
        return await self._page(tool, {}, str(kept["key"]), list(kept["items"]), int(kept["offset"]), ctx)

    def _key(self, ctx: CallContext, cursor: str) -> str:
        return f"trim:{ctx.tenant}:{ctx.principal.subject}:{self.id}:{cursor}"


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
