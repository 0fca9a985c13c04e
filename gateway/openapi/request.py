"""Building the exact HTTP request an operation describes from a tool's arguments.

Parameter serialisation follows OpenAPI 3's style/explode table (simple,
label, matrix, form, spaceDelimited, pipeDelimited, deepObject). Every value
is percent-encoded where it lands, so an argument can never change the path
(``../``, ``%2e%2e%2f``), add a query parameter (``&``) or a header (CR/LF).
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from gateway.core.errors import ToolExecutionError
from gateway.openapi.compiler import Operation, Param
from gateway.openapi.media import valid_media_type

_RESERVED = ":/?#[]@!$&'()*+,;="
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_URL_SAFE = str.maketrans("-_", "+/")
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")


class BadArgument(ToolExecutionError):
    """An argument cannot be put on the wire as the document says (the model can fix it)."""


@dataclass
class Request:
    method: str
    path: str  # already encoded, with the query string
    headers: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | None = None
    files: list[tuple[str, tuple[str | None, bytes, str]]] | None = None
    data: dict[str, Any] | None = None


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _enc(value: Any, *, reserved: bool = False) -> str:
    return quote(_scalar(value), safe=_RESERVED if reserved else "")


def _path_value(value: Any) -> str:
    text = _enc(value)
    if text.strip(".") == "":  # "." and ".." would be read as dot-segments: encode them
        text = text.replace(".", "%2E")
    return text


def serialize_path(p: Param, value: Any) -> str:
    enc = _path_value
    if isinstance(value, list):
        items = [enc(v) for v in value]
        if p.style == "label":
            return "." + ("." if p.explode else ",").join(items)
        if p.style == "matrix":
            if p.explode:
                return "".join(f";{p.name}={i}" for i in items)
            return f";{p.name}=" + ",".join(items)
        return ",".join(items)
    if isinstance(value, dict):
        pairs = [(enc(k), enc(v)) for k, v in value.items()]
        if p.style == "label":
            if p.explode:
                return "." + ".".join(f"{k}={v}" for k, v in pairs)
            return "." + ",".join(f"{k},{v}" for k, v in pairs)
        if p.style == "matrix":
            if p.explode:
                return "".join(f";{k}={v}" for k, v in pairs)
            return f";{p.name}=" + ",".join(f"{k},{v}" for k, v in pairs)
        return ",".join(f"{k}={v}" for k, v in pairs) if p.explode else ",".join(f"{k},{v}" for k, v in pairs)
    if p.style == "label":
        return "." + enc(value)
    if p.style == "matrix":
        return f";{p.name}={enc(value)}"
    return enc(value)


def serialize_query(p: Param, value: Any) -> list[str]:
    name = quote(p.name, safe="")

    def enc(v: Any) -> str:
        return _enc(v, reserved=p.allow_reserved)

    if isinstance(value, dict):
        if p.style == "deepObject":
            return [f"{name}%5B{quote(str(k), safe='')}%5D={enc(v)}" for k, v in value.items()]
        if p.explode:
            return [f"{quote(str(k), safe='')}={enc(v)}" for k, v in value.items()]
        return [f"{name}=" + ",".join(f"{enc(k)},{enc(v)}" for k, v in value.items())]
    if isinstance(value, list):
        if p.style == "spaceDelimited":
            return [f"{name}=" + "%20".join(enc(v) for v in value)]
        if p.style == "pipeDelimited":
            return [f"{name}=" + "%7C".join(enc(v) for v in value)]
        if p.explode:
            return [f"{name}={enc(v)}" for v in value]
        return [f"{name}=" + ",".join(enc(v) for v in value)]
    return [f"{name}={enc(value)}"]


def _header_safe(text: str, what: str) -> str:
    if any(c in text for c in "\r\n\x00"):
        raise BadArgument(f"{what} contains a line break or NUL, which cannot go in an HTTP header")
    return text


def serialize_header(p: Param, value: Any) -> str:
    if isinstance(value, list):
        text = ",".join(_scalar(v) for v in value)
    elif isinstance(value, dict):
        sep = "=" if p.explode else ","
        text = ",".join(f"{k}{sep}{_scalar(v)}" for k, v in value.items())
    else:
        text = _scalar(value)
    return _header_safe(text, f"argument {p.arg!r}")


def serialize_cookie(p: Param, value: Any) -> str:
    if isinstance(value, list):
        text = ",".join(_scalar(v) for v in value)
    elif isinstance(value, dict):
        text = ",".join(f"{k},{_scalar(v)}" for k, v in value.items())
    else:
        text = _scalar(value)
    return f"{quote(p.name, safe='')}={quote(text, safe='')}"


def build(op: Operation, args: Mapping[str, Any], base_path: str = "") -> Request:
    """The request for ``op`` with ``args`` (already validated against the inputSchema)."""
    path_values: dict[str, str] = {}
    query: list[str] = []
    headers: list[tuple[str, str]] = []
    cookies: list[str] = []
    for p in op.params:
        if p.arg not in args or args[p.arg] is None:
            if p.required:
                raise BadArgument(f"missing required argument {p.arg!r}")
            continue
        value = args[p.arg]
        if p.location == "path":
            path_values[p.name] = serialize_path(p, value)
        elif p.location == "query":
            query.extend(serialize_query(p, value))
        elif p.location == "header":
            headers.append((_header_safe(p.name, "header name"), serialize_header(p, value)))
        else:
            cookies.append(serialize_cookie(p, value))

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in path_values:
            raise BadArgument(f"missing path parameter {name!r}")
        return path_values[name]

    path = base_path.rstrip("/") + _TEMPLATE.sub(fill, op.path)
    if query:
        path += "?" + "&".join(query)
    if cookies:
        headers.append(("Cookie", "; ".join(cookies)))
    request = Request(method=op.method, path=path, headers=headers)
    _body(op, args, request)
    return request


def _body(op: Operation, args: Mapping[str, Any], request: Request) -> None:
    if op.body_media is None:
        return
    if op.raw_body:
        _raw_body(op, args, request)
        return
    if op.body_arg is not None:
        if op.body_arg not in args:
            return
        body: Any = args[op.body_arg]
    else:
        body = {k: args[k] for k in op.body_fields if k in args}
        if not body and not op.body_required:
            return
    media = op.body_media.split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        if not isinstance(body, dict):
            raise BadArgument("a form body must be an object")
        fields: list[str] = []
        for key, value in body.items():
            enc = op.encoding.get(key) or {}
            style = enc.get("style") or "form"
            form = Param(key, "query", key, style, bool(enc.get("explode", style == "form")), False)
            fields.extend(serialize_query(form, value))
        request.content = "&".join(fields).encode()
        request.headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    elif media == "multipart/form-data":
        if not isinstance(body, dict):
            raise BadArgument("a multipart body must be an object")
        request.files = list(_parts(op, body))
    elif media.endswith("json") or media == "*/*":
        request.content = orjson.dumps(body)
        request.headers.append(("Content-Type", op.body_media if media != "*/*" else "application/json"))
    else:
        request.content = body.encode() if isinstance(body, str) else orjson.dumps(body)
        request.headers.append(("Content-Type", op.body_media))


def _raw_body(op: Operation, args: Mapping[str, Any], request: Request) -> None:
    """Raw bytes: the argument's base64 decoded, sent with the Content-Type named or the default."""
    assert op.body_arg is not None
    if op.body_arg not in args:
        return
    named = args.get(op.content_type_arg) if op.content_type_arg else None
    content_type = named if named is not None else op.default_content_type
    if not isinstance(content_type, str) or not valid_media_type(content_type):
        arg = op.content_type_arg or "content_type"
        raise BadArgument(
            f"argument {arg!r} must be the body's media type, such as image/png (got {content_type!r})"
        )
    request.content = decode_base64(args[op.body_arg], op.body_arg)
    request.headers.append(("Content-Type", _header_safe(content_type, f"argument {op.content_type_arg!r}")))


def decode_base64(value: Any, arg: str) -> bytes:
    """The bytes of a base64 argument (RFC 4648; URL-safe alphabet, line breaks and missing
    padding are taken too, as encoders produce them).

    Raises:
        BadArgument: it is not a string of base64 (says where it went wrong).
    """
    if not isinstance(value, str):
        raise BadArgument(f"argument {arg!r} must be a string: the bytes, base64-encoded")
    text = "".join(value.split()).translate(_URL_SAFE)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        bad = next((i for i, c in enumerate(text) if c not in _BASE64), None)
        where = f"character {text[bad]!r} at position {bad} is not base64" if bad is not None else str(exc)
        raise BadArgument(
            f"argument {arg!r} is not valid base64 ({where}); send the bytes base64-encoded "
            "(RFC 4648, e.g. `base64 -w0 file`)"
        ) from None


def _parts(op: Operation, body: Mapping[str, Any]) -> Sequence[tuple[str, tuple[str | None, bytes, str]]]:
    parts: list[tuple[str, tuple[str | None, bytes, str]]] = []
    for key, value in body.items():
        declared = (op.encoding.get(key) or {}).get("contentType")
        values = value if isinstance(value, list) and not declared else [value]
        for item in values:
            if isinstance(item, dict | list):
                parts.append((key, (None, orjson.dumps(item), declared or "application/json")))
            elif key in op.file_fields:
                data = decode_base64(item, key) if key in op.base64_fields else _scalar(item).encode()
                parts.append((key, (key, data, declared or "application/octet-stream")))
            else:
                parts.append((key, (None, _scalar(item).encode(), declared or "text/plain")))
    return parts
