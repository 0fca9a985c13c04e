"""The AgentCore REST-JSON wire, driven by botocore's own service models (ADR 0030).

A `Service` holds one model (``bedrock-agentcore`` or ``bedrock-agentcore-control``) and its route
table. A server mounts it under a prefix, routes a request with `Service.route` (or `match`), turns
it into the parameters boto3 was called with by `parse_input` (which also checks them against the
model), hands them to the operation's handler, and answers with `serialize_output`, or with
`serialize_error` / `error_response` for a `WireError`. Operations that answer an event stream get
their events framed by `encode_event`. Nothing here knows any operation by name.
"""

from __future__ import annotations

import json
import re
import struct
from binascii import crc32
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import botocore.session
from botocore.model import NoShapeFoundError, OperationModel, ServiceModel

from ._shapes import (
    Shape,
    Violation,
    WireError,
    as_datetime,
    check,
    compile_pattern,
    decode_json,
    decode_text,
    encode_json,
    encode_members,
    encode_text,
    item_path,
    serialization_error,
    validation_error,
)

__all__ = [
    "EVENTSTREAM_CONTENT_TYPE",
    "Response",
    "Service",
    "Violation",
    "WireError",
    "encode_error_event",
    "encode_event",
    "encode_message",
    "error_response",
    "parse_input",
    "serialize_error",
    "serialize_output",
]

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
Response = tuple[int, list[tuple[str, str]], bytes | AsyncIterable[bytes]]  # (a streaming blob: relayed)
EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"


# --- routing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    operation: OperationModel
    method: str
    regex: re.Pattern[str]
    groups: tuple[tuple[str, str], ...]  # regex group -> label name
    query: tuple[tuple[str, str], ...]  # literal query pairs of the requestUri ("" value: key only)
    rank: tuple[tuple[int, ...], int]

    def labels(self, path: str, query: Sequence[tuple[str, str]]) -> dict[str, str] | None:
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        if not all(_present(query, key, value) for key, value in self.query):
            return None
        try:
            return {label: unquote(found.group(group), errors="strict") for group, label in self.groups}
        except UnicodeDecodeError:
            return None


def _present(query: Sequence[tuple[str, str]], key: str, value: str) -> bool:
    """Whether the request's query has the requestUri's literal pair (a bare key: any value)."""
    return any(k == key and (not value or v == value) for k, v in query)


def _compile(operation: OperationModel) -> _Route:
    uri = str(operation.http["requestUri"])
    path, _, literal_query = uri.partition("?")
    pieces = re.split(r"\{([^}]+)\}", path)
    regex: list[str] = []
    groups: list[tuple[str, str]] = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            regex.append(re.escape(piece))
            continue
        group = f"g{len(groups)}"
        greedy = piece.endswith("+")
        groups.append((group, piece.rstrip("+")))
        regex.append(f"(?P<{group}>.+)" if greedy else f"(?P<{group}>[^/]+)")
    segments = tuple(0 if "{" not in s else 2 if "+}" in s else 1 for s in path.split("/"))
    query = tuple(parse_qsl(literal_query, keep_blank_values=True))
    method = str(operation.http.get("method", "POST")).upper()
    return _Route(
        operation, method, re.compile("".join(regex)), tuple(groups), query, (segments, -len(query))
    )


class Service:
    """One botocore service model and the route table built from its operations' ``http`` traits."""

    def __init__(self, model: ServiceModel) -> None:
        if model.protocol != "rest-json":
            raise ValueError(f"{model.service_name} speaks {model.protocol}, not rest-json")
        self.model = model
        self.name: str = model.service_name
        routes = [_compile(model.operation_model(name)) for name in model.operation_names]
        seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
        for route in routes:
            key = (route.method, route.regex.pattern, route.query)
            if key in seen:
                raise ValueError(f"{route.operation.name} and {seen[key]} have the same method and path")
            seen[key] = route.operation.name
        self._routes = sorted(routes, key=lambda r: r.rank)
        for shape_name in model.shape_names:  # compiled now, not on the first request that needs one
            pattern = model.shape_for(shape_name).metadata.get("pattern")
            if pattern is not None:
                compile_pattern(pattern)

    @classmethod
    def load(cls, name: str) -> Service:
        """The service of that botocore name (``bedrock-agentcore``, ``bedrock-agentcore-control``)."""
        return cls(botocore.session.get_session().get_service_model(name))

    def operation(self, name: str) -> OperationModel:
        return self.model.operation_model(name)

    def _candidates(
        self, path: str, query: Sequence[tuple[str, str]]
    ) -> Iterable[tuple[_Route, dict[str, str]]]:
        path = path or "/"
        for route in self._routes:
            labels = route.labels(path, query)
            if labels is not None:
                yield route, labels

    def match(
        self, method: str, path: str, query: Sequence[tuple[str, str]] = ()
    ) -> tuple[OperationModel, dict[str, str]] | None:
        """The operation for `method` and the raw (still percent-encoded) `path` after the mount
        prefix, with its labels percent-decoded; None when no operation has that method and path."""
        method = method.upper()
        for route, labels in self._candidates(path, query):
            if route.method == method:
                return route.operation, labels
        return None

    def allowed_methods(self, path: str, query: Sequence[tuple[str, str]] = ()) -> frozenset[str]:
        """The methods some operation answers on `path` (empty: no such path)."""
        return frozenset(route.method for route, _ in self._candidates(path, query))

    def route(
        self, method: str, path: str, query: Sequence[tuple[str, str]] = ()
    ) -> tuple[OperationModel, dict[str, str]]:
        """As `match`, but a miss is a WireError: 404 for no such path, 405 (with ``Allow``) for a
        path that exists under other methods."""
        found = self.match(method, path, query)
        if found is not None:
            return found
        allowed = self.allowed_methods(path, query)
        if not allowed:
            raise WireError("UnknownOperationException", f"No operation is found at {path}", 404)
        raise WireError(
            "MethodNotAllowedException",
            f"{method.upper()} is not allowed on {path}; allowed: {', '.join(sorted(allowed))}",
            405,
            headers=[("Allow", ", ".join(sorted(allowed)))],
        )


# --- requests -------------------------------------------------------------------------------------


def _header_dict(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _load_json(body: bytes, path: str) -> Any:
    def refuse(word: str) -> None:
        raise ValueError(f"{word} is not JSON")

    try:
        return json.loads(body.decode("utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise serialization_error(path, f"the body is not valid JSON ({exc})") from None


def parse_input(
    operation: OperationModel,
    labels: Mapping[str, str],
    query_pairs: Sequence[tuple[str, str]],
    headers: Headers,
    body: bytes,
) -> dict[str, Any]:
    """The parameters the client passed to boto3, rebuilt from the request's path labels (decoded,
    as `match` gives them), query pairs (decoded), headers and body, then checked against every
    constraint of the model. Raises WireError (SerializationException or ValidationException)."""
    shape: Shape = operation.input_shape
    if shape is None:
        return {}
    header_values = _header_dict(headers)
    literal_query = str(operation.http["requestUri"]).partition("?")[2]
    literal = {k for k, _ in parse_qsl(literal_query, keep_blank_values=True)}
    claimed: set[str] = set(literal)
    payload = shape.serialization.get("payload")
    params: dict[str, Any] = {}
    query_map: tuple[str, Shape] | None = None
    body_members: list[str] = []
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = str(member.serialization.get("name", name))
        if location == "uri":
            if wire in labels:
                params[name] = decode_text(member, labels[wire], name, "uri")
        elif location == "querystring" and member.type_name == "map":
            query_map = (name, member)
        elif location == "querystring":
            claimed.add(wire)
            values = [v for k, v in query_pairs if k == wire]
            if values and member.type_name == "list":
                items = enumerate(values)
                params[name] = [decode_text(member.member, v, item_path(name, i), "query") for i, v in items]
            elif values:
                params[name] = decode_text(member, values[0], name, "query")
        elif location == "header":
            if wire.lower() in header_values:
                params[name] = decode_text(member, header_values[wire.lower()], name, "header")
        elif location == "headers":
            prefix = wire.lower()
            found = {k[len(prefix) :]: v for k, v in header_values.items() if k.startswith(prefix)}
            if found:
                params[name] = {k: decode_text(member.value, v, name, "header") for k, v in found.items()}
        elif location is None and name != payload:
            body_members.append(name)
    if query_map is not None:
        name, member = query_map
        rest: dict[str, list[str]] = {}
        for key, value in query_pairs:
            if key not in claimed:
                rest.setdefault(key, []).append(value)
        if rest:
            many = member.value.type_name == "list"
            params[name] = {
                k: [decode_text(member.value.member, v, name, "query") for v in vs]
                if many
                else decode_text(member.value, vs[0], name, "query")
                for k, vs in rest.items()
            }
    if payload is not None:
        _parse_payload(shape, payload, body, params)
    elif body_members and body.strip():
        params.update(decode_json(shape, _load_json(body, ""), "", members=body_members))
    violations: list[Violation] = []
    check(shape, params, "", violations)
    if violations:
        raise validation_error(violations)
    return params


def _parse_payload(shape: Shape, name: str, body: bytes, params: dict[str, Any]) -> None:
    member = shape.members[name]
    if member.type_name in ("blob", "string"):
        if body or name in shape.metadata.get("required", []):
            try:
                params[name] = body if member.type_name == "blob" else body.decode("utf-8")
            except UnicodeDecodeError:
                raise serialization_error(name, "the body is not UTF-8 text") from None
    elif body.strip():
        params[name] = decode_json(member, _load_json(body, name), name)


# --- responses ------------------------------------------------------------------------------------


def serialize_output(operation: OperationModel, output: Mapping[str, Any] | None) -> Response:
    """The HTTP answer for an operation's output (a dict as boto3 would return it): the model's
    ``responseCode`` (or the ``statusCode`` member), header members as headers, the body members
    as JSON or the payload member as the body. An event-stream payload given as an iterable of
    events is framed into the body; a server that streams leaves it out and sends `encode_event`
    frames itself after these headers. Unknown members are a TypeError (a handler's bug)."""
    status = int(operation.http.get("responseCode", 200))
    shape: Shape = operation.output_shape
    if shape is None:
        return status, [], b""
    output = dict(output or {})
    unknown = set(output) - set(shape.members)
    if unknown:
        raise TypeError(f"{sorted(unknown)} are not members of {shape.name}")
    headers: list[tuple[str, str]] = []
    content_type: str | None = None
    payload = shape.serialization.get("payload")
    body_names: list[str] = []
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = str(member.serialization.get("name", name))
        value = output.get(name)
        if location is None:
            if name != payload:
                body_names.append(name)
        elif value is None:
            continue
        elif location == "statusCode":
            status = int(value)
        elif location == "header" and not (member.type_name == "list" and not value):
            text = encode_text(member, value)
            if wire.lower() == "content-type":
                content_type = text
            else:
                headers.append((wire, text))
        elif location == "headers":
            headers.extend((wire + key, encode_text(member.value, item)) for key, item in value.items())
    body, default_type = b"", "application/json"
    if payload is not None:
        member, value = shape.members[payload], output.get(payload)
        if member.serialization.get("eventstream"):
            default_type = EVENTSTREAM_CONTENT_TYPE
            body = b"".join(encode_event(operation, event) for event in value or ())
            headers.append(("Content-Type", content_type or default_type))
            return status, headers, body
        if member.type_name in ("blob", "string"):
            default_type = "application/octet-stream" if member.type_name == "blob" else "text/plain"
            if member.serialization.get("streaming") and isinstance(value, AsyncIterable):
                headers.append(("Content-Type", content_type or default_type))
                return status, headers, value  # (sent as it comes)
            if value is not None:
                body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        elif value is not None:
            body = _dump(encode_json(member, value))
    elif body_names:
        body = _dump(encode_members(shape, output, body_names))
    if status in (204, 304):
        body = b""
    if body or content_type:
        headers.append(("Content-Type", content_type or default_type))
    return status, headers, body


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _error_shape(model: ServiceModel, code: str) -> Shape | None:
    try:
        shape = model.shape_for(code)
    except NoShapeFoundError:
        return None
    return shape if shape.metadata.get("exception") else None


def serialize_error(
    service: Service | ServiceModel, code: str, message: str, status: int | None = None, **fields: Any
) -> Response:
    """An AWS error answer that botocore raises as ``ClientError`` with ``Error.Code == code`` and
    ``Error.Message == message`` (and the modelled `fields`, e.g. ``reason``, ``fieldList``; fields
    the error shape does not have are left out). The status is the error shape's
    ``httpStatusCode`` when the model has the shape, else `status` (500 when none is given)."""
    model = service.model if isinstance(service, Service) else service
    shape = _error_shape(model, code)
    headers = [("x-amzn-ErrorType", code), ("Content-Type", "application/json")]
    if shape is None:
        return status or 500, headers, _dump({"message": message, **fields})
    error_status = int(shape.metadata.get("error", {}).get("httpStatusCode", status or 400))
    key = "Message" if "Message" in shape.members and "message" not in shape.members else "message"
    known = {k: v for k, v in fields.items() if k in shape.members}
    body = encode_members(shape, known, list(known))
    body[shape.members[key].serialization.get("name", key) if key in shape.members else key] = message
    return error_status, headers, _dump(body)


def error_response(service: Service | ServiceModel, error: WireError) -> Response:
    """The answer for a WireError, its extra headers included."""
    status, headers, body = serialize_error(service, error.code, error.message, error.status, **error.fields)
    return status, [*error.headers, *headers], body


# --- event streams --------------------------------------------------------------------------------

_STRING, _BYTES, _INT32, _INT64, _TIMESTAMP = 7, 6, 4, 5, 8


def _event_header(name: str, value: Any, kind: str = "string") -> bytes:
    raw = name.encode("utf-8")
    head = struct.pack(">B", len(raw)) + raw
    if kind == "boolean":
        return head + struct.pack(">B", 0 if value else 1)
    if kind == "timestamp":
        return head + struct.pack(">Bq", _TIMESTAMP, int(as_datetime(value).timestamp() * 1000))
    if kind in ("integer", "short", "byte"):
        return head + struct.pack(">Bi", _INT32, int(value))
    if kind == "long":
        return head + struct.pack(">Bq", _INT64, int(value))
    data = bytes(value) if kind == "blob" else str(value).encode("utf-8")
    return head + struct.pack(">BH", _BYTES if kind == "blob" else _STRING, len(data)) + data


def encode_message(headers: Sequence[bytes], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message: prelude (total and headers length), its
    CRC32, the encoded headers, the payload, and the CRC32 of all that came before."""
    header_bytes = b"".join(headers)
    prelude = struct.pack(">II", 12 + len(header_bytes) + len(payload) + 4, len(header_bytes))
    message = prelude + struct.pack(">I", crc32(prelude)) + header_bytes + payload
    return message + struct.pack(">I", crc32(message))


def _stream_shape(operation: OperationModel) -> Shape:
    shape = operation.get_event_stream_output()
    if shape is None:
        raise ValueError(f"{operation.name} does not answer an event stream")
    return shape


def encode_event(operation: OperationModel, event: Mapping[str, Any]) -> bytes:
    """One event-stream frame of `operation`'s output for `event`, as boto3 yields it: ``{member:
    value}`` with one member of the stream union. An exception member (e.g.
    ``validationException``) is framed as a modelled exception (``:message-type: exception``)."""
    if len(event) != 1:
        raise ValueError("an event has exactly one member")
    stream = _stream_shape(operation)
    name, value = next(iter(event.items()))
    if name not in stream.members:
        raise ValueError(f"{name!r} is not an event of {stream.name}")
    member = stream.members[name]
    if member.metadata.get("exception"):
        headers = [
            _event_header(":message-type", "exception"),
            _event_header(":exception-type", name),
            _event_header(":content-type", "application/json"),
        ]
        return encode_message(headers, _dump(encode_members(member, value, list(member.members))))
    headers = [_event_header(":message-type", "event"), _event_header(":event-type", name)]
    body_names: list[str] = []
    payload: bytes | None = None
    content_type = "application/json"
    for key, part in member.members.items():
        item = value.get(key)
        if part.serialization.get("eventheader"):
            if item is not None:
                headers.append(_event_header(key, item, part.type_name))
        elif part.serialization.get("eventpayload"):
            if part.type_name in ("blob", "string"):
                content_type = "application/octet-stream" if part.type_name == "blob" else "text/plain"
                payload = item.encode("utf-8") if isinstance(item, str) else bytes(item or b"")
            else:
                payload = _dump(encode_json(part, item or {}))
        else:
            body_names.append(key)
    if payload is None:
        payload = _dump(encode_members(member, value, body_names))
    headers.append(_event_header(":content-type", content_type))
    return encode_message(headers, payload)


def encode_error_event(code: str, message: str) -> bytes:
    """An unmodelled error in the stream (``:message-type: error``); botocore raises it as
    ``EventStreamError`` with that code and message."""
    headers = [
        _event_header(":message-type", "error"),
        _event_header(":error-code", code),
        _event_header(":error-message", message),
    ]
    return encode_message(headers, b"")
