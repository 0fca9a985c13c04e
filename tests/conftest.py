from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # (before numpy: see memory/__init__.py)

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
