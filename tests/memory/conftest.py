"""What memory's tests share: a service on a fresh SQLite database (or PostgreSQL), with the real
local embedder (loaded once per run), and a scripted model on loopback when a test needs one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from memory import Job, LocalEmbedder, MemoryService, ModelSettings

_EMBEDDER = LocalEmbedder()  # the model's weights load once, on first use


def embedder() -> LocalEmbedder:
    return _EMBEDDER


@asynccontextmanager
async def memory_service(
    url: str, *, model_url: str | None = None, model_seconds: float = 10.0, run: bool = True, **options: Any
) -> AsyncIterator[MemoryService]:
    """A memory service on ``url``, its tables made, its extraction running in the background."""
    engine = create_async_engine(url)
    model = (
        ModelSettings(kind="openai", model="scripted", url=model_url, timeout=model_seconds)
        if model_url
        else None
    )
    # Its int8 query encoder built first (once a worker): building it takes the interpreter for
    # about 2 s, past the 50 ms batching window these tests put two events in (ADR 0048).
    await anyio.to_thread.run_sync(_EMBEDDER.prepare_queries)
    service = MemoryService(engine, _EMBEDDER, model=model, window=0.05, backoff=0.05, **options)
    try:
        await service.open()
        async with anyio.create_task_group() as tg:
            if run:
                tg.start_soon(service.run)
            yield service
            tg.cancel_scope.cancel()
    finally:
        await engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Callable[[str], str]:
    return lambda name="memory": f"sqlite+aiosqlite:///{tmp_path / name}.db"


async def settled(service: MemoryService, memory_id: str, tenant: str = "default") -> list[Job]:
    """The memory's jobs once none is pending or running (within 30 s)."""
    with anyio.fail_after(30):
        return await service.wait_idle(tenant, memory_id)


def conversation(*turns: str) -> list[dict[str, Any]]:
    """Payload items alternating USER and ASSISTANT, starting with USER."""
    roles = ("USER", "ASSISTANT")
    return [{"conversational": {"content": {"text": t}, "role": roles[i % 2]}} for i, t in enumerate(turns)]
