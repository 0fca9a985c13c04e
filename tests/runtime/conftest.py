"""What the runtime tests share: one deploy of the test agent (its requirements installed from
the package index once) for every module that runs it, on whichever backend."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from runtime import Deployments, Version

AGENT = Path(__file__).resolve().parents[1] / "fixtures" / "runtime_agent"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def echo_deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployments, Version]:
    # A synchronous fixture with its own short event loop: a session-scoped async fixture would
    # keep anyio's test runner (and its loop) open for the rest of the run, and every later
    # `anyio.run` in a plain fixture or CLI test would then fail with "Already running asyncio".
    deployments = Deployments(tmp_path_factory.mktemp("runtimes"))
    return deployments, anyio.run(deployments.deploy, "echo", AGENT)
