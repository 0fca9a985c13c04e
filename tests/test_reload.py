"""One tenant's stored configuration that no longer loads never stops the others being served."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.hub import Hub
from gateway.settings import Settings
from gateway.store import Store
from gateway.system import Switchboard

pytestmark = pytest.mark.anyio

GOOD = ("ok", {}, [("fx", {"kind": "function", "functions": ["tests.fixtures.functions:add"]})])
BROKEN = ("bad", {}, [("fx", {"kind": "function", "functions": ["tests.fixtures.functions:gone"]})])


async def test_a_tenant_that_no_longer_loads_keeps_the_others_served(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        await store.ensure_tenant("acme")
        await store.ensure_tenant("zeta")
        # Stored as a change made elsewhere would be: the import path is gone by now.
        await store.apply("acme", [BROKEN])
        await store.apply("zeta", [GOOD])
        await store.apply("default", [GOOD])
        async with Hub() as hub:
            system = Switchboard(Settings(data_dir=tmp_path), store, hub)
            await system.reload()
            assert hub.get("default", "ok") is not None and hub.get("zeta", "ok") is not None
            assert hub.get("acme", "bad") is None
    finally:
        await store.close()
