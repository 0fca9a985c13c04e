"""Turning plain return values and upstream payloads into ToolResults."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel

from gateway.config import ToolDef
from gateway.core.types import ToolResult, ToolSpec


def _text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def to_result(value: Any) -> ToolResult:
    """A Python value as a tool result.

    ``str`` becomes text; a dict or pydantic model becomes structuredContent plus
    its JSON as text (so clients that ignore structuredContent see the same);
    other JSON values are wrapped as ``{"result": value}``; a ToolResult passes
    through unchanged.
    """
    if isinstance(value, ToolResult):
        return value
    if value is None:
        return ToolResult(content=())
    if isinstance(value, str):
        return ToolResult.text(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return ToolResult(content=({"type": "text", "text": _text(value)},), structured=value)
    try:
        text = _text(value)
    except TypeError:
        return ToolResult.text(str(value))
    return ToolResult(content=({"type": "text", "text": text},), structured={"result": value})


def from_json_payload(payload: bytes, *, is_error: bool = False) -> ToolResult:
    """An upstream's body: JSON becomes structured content; anything else is text."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return ToolResult.text(payload.decode("utf-8", "replace"), is_error=is_error)
    result = to_result(value)
    if is_error:
        return ToolResult(content=result.content, structured=result.structured, is_error=True)
    return result


def tool_specs(tools: Sequence[ToolDef]) -> dict[str, ToolSpec]:
    """ToolSpecs from the ``tools:`` entries of a target's config, by name."""
    return {
        t.name: ToolSpec(
            name=t.name,
            description=t.description,
            title=t.title,
            input_schema=t.input_schema,
            output_schema=t.output_schema,
            annotations=t.annotations,
        )
        for t in tools
    }
