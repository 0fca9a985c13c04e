"""Wire hygiene at the MCP endpoint: what a request must look like before the SDK reads it.

The SDK's handshake-era transport validates a POST body against a pydantic union of
every JSON-RPC message shape, so a malformed message is answered ``-32602`` with
pydantic's text, and a request whose ``id`` is not a valid id falls through to the
notification shape and is accepted (202) without an answer. A browser's ``Origin`` is
matched by prefix (``http://127.0.0.1:*`` also matches ``http://127.0.0.1:1@evil.example``).
These checks run first, for both protocol eras, and answer in our own words:

- a body that is not one JSON-RPC message object: ``-32600`` Invalid Request;
- an ``id`` that is not a string or an integer (object, array, boolean, null, a
  fraction, NaN): ``-32600``, never taken as a notification;
- parameters of the wrong shape, including a ``notifications/cancelled`` whose
  ``requestId`` is not an id: ``-32602`` naming the field;
- an ``Origin`` or ``Host`` header that is not a plain ``scheme://host[:port]`` /
  ``host[:port]``: 403 / 421, before any allow-list is consulted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.responses import Response

INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
PARSE_ERROR = -32700

# Notifications a client sends whose parameters name a request or a progress token.
_ID_PARAMS = {"notifications/cancelled": "requestId", "notifications/progress": "progressToken"}


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, as an HTTP status and (for a body) a JSON-RPC error."""

    status: int
    message: str
    code: int | None = None
    id: str | int | None = None

    def response(self) -> Response:
        if self.code is None:
            return Response(self.message, status_code=self.status, media_type="text/plain")
        body = {"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": self.message}}
        return Response(orjson.dumps(body), status_code=self.status, media_type="application/json")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


def check_headers(headers: list[tuple[bytes, bytes]]) -> Refusal | None:
    """Refuse an ``Origin`` or ``Host`` that is not a plain origin / authority.

    Only the shape is checked here; which origins and hosts are allowed is the SDK's
    allow-list, whose ``:*`` entries match by prefix and so must never see userinfo,
    a path, or a port that is not a number.
    """
    origin = _header(headers, b"origin")
    if origin and (reason := _origin_problem(origin)) is not None:
        return Refusal(403, f"Invalid Origin header: {reason}")
    host = _header(headers, b"host")
    if host and (reason := _authority_problem(host)) is not None:
        return Refusal(421, f"Invalid Host header: {reason}")
    return None


@lru_cache(maxsize=256)  # a client sends the same few values on every request
def _origin_problem(origin: str) -> str | None:
    if origin == "null":
        return None  # an opaque origin: the allow-list refuses it
    try:
        parts = urlsplit(origin)
    except ValueError:
        return "not a URL origin"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if parts.path or parts.query or parts.fragment or origin.endswith(("?", "#")):
        return "an origin has no path, query or fragment"
    return _authority_problem(parts.netloc)


@lru_cache(maxsize=256)
def _authority_problem(authority: str) -> str | None:
    if not authority:
        return "no host"
    if "@" in authority:
        return "user information (user@ or user:password@) is not allowed"
    if any(c in authority for c in "/\\?#") or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in authority):
        return "not a plain host[:port]"
    try:
        parts = urlsplit(f"//{authority}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "the port must be a number from 0 to 65535"
    if not parts.hostname:
        return "no host"
    if authority.endswith(":"):
        return "an empty port"
    return None


# -- the JSON-RPC envelope ---------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number written with a fraction or exponent" if math.isfinite(value) else "NaN"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class _Constants:
    """Notes whether a body used NaN/Infinity (which JSON does not have)."""

    seen = False

    def __call__(self, name: str) -> float:
        self.seen = True
        return math.nan


def _decode(body: bytes) -> tuple[Any, bool] | Refusal:
    """The parsed body, and whether it used NaN/Infinity; or the parse error."""
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError:
        pass
    # orjson is strict (and fast); the standard parser also takes what JSON allows and orjson
    # does not (integers past 64 bits, lone surrogates), and names the NaN that JSON does not.
    constants = _Constants()
    try:
        return json.loads(body, parse_constant=constants), constants.seen
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        return Refusal(400, f"Parse error: the body is not JSON ({reason})", PARSE_ERROR)


def _exact_id(body: bytes, message: dict[str, Any]) -> Any:
    """orjson reads an integer past 64 bits as a float; an id must be read exactly."""
    rid = message.get("id")
    if isinstance(rid, float) and math.isfinite(rid) and rid.is_integer():
        exact = json.loads(body).get("id")
        return exact
    return rid


@dataclass(frozen=True)
class Checked:
    """A body that is one well-formed JSON-RPC message."""

    method: str | None
    """The method of a request or notification; None for a response."""


def check_message(body: bytes) -> Refusal | Checked:
    """Refuse a POST body that is not one well-formed JSON-RPC message, in our words."""
    decoded = _decode(body)
    if isinstance(decoded, Refusal):
        return decoded
    message, used_constants = decoded
    if isinstance(message, list):
        return _invalid("batches are not supported: send one JSON-RPC message per HTTP request")
    if not isinstance(message, dict):
        return _invalid(f"the body must be one JSON-RPC message object, not {_kind(message)}")
    has_id = "id" in message
    rid = _exact_id(body, message) if has_id else None
    good_id = rid if _is_id(rid) else None
    if message.get("jsonrpc") != "2.0":
        return _invalid('"jsonrpc" must be "2.0"', good_id)
    if has_id and good_id is None:
        return _invalid(
            f'"id" must be a string or an integer, not {_kind(rid)} '
            '(a notification has no "id" member at all)'
        )
    if "method" in message:
        refusal = _check_call(message, good_id)
    elif "result" in message or "error" in message:
        refusal = _check_response(message, has_id)
    else:
        refusal = _invalid(
            'a JSON-RPC message needs a "method" (a request or notification), '
            'or a "result" or "error" (a response)',
            good_id,
        )
    if refusal is None and used_constants:
        refusal = Refusal(
            400, "Parse error: NaN, Infinity and -Infinity are not JSON numbers", PARSE_ERROR, good_id
        )
    return refusal or Checked(message.get("method"))


def _check_call(message: dict[str, Any], rid: str | int | None) -> Refusal | None:
    method = message["method"]
    if not isinstance(method, str) or not method:
        return _invalid(f'"method" must be a non-empty string, not {_kind(method)}', rid)
    if "params" not in message:
        return None
    params = message["params"]
    if isinstance(params, list):
        return _bad_params(f"{method}: params must be an object of named parameters, not an array", rid)
    if not isinstance(params, dict):
        return _invalid(f'"params" must be an object, not {_kind(params)}', rid)
    field = _ID_PARAMS.get(method)
    if field is not None and "id" not in message and field in params and not _is_id(params[field]):
        return _bad_params(
            f"{method}: params.{field} must be a string or an integer, not {_kind(params[field])}", None
        )
    return None


def _check_response(message: dict[str, Any], has_id: bool) -> Refusal | None:
    if not has_id:
        return _invalid('a response needs the "id" of the request it answers')
    rid = message["id"]
    if "result" in message and "error" in message:
        return _invalid('a response has a "result" or an "error", not both', rid)
    error = message.get("error")
    if "error" in message and not (
        isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and not isinstance(error.get("code"), bool)
        and isinstance(error.get("message"), str)
    ):
        return _invalid('"error" must be an object with an integer "code" and a string "message"', rid)
    return None


def _invalid(message: str, rid: str | int | None = None) -> Refusal:
    return Refusal(400, f"Invalid Request: {message}", INVALID_REQUEST, rid)


def _bad_params(message: str, rid: str | int | None) -> Refusal:
    return Refusal(400, f"Invalid params: {message}", INVALID_PARAMS, rid)
