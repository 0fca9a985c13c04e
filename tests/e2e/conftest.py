from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Served, serve

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
    root: Path = tmp_path_factory.mktemp("served")
    config = root / "switchboard.yaml"
    config.write_text(CONFIG)
    with serve(root / "data", config) as s:
        yield s
