"""What the runtime tests share: one deploy of the test agent (its requirements installed from
the package index once) for every module that runs it, on whichever backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import Deployments, Version

AGENT = Path(__file__).resolve().parents[1] / "fixtures" / "runtime_agent"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
async def echo_deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployments, Version]:
    deployments = Deployments(tmp_path_factory.mktemp("runtimes"))
    return deployments, await deployments.deploy("echo", AGENT)
