"""Redaction on its own: what each pattern masks, inputs crafted to make a backtracking pattern
quadratic handled at a megabyte, and the cap on the text scanned."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.core.redaction import SCAN_LIMIT, redact, redact_text

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLXNpZw"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("write to ann@example.com.", "write to [REDACTED:email]."),
        ("(ann.lee+x@mail.example.co.uk)", "([REDACTED:email])"),
        ('{"to": "held@example.com"}', '{"to": "[REDACTED:email]"}'),
        ("ann@localhost", "ann@localhost"),  # no dot in the domain: not an address
        ("a@b.c1", "a@b.c1"),  # the last label is not a top-level domain
        (f"token={JWT}", "token=[REDACTED:jwt]"),
        (f"k: {PEM}", "k: [REDACTED:private_key]"),
        (f"{PEM} and {PEM}", "[REDACTED:private_key] and [REDACTED:private_key]"),
        ("-----BEGIN PRIVATE KEY----- no footer", "-----BEGIN PRIVATE KEY----- no footer"),
        ("SSN 123-45-6789", "SSN [REDACTED:us_ssn]"),
        ("id AKIAABCDEFGHIJKLMNOP.", "id [REDACTED:aws_access_key]."),
        (f"t ghp_{'A' * 36}", "t [REDACTED:github_token]"),
        (f"t github_pat_{'A_' * 20}", "t [REDACTED:github_token]"),
        ("t xoxb-1234567890-abcdef", "t [REDACTED:slack_token]"),
        ("k=sk_live_0123456789abcdef", "k=[REDACTED:api_key]"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "Authorization: [REDACTED:bearer]"),
        ("card 4111 1111 1111 1111", "card [REDACTED:card]"),
        ("not a card 1234 5678 9012 3456", "not a card 1234 5678 9012 3456"),  # fails Luhn
    ],
)
def test_each_pattern_masks_what_it_names(text: str, masked: str) -> None:
    assert redact_text(text) == masked


# Inputs that made the old patterns quadratic (a run tried again from every position inside
# it, or given back one character at a time), and the like for every other pattern.
CRAFTED: dict[str, Callable[[int], str]] = {
    "private_key_headers_without_footer": lambda n: "-----BEGIN RSA PRIVATE KEY-----" * (n // 31),
    "aws_access_key": lambda n: "AKIA" * (n // 4),
    "github_pat_run": lambda n: "github_pat_" * (n // 11) + "é",
    "github_ghp_run": lambda n: "ghp_" + "A" * n + "é",
    "slack_run": lambda n: "xoxb-" * (n // 5) + "é",
    "api_key": lambda n: "sk_live_" * (n // 8),
    "jwt_without_dots": lambda n: "eyJ-" * (n // 4),
    "jwt_short_parts": lambda n: "eyJaaaaaaaa." * (n // 12),
    "bearer_spaces": lambda n: "bearer" + " " * n,
    "email_domain_of_dots": lambda n: "@" + "a." * (n // 2),
    "email_local_of_dots": lambda n: "a." * (n // 2) + "@",
    "email_many_ats": lambda n: "a@" * (n // 2),
    "email_bad_tld": lambda n: "a@" + "b.cc" * (n // 4) + "1",
    "us_ssn": lambda n: "123-45-" * (n // 7),
    "card_separators": lambda n: "1 " * (n // 2),
    "card_digits": lambda n: "1" * n + "a",
}


@pytest.mark.parametrize("make", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_crafted_megabyte_is_handled_by_every_pattern(make: Callable[[int], str]) -> None:
    # The old e-mail pattern took 2 s at 32 KB and four times as long for each doubling: a
    # megabyte would take over half an hour (far past the suite's 120 s timeout).
    text = make(1024 * 1024)
    masked = redact_text(text)
    assert len(text) <= SCAN_LIMIT + 64 and masked.count("[REDACTED:") <= len(text)
    assert len(masked) <= SCAN_LIMIT + 64


def test_the_text_scanned_is_capped() -> None:
    big = "x" * (3 * SCAN_LIMIT)
    masked = redact_text(big)
    assert masked == "x" * SCAN_LIMIT + f"... [{2 * SCAN_LIMIT} more characters not shown]"
    short = redact_text("y" * 5000, limit=1000)
    assert short == "y" * 1000 + "... [4000 more characters not shown]"


def test_a_secret_straddling_the_cut_is_masked_whole() -> None:
    token = f"ghp_{'A' * 36}"
    masked = redact_text("y" * 990 + f" {token} tail", limit=1000)
    assert "AAAA" not in masked and masked.startswith("y" * 990 + " [REDACTED")


def test_json_values_are_masked_in_every_string_and_capped() -> None:
    value = {"to": ["ann@example.com"], "n": 3, "deep": {"k": "x" * 50}}
    assert redact(value, limit=20) == {
        "to": ["[REDACTED:email]"],
        "n": 3,
        "deep": {"k": "x" * 20 + "... [30 more characters not shown]"},
    }
