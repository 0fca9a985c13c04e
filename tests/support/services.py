"""The services tests may use (PostgreSQL, Redis): skipped without them, unless required."""

from __future__ import annotations

import os

import pytest


def redis_url() -> str:
    """The test Redis URL; skips (or fails, when services are required) without one."""
    url = os.environ.get("SWITCHBOARD_TEST_REDIS_URL")
    if not url:
        if os.environ.get("SWITCHBOARD_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("SWITCHBOARD_TEST_REQUIRE_SERVICES=1 but SWITCHBOARD_TEST_REDIS_URL is not set")
        pytest.skip("set SWITCHBOARD_TEST_REDIS_URL to run the Redis tests")
    return url
