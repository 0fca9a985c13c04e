"""A warm pool (ADR 0035): sandboxes made ahead of need, so a session starts by taking one that is
ready (its kernel already running) instead of making it while the caller waits. Refilled in the
background up to ``size`` after each take; emptied, every sandbox stopped, when closed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")
log = logging.getLogger("switchboard.sandbox")


class Pool(Generic[T]):
    def __init__(
        self, make: Callable[[], Awaitable[T]], discard: Callable[[T], Awaitable[None]], size: int
    ) -> None:
        self.make, self.discard, self.size = make, discard, size
        self.ready: list[T] = []
        self.wanted = anyio.Event()
        self.closed = False
        self.failures = 0  # refills in a row that failed (it backs off, and says why once)

    async def take(self) -> tuple[T, bool]:
        """A sandbox, and whether it came warm from the pool."""
        self.wanted.set()
        if self.ready:
            return self.ready.pop(), True
        return await self.make(), False

    async def fill(self) -> None:
        """Keep ``size`` sandboxes ready, until the pool is closed (run it in a task group)."""
        while not self.closed:
            while len(self.ready) < self.size and not self.closed:
                try:
                    made = await self.make()
                except Exception as exc:  # noqa: BLE001 - a refill that fails must not end the interpreter
                    self.failures += 1
                    if self.failures == 1:
                        log.warning("the sandbox pool cannot refill: %s", exc)
                    await anyio.sleep(min(30.0, 0.5 * 2**self.failures))
                    continue
                self.failures = 0
                if self.closed:
                    await self.discard(made)
                    return
                self.ready.append(made)
            await self.wanted.wait()
            self.wanted = anyio.Event()

    async def close(self) -> None:
        self.closed = True
        self.wanted.set()
        with anyio.CancelScope(shield=True):
            while self.ready:
                await self.discard(self.ready.pop())
