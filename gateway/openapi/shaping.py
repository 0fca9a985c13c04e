"""Uniform paging and trimmed results for OpenAPI operations (`shape:` on a target).

Every platform pages its own way: a token in the body (Slack, Google), a URL in the body
(Microsoft Graph, Salesforce, Confluence), a `Link` header (GitHub), an offset and a
total (Jira). A shaped list tool takes the same two arguments everywhere, `cursor` and
`limit`, and answers ``{"items": [...], "next_cursor": "..."}`` (no `next_cursor` on the
last page). Results keep only the fields agents use: every byte costs tokens.

Cursors are opaque to the agent. A URL cursor is followed only when it names the same
operation (or one the shape lists in `follow`) under the target's base URL, so a made-up
cursor cannot reach any other endpoint.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from gateway.config import FailureSpec, PagingSpec, ShapeSpec
from gateway.core.errors import ConfigError
from gateway.core.types import ToolResult, ToolSpec
from gateway.openapi.compiler import Operation, Param
from gateway.openapi.request import BadArgument

CURSOR = "cursor"
LIMIT = "limit"
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_TEMPLATE_SPLIT = re.compile(r"(\{[^}/]+\})")
_PATH = re.compile(r"/[\x21\x22\x24-\x3e\x40-\x7e]*")  # visible ASCII but '#' and '?'
_QUERY = re.compile(r"[\x21\x22\x24-\x7e]*")  # visible ASCII but '#'
_DOTS = {".", ".."}

Tree = dict[str, "Tree"]


def lookup(value: Any, path: str) -> Any:
    """The member at a dotted path ('' is the value itself). A key that itself holds dots
    (Graph's ``@odata.nextLink``) is found as it is written."""
    if path == "":
        return value
    if not isinstance(value, Mapping):
        return None
    if path in value:
        return value[path]
    head, dot, rest = path.partition(".")
    return lookup(value.get(head), rest) if dot else None


def tree(fields: Sequence[str]) -> Tree | None:
    """The projection of dotted field paths; None keeps everything (``['*']``)."""
    if "*" in fields:
        return None
    out: Tree = {}
    for path in fields:
        node = out
        for part in path.split("."):
            node = node.setdefault(part, {})
    return out


def project(value: Any, keep: Tree | None) -> Any:
    """``value`` with only the kept paths; lists are projected item by item."""
    if not keep:
        return value
    if isinstance(value, list):
        return [project(v, keep) for v in value]
    if isinstance(value, Mapping):
        return {k: project(value[k], sub) for k, sub in keep.items() if k in value}
    return value


def link_next(header: str) -> str | None:
    """The rel="next" target of an RFC 8288 Link header."""
    for target, params in _LINK.findall(header):
        for param in params.split(";"):
            name, _, val = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in val.strip().strip('"').lower().split():
                return str(target)
    return None


@dataclass(frozen=True, slots=True)
class Shape:
    """A shaped operation, ready for calls."""

    spec: ShapeSpec
    op: Operation
    keep: Tree | None
    cursor_param: Param | None
    limit_param: Param | None
    follow: tuple[re.Pattern[str], ...]  # url style: the operation paths a next-page URL may end with
    base_path: str

    @property
    def paging(self) -> PagingSpec | None:
        return self.spec.paging


def _param(op: Operation, name: str | None, what: str, tool: str) -> Param | None:
    if name is None:
        return None
    for p in op.params:
        if p.name == name:
            return p
    known = ", ".join(p.name for p in op.params) or "none"
    raise ConfigError(f"shape.{tool}.paging.{what}: the operation has no parameter {name!r} (it has {known})")


def _template(path: str) -> re.Pattern[str]:
    """An operation's path template as a pattern of concrete paths."""
    return re.compile(
        "".join(
            "[^/?#]+" if piece.startswith("{") and piece.endswith("}") else re.escape(piece)
            for piece in _TEMPLATE_SPLIT.split(path)
        )
    )


def compile_shape(tool: str, spec: ShapeSpec, operations: Mapping[str, Operation], base_path: str) -> Shape:
    """Check a shape against the document's operation; errors name the field."""
    op = operations.get(tool)
    if op is None:
        raise ConfigError(
            f"shape names operation {tool!r}, which the document does not have "
            f"(its tools: {', '.join(sorted(operations)) or 'none'})"
        )
    paging = spec.paging
    cursor = limit = None
    follow: list[re.Pattern[str]] = []
    if paging is not None:
        cursor = _param(op, paging.cursor, "cursor", tool)
        limit = _param(op, paging.limit, "limit", tool)
        if paging.style == "url":
            for name in [tool, *paging.follow]:
                other = operations.get(name)
                if other is None:
                    raise ConfigError(f"shape.{tool}.paging.follow: no operation {name!r} in the document")
                follow.append(_template(other.path))
    keep = tree(spec.fields) if spec.fields else None
    return Shape(spec, op, keep, cursor, limit, tuple(follow), base_path.rstrip("/"))


def shaped_tool(tool: ToolSpec, shape: Shape) -> ToolSpec:
    """What the model sees: native paging arguments replaced by `cursor` and `limit`; no
    output schema (the result is trimmed or paged, so the document's schema no longer holds)."""
    if shape.paging is None and shape.keep is None and shape.spec.items is None:
        return tool
    schema = dict(tool.input_schema)
    props = dict(schema.get("properties") or {})
    required = [r for r in schema.get("required") or [] if isinstance(r, str)]
    paging = shape.paging
    if paging is not None:
        for p in (shape.cursor_param, shape.limit_param):
            if p is not None:
                props.pop(p.arg, None)
                required = [r for r in required if r != p.arg]
        props[CURSOR] = {
            "type": "string",
            "description": "Where to go on: the next_cursor of the previous page. Omit for the first page.",
        }
        if shape.limit_param is not None:
            native = (tool.input_schema.get("properties") or {}).get(shape.limit_param.arg) or {}
            limit: dict[str, Any] = {"type": "integer", "minimum": 1, "description": "Items per page."}
            top = paging.max_limit or (native.get("maximum") if isinstance(native, Mapping) else None)
            if isinstance(top, int):
                limit["maximum"] = top
            props[LIMIT] = limit
    schema["properties"] = props
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    return replace(tool, input_schema=schema, output_schema=None)


def page_request(shape: Shape, args: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The native arguments for a call, or the next-page URL path to GET (url style)."""
    out = dict(args)
    paging = shape.paging
    if paging is None:
        return out, None
    cursor = out.pop(CURSOR, None)
    limit = out.pop(LIMIT, None)
    if limit is not None and shape.limit_param is not None:
        out[shape.limit_param.arg] = min(int(limit), paging.max_limit) if paging.max_limit else int(limit)
    if cursor in (None, ""):
        return out, None
    if not isinstance(cursor, str):
        raise BadArgument("cursor must be the next_cursor string of a previous page")
    if paging.style == "url":
        path, _, query = _decode(cursor).partition("?")
        if not _plain_url(path, query) or not any(t.fullmatch(path) for t in shape.follow):
            raise BadArgument("cursor is not one this tool gave; pass a next_cursor unchanged, or omit it")
        # The URL carries the page size and filters of the first page.
        return out, shape.base_path + path + (f"?{query}" if query else "")
    assert shape.cursor_param is not None
    if paging.style in ("offset", "page") or shape.cursor_param.schema_type == "integer":
        try:
            out[shape.cursor_param.arg] = int(cursor)
        except ValueError:
            raise BadArgument("cursor is not one this tool gave; pass a next_cursor unchanged") from None
    else:
        out[shape.cursor_param.arg] = cursor
    return out, None


def _plain_url(path: str, query: str) -> bool:
    """A path and query as an API writes them: percent-encoded, no dot segments, no encoded
    slash in a segment (which an upstream might decode into another path)."""
    if not _PATH.fullmatch(path) or not _QUERY.fullmatch(query):
        return False
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "\\" in path:
        return False
    # No dot segment in any spelling a server might normalise: %2e%2e, .%2e, '..;params'.
    return not any(unquote(segment.split(";", 1)[0]) in _DOTS for segment in path.split("/"))


def _encode(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadArgument("cursor is not one this tool gave; pass a next_cursor unchanged") from None


def _next_cursor(
    shape: Shape,
    body: Any,
    headers: Mapping[str, str],
    sent: Mapping[str, Any],
    count: int,
    origin: str,
) -> str | None:
    paging = shape.paging
    assert paging is not None
    if paging.style in ("offset", "page"):
        total = lookup(body, paging.total or "")
        assert shape.cursor_param is not None
        offset = paging.style == "offset"
        at = sent.get(shape.cursor_param.arg) or (0 if offset else 1)
        if not isinstance(total, int) or not isinstance(at, int) or count == 0:
            return None
        following = at + count if offset else at + 1
        return str(following) if (following < total if offset else following <= total) else None
    source = paging.next or ""
    if source.lower().startswith("header:"):
        raw = headers.get(source[7:].strip().lower())
        found = link_next(raw) if raw is not None and source[7:].strip().lower() == "link" else raw
    else:
        found = lookup(body, source)
    if found in (None, "") or not isinstance(found, str | int):
        return None
    found = str(found)
    if paging.style == "token":
        if paging.next_param:
            values = parse_qs(urlsplit(found).query).get(paging.next_param)
            return values[0] if values else None
        return found
    parts = urlsplit(found)
    if parts.scheme and f"{parts.scheme}://{parts.netloc}".lower() != origin.lower():
        return None  # a next page on another host is not followed
    # The cursor holds the URL from the operation's path on (what comes before it is the
    # API's base path, which the target's base URL gives when the cursor is followed).
    for template in shape.follow:
        for at in (i for i, ch in enumerate(parts.path) if ch == "/"):
            if template.fullmatch(parts.path[at:]) and _plain_url(parts.path[at:], parts.query):
                return _encode(parts.path[at:] + (f"?{parts.query}" if parts.query else ""))
    return None


def failed(spec: FailureSpec | None, body: Any) -> ToolResult | None:
    """The error result for a failure reported inside a 2xx answer (Slack's ``ok: false``)."""
    if spec is None or not isinstance(body, Mapping):
        return None
    flag = lookup(body, spec.field)
    if flag is None or flag != spec.equals:
        return None
    message = lookup(body, spec.message) if spec.message else None
    detail = message if isinstance(message, str) else orjson.dumps(body).decode()[:500]
    return ToolResult.error(
        f"the API reported a failure ({spec.field}={orjson.dumps(flag).decode()}): {detail}"
    )


def shape_result(
    shape: Shape | None,
    failure: FailureSpec | None,
    body: Any,
    headers: Mapping[str, str],
    sent: Mapping[str, Any],
    origin: str,
) -> ToolResult | None:
    """The shaped result of a 2xx JSON answer; None when nothing is shaped."""
    bad = failed(failure, body)
    if bad is not None:
        return bad
    if shape is None or (shape.paging is None and shape.keep is None and shape.spec.items is None):
        return None
    items_path = shape.spec.items
    if items_path is None:
        structured: Any = project(body, shape.keep)
    else:
        items = lookup(body, items_path)
        items = items if isinstance(items, list) else []
        structured = {"items": project(items, shape.keep)}
        if shape.paging is not None:
            next_cursor = _next_cursor(shape, body, headers, sent, len(items), origin)
            if next_cursor is not None:
                structured["next_cursor"] = next_cursor
    if not isinstance(structured, dict):
        structured = {"result": structured}
    text = orjson.dumps(structured).decode()
    return ToolResult(content=({"type": "text", "text": text},), structured=structured)
