"""What a span records of a tool's arguments and results: JSON, secrets masked, capped.

The value is serialised when it is recorded (``serialized``, ``clip``: the value may change
afterwards) and masked later (``masked``, through ``Record.defer``): the
trace store's writer masks a batch of them at once, off the call's path; spans for an
exporter are masked as they are handed over.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

import orjson

from gateway.core.redaction import redact_text

# Key names (lowercased, without - and _) whose values are never recorded.
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "cookie",
    "privatekey",
    "signature",
)
_SECRET_NAMES = frozenset({"auth", "sig", "session", "sessionid"})
REDACTED = "[REDACTED]"


def serialized(value: Any) -> bytes:
    """``value`` as JSON (anything JSON cannot hold as its text)."""
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:  # integers past 64 bits: the standard encoder takes any size
        text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")  # (a lone surrogate: its escape)


def capture(value: Any, limit: int) -> tuple[str, int]:
    """A value as recorded on a span (see ``masked``)."""
    return masked(*clip(serialized(value), limit), limit)


def clip(raw: bytes, limit: int) -> tuple[str, int]:
    """What ``masked`` needs of a value's JSON: its first twice ``limit`` characters and its
    length (so a large result is not held whole until it is masked)."""
    text = raw.decode()
    return text[: 2 * limit], len(text)


def masked(window: str, total: int, limit: int) -> tuple[str, int]:
    """A value's JSON (``clip``: its start and its length) as recorded on a span: secrets
    masked, at most ``limit`` characters; and an estimate of its size in model tokens
    (about four characters each).

    The masking (members under secret-looking keys, then the redaction patterns) runs on
    the first twice ``limit`` characters of the JSON only: a large result costs a
    serialisation (C), not a walk in Python; a secret straddling the cut is masked whole
    before the cut.
    """
    tokens = math.ceil(total / 4)
    if _may_hold_secret_key(window):
        window = _SECRET_MEMBER.sub(_mask_member, window)
    text = redact_text(window)
    if total <= limit:
        return text, tokens
    return text[:limit] + f"... [{total} characters in all]", tokens


# The JSON's strings, left to right, each with its value when it is a member's key and that value
# is a string, number, true, false or null (an object or array under a secret-looking key is
# entered instead: its own members are checked). Matching strings whole from the left keeps the
# engine from starting again at every quote inside a string (a result holding JSON as text is all
# escaped quotes: 26 KB cost 3.8 ms that way, 0.04 ms this); a string the window cuts (even after
# an escape's backslash) runs to its end, and is masked as a whole when it is a secret's value.
_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)'
# (re.S: an escape's backslash takes any character, a raw newline in some other caller's text too.)
_SECRET_MEMBER = re.compile(
    r'"([^"\\]*+(?:\\.[^"\\]*+)*+)(?:"|\\?\Z)(?::(' + _STRING + r"|-?[0-9][^,}\]]*|true|false|null))?",
    re.S,
)
_CACHED_KEY = 100  # characters of the keys whose verdicts are kept (a longer key is checked anew)


def _mask_member(match: re.Match[str]) -> str:
    key = match.group(1)
    if match.group(2) is not None and (
        _secret_key(key) if len(key) <= _CACHED_KEY else _secret_key.__wrapped__(key)
    ):
        return f'"{key}":"{REDACTED}"'
    return match.group(0)


def _may_hold_secret_key(text: str) -> bool:
    """Whether some member of the JSON ``text`` could have a secret-looking key: a key is a
    piece of the text, so its plain spelling is a piece of the text's plain spelling, and
    none of the secret parts or names in that means no member is masked (the member scan,
    a regex over every member, is then skipped: most arguments and results hold none)."""
    plain = text.lower().replace("-", "").replace("_", "")
    return any(part in plain for part in _SECRET_NEEDLES)


_SECRET_NEEDLES = (*_SECRET_PARTS, *_SECRET_NAMES)


@lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    plain = key.lower().replace("-", "").replace("_", "")
    return plain in _SECRET_NAMES or any(s in plain for s in _SECRET_PARTS)
