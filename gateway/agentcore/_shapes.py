"""Values of botocore shapes on the REST-JSON wire: decoding what a client sent (a JSON body, or the
text of a header, query parameter or path label) into the Python values boto3 takes, checking them
against the model's constraints, and encoding Python values back for a response.

Decoding is strict about types (a string where a structure belongs, a float for an integer, bad
base64, a null list item): that is a ``SerializationException``, as Smithy's restJson1 protocol
tests require of a server. Constraints (required, enum, length, range, pattern) are checked after,
all at once, and reported as one ``ValidationException`` in AWS's wording.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import cache, lru_cache
from typing import Any

# botocore's stubs declare `members`, `member`, `key` and `value` on Shape's subclasses only; the code
# here dispatches on `type_name`, so a shape is typed loosely.
Shape = Any

_INT_BOUNDS = {"integer": 2**31, "long": 2**63, "short": 2**15, "byte": 2**7}
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


class WireError(Exception):
    """An error answered to the client as an AWS error: its code (the error shape's name),
    message, HTTP status, modelled fields (e.g. ValidationException's ``fieldList``) and any
    extra headers (``Allow`` on 405)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        fields: Mapping[str, Any] | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.fields: dict[str, Any] = dict(fields or {})
        self.headers = list(headers)


@dataclass(frozen=True)
class Violation:
    """One failed constraint: the member path (``a.b.1.member.c``) and AWS's wording of it."""

    path: str
    constraint: str
    null: bool = False

    @property
    def message(self) -> str:
        value = "Value null" if self.null else "Value"
        return f"{value} at '{self.path}' failed to satisfy constraint: {self.constraint}"


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def item_path(path: str, index: int) -> str:
    """AWS names the n-th item of a list ``list.n.member`` (counted from 1)."""
    return f"{path}.{index + 1}.member"


def serialization_error(path: str, problem: str) -> WireError:
    where = f"Value at '{path}'" if path else "The request body"
    return WireError("SerializationException", f"{where} could not be read: {problem}", 400)


def validation_error(violations: Sequence[Violation]) -> WireError:
    n = len(violations)
    head = f"{n} validation error{'s' if n != 1 else ''} detected: "
    fields = {
        "reason": "FieldValidationFailed",
        "fieldList": [{"name": v.path, "message": v.message} for v in violations],
    }
    return WireError(
        "ValidationException", head + "; ".join(v.message for v in violations), 400, fields=fields
    )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return next((name for cls, name in _JSON_KINDS.items() if isinstance(value, cls)), "a number")


# --- patterns -------------------------------------------------------------------------------------
# The models' patterns are written for Java/ECMAScript and botocore ships them with the outer ^ and $
# stripped; they are full-match patterns (AWS anchors them). Python's `re` reads them the same way
# once \p{..} is spelled out, \d \w \s are ASCII-only (re.ASCII, as in Java) and `(?<name>` is
# `(?P<name>`. A pattern that still does not compile is not enforced (see `unsupported_patterns`).

_UNICODE_PROPERTY = re.compile(r"\\([pP])\{(\w+)\}")
_unsupported: set[str] = set()


@cache
def _category_ranges(category: str) -> str:
    """A character-class body for a Unicode general category (``C``, ``Cc``, ``L``...)."""
    parts: list[str] = []
    start = -1
    for code in range(0x110000 + 1):
        inside = code < 0x110000 and unicodedata.category(chr(code)).startswith(category)
        if inside and start < 0:
            start = code
        elif not inside and start >= 0:
            last = code - 1
            parts.append(f"\\U{start:08x}" if start == last else f"\\U{start:08x}-\\U{last:08x}")
            start = -1
    return "".join(parts)


def translate_pattern(pattern: str) -> str:
    """The Python spelling of a model pattern (raises ValueError for what has none)."""
    out: list[str] = []
    pos = 0
    in_class = False
    while pos < len(pattern):
        ch = pattern[pos]
        if ch == "\\":
            prop = _UNICODE_PROPERTY.match(pattern, pos)
            if prop is None:
                out.append(pattern[pos : pos + 2])
                pos += 2
                continue
            negated, category = prop.group(1) == "P", prop.group(2)
            if not re.fullmatch(r"[CLMNPSZ][a-z]?", category):
                raise ValueError(f"unsupported Unicode property {prop.group(0)}")
            ranges = _category_ranges(category)
            if in_class and negated:
                raise ValueError(f"unsupported negated property inside a class: {prop.group(0)}")
            out.append(ranges if in_class else f"[{'^' if negated else ''}{ranges}]")
            pos = prop.end()
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            pos += 1
            if pattern.startswith("^", pos):
                out.append("^")
                pos += 1
            if pattern.startswith("]", pos):
                out.append("\\]")
                pos += 1
            continue
        if ch == "]" and in_class:
            in_class = False
        elif ch == "[" and in_class:
            raise ValueError("nested character classes are not supported")
        elif not in_class and pattern.startswith("(?<", pos) and pattern[pos + 3 : pos + 4] not in ("=", "!"):
            out.append("(?P<")
            pos += 3
            continue
        out.append(ch)
        pos += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """The compiled model pattern, or None when it cannot be read (then it is not enforced)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile(translate_pattern(pattern), re.ASCII)
    except (ValueError, re.error, FutureWarning, DeprecationWarning):
        _unsupported.add(pattern)
        return None


def unsupported_patterns() -> frozenset[str]:
    """The patterns met so far that are not enforced because they have no Python spelling."""
    return frozenset(_unsupported)


# --- timestamps -----------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_timestamp(value: object, fmt: str, path: str) -> datetime:
    """A timestamp in `fmt` (``unixTimestamp``, ``iso8601`` or ``rfc822``) as an aware UTC datetime."""
    fmt = fmt.lower()
    try:
        if fmt == "unixtimestamp":
            if isinstance(value, str):
                if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
                    raise ValueError(value)
                value = float(value)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(value)
            return datetime.fromtimestamp(value, UTC)
        if not isinstance(value, str):
            raise ValueError(value)
        if fmt == "iso8601":
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError(value)
            return _utc(parsed)
        return _utc(parsedate_to_datetime(value))
    except (ValueError, TypeError, OverflowError, OSError):
        raise serialization_error(path, f"expected a timestamp in {fmt} format") from None


def as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return _utc(datetime.fromisoformat(value))
    raise TypeError(f"not a timestamp: {value!r}")


def format_timestamp(value: object, fmt: str) -> int | float | str:
    moment = as_datetime(value)
    fmt = fmt.lower()
    if fmt == "unixtimestamp":
        seconds = moment.timestamp()
        return int(seconds) if seconds.is_integer() else round(seconds, 3)
    if fmt == "iso8601":
        millis = f".{moment.microsecond // 1000:03d}" if moment.microsecond else ""
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + millis + "Z"
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def timestamp_format(shape: Shape, default: str) -> str:
    return str(shape.serialization.get("timestampFormat", default))


# --- decoding -------------------------------------------------------------------------------------


def wire_names(shape: Shape, members: Sequence[str] | None = None) -> dict[str, str]:
    """Wire (JSON) key -> member name for a structure's body members."""
    names = shape.members if members is None else members
    return {shape.members[n].serialization.get("name", n): n for n in names}


def decode_json(shape: Shape, value: object, path: str, members: Sequence[str] | None = None) -> Any:
    """A JSON value (already loaded) as the Python value boto3 takes for `shape`."""
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return value
        if not isinstance(value, dict):
            raise serialization_error(path, f"expected an object, got {_kind(value)}")
        keys = wire_names(shape, members)
        if shape.is_tagged_union:
            present = [k for k, v in value.items() if v is not None and k != "__type"]
            if len(present) != 1 or present[0] not in keys:
                raise serialization_error(path, "a union must have exactly one known member set")
        out: dict[str, Any] = {}
        for key, raw in value.items():
            name = keys.get(key)
            if name is not None and raw is not None:  # unknown members are ignored, as AWS does
                out[name] = decode_json(shape.members[name], raw, join(path, name))
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise serialization_error(path, f"expected an array, got {_kind(value)}")
        if any(item is None for item in value):
            raise serialization_error(path, "null is not allowed as a list item")
        return [decode_json(shape.member, item, item_path(path, i)) for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise serialization_error(path, f"expected an object, got {_kind(value)}")
        if any(item is None for item in value.values()):
            raise serialization_error(path, "null is not allowed as a map value")
        return {k: decode_json(shape.value, v, join(path, k)) for k, v in value.items()}
    return _decode_scalar(shape, value, path, timestamp_format(shape, "unixTimestamp"))


def _decode_scalar(shape: Shape, value: object, path: str, ts_format: str) -> Any:
    kind = shape.type_name
    if kind == "string":
        if isinstance(value, str):
            return value
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
    elif kind in _INT_BOUNDS:
        if isinstance(value, int) and not isinstance(value, bool):
            if -_INT_BOUNDS[kind] <= value < _INT_BOUNDS[kind]:
                return value
            raise serialization_error(path, f"{value} is out of range for a {kind}")
    elif kind in ("float", "double"):
        if isinstance(value, str) and value in _FLOAT_WORDS:
            return _FLOAT_WORDS[value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif kind == "blob":
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise serialization_error(path, "expected base64-encoded data") from None
    elif kind == "timestamp":
        return parse_timestamp(value, ts_format, path)
    expected = "an integer" if kind in _INT_BOUNDS else f"a {kind}"
    raise serialization_error(path, f"expected {expected}, got {_kind(value)}")


def split_header_list(text: str) -> list[str]:
    """A comma-separated header value, double-quoted items unquoted (RFC 9110 lists)."""
    items = re.findall(r'\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)', text)
    out = [re.sub(r"\\(.)", r"\1", i[1:-1]) if i.startswith('"') else i.strip() for i in items]
    return out[:-1] if out and out[-1] == "" and not text.rstrip().endswith(",") else out


def decode_text(shape: Shape, text: str, path: str, location: str) -> Any:
    """A value from a path label, a query parameter or a header."""
    kind = shape.type_name
    if kind == "string":
        if location == "header" and shape.serialization.get("jsonvalue"):
            try:
                return json.loads(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                raise serialization_error(path, "expected base64-encoded JSON") from None
        return text
    if kind == "list" and location == "header":
        return [
            decode_text(shape.member, item, item_path(path, i), location)
            for i, item in enumerate(split_header_list(text))
        ]
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    if kind in _INT_BOUNDS and re.fullmatch(r"-?[0-9]+", text):
        return _decode_scalar(shape, int(text), path, "")
    if kind in ("float", "double"):
        if text in _FLOAT_WORDS:
            return _FLOAT_WORDS[text]
        if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text):
            return float(text)
    if kind == "blob":
        return _decode_scalar(shape, text, path, "")
    if kind == "timestamp":
        return parse_timestamp(
            text, timestamp_format(shape, "rfc822" if location == "header" else "iso8601"), path
        )
    raise serialization_error(path, f"'{text}' is not a valid {kind}")


# --- constraints ----------------------------------------------------------------------------------


def check(shape: Shape, value: Any, path: str, out: list[Violation]) -> None:
    """Add to `out` every constraint of `shape` (and its members) that `value` fails."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if shape.is_document_type or not isinstance(value, dict):
            return
        for name in meta.get("required", []):
            if value.get(name) is None and not shape.members[name].serialization.get("eventstream"):
                out.append(Violation(join(path, name), "Member must not be null", null=True))
        if shape.is_tagged_union and sum(v is not None for v in value.values()) != 1:
            out.append(Violation(path, "Member must have exactly one member set"))
        for name, item in value.items():
            if name in shape.members and item is not None:
                check(shape.members[name], item, join(path, name), out)
        return
    before = len(out)
    if kind in ("list", "map", "string", "blob") and isinstance(value, list | dict | str | bytes):
        _check_range(meta, len(value), path, out, "length")
    if kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            check(shape.member, item, item_path(path, i), out)
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            keys: list[Violation] = []
            check(shape.key, key, path, keys)
            out.extend(Violation(path, f"Map keys must satisfy constraint: [{v.constraint}]") for v in keys)
            check(shape.value, item, join(path, str(key)), out)
    elif kind == "string" and isinstance(value, str):
        enum = meta.get("enum")
        if enum and value not in enum:
            out.append(Violation(path, f"Member must satisfy enum value set: [{', '.join(enum)}]"))
        pattern = meta.get("pattern")
        compiled = compile_pattern(pattern) if pattern is not None else None
        # a value of the wrong length is not matched: some patterns backtrack a lot on long input
        if compiled is not None and len(out) == before and compiled.fullmatch(value) is None:
            out.append(Violation(path, f"Member must satisfy regular expression pattern: {pattern}"))
    elif kind in (*_INT_BOUNDS, "float", "double") and isinstance(value, int | float) and value == value:
        _check_range(meta, value, path, out, "value")  # (NaN is not a number to range-check)


def _check_range(meta: Mapping[str, Any], size: float, path: str, out: list[Violation], what: str) -> None:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and size < low:
        out.append(Violation(path, f"Member must have {what} greater than or equal to {low}"))
    if high is not None and size > high:
        out.append(Violation(path, f"Member must have {what} less than or equal to {high}"))


# --- encoding -------------------------------------------------------------------------------------


def encode_json(shape: Shape, value: Any) -> Any:
    """A Python value of `shape` as the JSON value the wire carries."""
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        if shape.is_document_type:
            return value
        return encode_members(shape, value, [n for n in shape.members])
    if kind == "list":
        return [encode_json(shape.member, item) for item in value]
    if kind == "map":
        return {str(k): encode_json(shape.value, v) for k, v in value.items()}
    if kind == "blob":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return base64.b64encode(raw).decode("ascii")
    if kind == "timestamp":
        return format_timestamp(value, timestamp_format(shape, "unixTimestamp"))
    if kind in ("float", "double"):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        return number if math.isfinite(number) else ("Infinity" if number > 0 else "-Infinity")
    return value


def encode_members(shape: Shape, value: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    unknown = set(value) - set(shape.members)
    if unknown:
        raise TypeError(f"{sorted(unknown)} are not members of {shape.name}")
    out: dict[str, Any] = {}
    for name in names:
        item = value.get(name)
        if item is not None:
            member = shape.members[name]
            out[member.serialization.get("name", name)] = encode_json(member, item)
    return out


def encode_text(shape: Shape, value: Any) -> str:
    """A Python value as the text of a header (lists comma-joined, JSON values base64-encoded)."""
    kind = shape.type_name
    if kind == "string" and shape.serialization.get("jsonvalue"):
        return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode("ascii")
    if kind == "list":
        items = [encode_text(shape.member, item) for item in value]
        return ",".join(
            f'"{i.replace(chr(34), chr(92) + chr(34))}"' if "," in i or '"' in i else i for i in items
        )
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return str(format_timestamp(value, timestamp_format(shape, "rfc822")))
    if kind in ("blob", "float", "double"):
        return str(encode_json(shape, value))
    return str(value)
