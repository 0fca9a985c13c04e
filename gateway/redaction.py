"""Masking secrets and PII in text and JSON values: the ``redact`` interceptor, audit error
texts, approval previews and trace attributes all use this one set of patterns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    ),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("api_key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}")),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
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
    "private_key": ("private key-----",),
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


def redact_text(text: str) -> str:
    """``text`` with every secret and PII pattern masked as ``[REDACTED:kind]``."""
    lowered = text.lower()
    for name, pattern in _PATTERNS:
        if not any(needle in lowered for needle in _NEEDLES[name]):
            continue
        if name == "card":
            if sum(map(text.count, _DIGITS)) < 13:  # a card number has 13 digits or more
                continue
            text = pattern.sub(lambda m: "[REDACTED:card]" if _luhn(m.group(0)) else m.group(0), text)
        else:
            text = pattern.sub(f"[REDACTED:{name}]", text)
    return text


def redact(value: Any) -> Any:
    """A JSON value with secrets and PII masked in every string."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items()}
    return value
