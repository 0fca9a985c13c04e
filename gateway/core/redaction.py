"""Masking secrets and PII in text and JSON values: the ``redact`` interceptor, audit error
texts, approval previews and trace attributes all use this one set of patterns.

Every pattern runs in time linear in the text it scans (ADR 0023), and the text scanned is
capped (``limit``): Python's ``re`` backtracks, so each pattern is written so that no
character is read more than a fixed number of times, whatever the input:

- a match may start only where a run of the characters it is made of starts (a negative
  lookbehind), so a long run is tried once, not once per position inside it;
- runs are possessive (``++``, ``{n,}+``): a run that does not lead to a match is given up
  whole, never retried one character shorter;
- the e-mail domain is read label by label (each label possessive, a dot counted only when a
  label follows it), so there is nothing to give back to find the last dot;
- a private key block is found by searching for its header, then for its footer once: with
  no footer after a header there is none after a later header either, so the scan stops.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SCAN_LIMIT = 1024 * 1024
"""At most this many characters of one text are scanned (and kept); the rest is cut."""
_MARGIN = 8192
"""Characters scanned past a caller's limit, so a secret straddling the cut is masked whole."""

_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z ]{0,40}PRIVATE KEY-----")

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    (
        "github_token",
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}+|github_pat_[A-Za-z0-9_]{40,}+)\b"),
    ),
    ("slack_token", re.compile(r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}+\b")),
    ("api_key", re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}+\b")),
    (
        "jwt",
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\b"),
    ),
    ("bearer", re.compile(r"(?i)\bbearer\s++[A-Za-z0-9._~+/=-]{16,}+")),
    (
        "email",
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++@"
            r"(?:[A-Za-z0-9-]++\.(?=[A-Za-z0-9-]))++[A-Za-z]{2,}+\b"
        ),
    ),
    ("us_ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("card", re.compile(r"\b(?:\d[ -]?){13,19}\b")),
]


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


_DIGITS = tuple("0123456789")
# What each pattern cannot match without (a substring search is far cheaper than a regex
# scan, and most text holds none of them); searched in the lowercased text.
_NEEDLES: dict[str, tuple[str, ...]] = {
    "aws_access_key": ("akia", "asia"),
    "github_token": ("gh", "github_pat_"),
    "slack_token": ("xox",),
    "api_key": ("_live_", "_test_"),
    "jwt": ("eyj",),
    "bearer": ("bearer",),
    "email": ("@",),
    "us_ssn": ("-",),
    "card": _DIGITS,
}


def _private_keys(text: str) -> str:
    """``text`` with each PEM private key block masked, in one pass."""
    out: list[str] = []
    at = 0
    while (begin := _KEY_BEGIN.search(text, at)) is not None:
        end = _KEY_END.search(text, begin.end())
        if end is None:  # no footer after this header: none after a later one either
            break
        out += [text[at : begin.start()], "[REDACTED:private_key]"]
        at = end.end()
    return "".join(out) + text[at:] if out else text


# The precheck (ASCII texts): the needles above, other than digits and "-", searched in one
# pass, and the digits counted (an SSN has nine, a card number thirteen or more; "-" alone
# matches nothing). A text with neither holds nothing any pattern can match.
_WORDS = (
    "private key-----",
    *dict.fromkeys(n for ns in _NEEDLES.values() for n in ns if n not in _DIGITS and n != "-"),
)
_PRECHECK_CHARS = 4096


def _nothing_to_mask(text: str) -> bool:
    """Whether no pattern can match ``text``: exact, and cheap on the short texts most tool
    arguments and results are (``{"id": 7}``). Only for ASCII texts, where lowercasing and
    ``\\d`` mean what the needles assume."""
    if not text.isascii():
        return False
    lowered = text.lower()
    for word in _WORDS:
        if word in lowered:
            return False
    return sum(map(text.count, _DIGITS)) < 9


def redact_text(text: str, limit: int = SCAN_LIMIT) -> str:
    """``text`` with every secret and PII pattern masked as ``[REDACTED:kind]``.

    At most ``limit`` characters of the masked text are returned (a note says how many were
    cut); the patterns scan a little past the cut so a secret straddling it is masked whole.
    """
    if len(text) <= _PRECHECK_CHARS and len(text) <= limit and _nothing_to_mask(text):
        return text
    cut = len(text) - limit if len(text) > limit else 0
    if cut:
        text = text[: limit + _MARGIN]
    lowered = text.lower()
    if "private key-----" in lowered:
        text = _private_keys(text)
    for name, pattern in _PATTERNS:
        if not any(needle in lowered for needle in _NEEDLES[name]):
            continue
        if name == "card":
            if sum(map(text.count, _DIGITS)) < 13:  # a card number has 13 digits or more
                continue
            text = pattern.sub(lambda m: "[REDACTED:card]" if _luhn(m.group(0)) else m.group(0), text)
        else:
            text = pattern.sub(f"[REDACTED:{name}]", text)
    if cut:
        return text[:limit] + f"... [{cut} more characters not shown]"
    return text


def redact(value: Any, limit: int = SCAN_LIMIT) -> Any:
    """A JSON value with secrets and PII masked in every string (each capped at ``limit``)."""
    if isinstance(value, str):
        return redact_text(value, limit)
    if isinstance(value, list):
        return [redact(v, limit) for v in value]
    if isinstance(value, Mapping):
        return {k: redact(v, limit) for k, v in value.items()}
    return value
