"""npm tools the tests use (installed by `make tools` into .tools/)."""

from __future__ import annotations

import os

import pytest

REQUIRED = os.environ.get("SWITCHBOARD_TEST_REQUIRE_SERVICES") == "1"


def need(present: bool, what: str) -> None:
    """Skip without ``what`` on a developer's machine; fail in CI, where `make test` installs it."""
    if present:
        return
    if REQUIRED:
        pytest.fail(f"{what} is missing but SWITCHBOARD_TEST_REQUIRE_SERVICES=1; run `make tools`")
    pytest.skip(f"{what} is not installed; run `make tools`")
