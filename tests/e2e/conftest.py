from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import Served, serve_config
from tests.fixtures.a2a_agent import Seen, app
from tests.support.servers import serve_app

CONFIG = """
gateways:
  - name: default
    targets:
      - name: fx
        kind: function
        functions:
          - tests.fixtures.functions:add
          - tests.fixtures.functions:move
          - tests.fixtures.functions:fails
          - tests.fixtures.functions:with_progress
          - tests.fixtures.functions:ask_name
          - tests.fixtures.functions:ask_model
          - tests.fixtures.functions:slow
          - tests.fixtures.functions:was_cancelled
          - tests.fixtures.functions:was_started
  - name: second
    targets:
      - name: math
        kind: function
        functions: [tests.fixtures.functions:add]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_config(tmp_path_factory.mktemp("served"), CONFIG) as s:
        yield s


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[str, Seen]]:
    """A real A2A agent (tests.fixtures.a2a_agent) on loopback: its base URL, what it saw."""
    seen = Seen()
    with serve_app(app(seen)) as base:
        yield base, seen
