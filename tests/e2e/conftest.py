from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import Served, serve_config

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
