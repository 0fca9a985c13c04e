"""`serve`'s start-up refusals: a Starlette lifespan that fails is worded once by the CLI when
the configuration refused it, and keeps its traceback otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette

from gateway.cli import _Refusals
from gateway.core.errors import ConfigError

pytestmark = pytest.mark.anyio


def failing_app(problem: BaseException) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group():  # as the gateway's lifespan does: errors come grouped
            raise problem
        yield

    return Starlette(lifespan=lifespan)


async def start(app: _Refusals, sent: list[dict[str, Any]]) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)


async def test_a_refused_configuration_is_kept_for_one_message_without_a_traceback() -> None:
    app = _Refusals(failing_app(ConfigError("gateways.g.targets.api: cannot read /x.yaml")))
    sent: list[dict[str, Any]] = []
    await start(app, sent)
    assert sent == [{"type": "lifespan.startup.failed", "message": ""}]
    assert isinstance(app.refused, ConfigError)
    assert "cannot read /x.yaml" in str(app.refused)


async def test_any_other_start_up_failure_keeps_its_traceback_and_is_raised() -> None:
    sent: list[dict[str, Any]] = []
    app = _Refusals(failing_app(RuntimeError("a bug")))
    with pytest.raises(BaseExceptionGroup):
        await start(app, sent)
    assert app.refused is None
    (failed,) = sent
    assert failed["type"] == "lifespan.startup.failed"
    assert "Traceback" in failed["message"] and "RuntimeError: a bug" in failed["message"]
