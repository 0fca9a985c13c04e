from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.oidc_server import Issuer, running


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    """A real OIDC issuer on loopback, for one test."""
    with running() as served:
        yield served
