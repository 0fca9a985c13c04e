"""The tool search's vectors on disk (tool-vectors.db): kept across restarts, stamped once a day
with the tools that use them, and pruned when no tool has used them for KEEP_DAYS days."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import numpy as np
import pytest

from gateway.hub import Hub
from gateway.search._vectors import KEEP_DAYS, Vectors, digest, today
from memory import LocalEmbedder
from tests.search.test_search import live, search, spec

pytestmark = pytest.mark.anyio

KEPT, CHANGED = "Add. Adds two integers.", "Add. Adds two integers, an old description."


def _rows(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {key.split(":", 1)[1]: used for key, used in conn.execute("SELECT key, used FROM vectors")}


async def test_vectors_no_tool_uses_are_pruned_after_keep_days(tmp_path: Path) -> None:
    path = tmp_path / "tool-vectors.db"
    vectors = Vectors(LocalEmbedder(), path)
    day = today()
    await vectors.embed([KEPT, CHANGED])
    assert _rows(path) == {digest(KEPT): day, digest(CHANGED): day}
    # A month later, only the first is still a tool's text.
    vectors.today = lambda: day + KEEP_DAYS
    assert await vectors.keep([digest(KEPT)]) == 0  # (the other was used KEEP_DAYS ago: kept)
    vectors.today = lambda: day + KEEP_DAYS + 1
    assert await vectors.keep([digest(KEPT)]) == 1
    assert _rows(path) == {digest(KEPT): day + KEEP_DAYS + 1}
    again = Vectors(LocalEmbedder(), path)  # (a restart reads back what is left)
    await again.load()
    assert again.known(digest(KEPT)) is not None and again.known(digest(CHANGED)) is None


async def test_a_file_from_before_stamps_counts_its_vectors_as_used_today(tmp_path: Path) -> None:
    path = tmp_path / "tool-vectors.db"
    embedder = LocalEmbedder()
    with sqlite3.connect(path) as conn:  # (the table as earlier releases made it)
        conn.execute("CREATE TABLE vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        vector = np.ones(embedder.dim, dtype=np.float32)
        conn.execute(
            "INSERT INTO vectors VALUES (?, ?)", (f"{embedder.name}:{digest(KEPT)}", vector.tobytes())
        )
    vectors = Vectors(embedder, path)
    await vectors.load()
    assert vectors.known(digest(KEPT)) is not None
    assert await vectors.keep([]) == 0
    assert _rows(path) == {digest(KEPT): today()}


async def test_the_hub_keeps_the_vectors_its_search_tools_use(tmp_path: Path) -> None:
    vectors = Vectors(LocalEmbedder(), tmp_path / "tool-vectors.db")
    await vectors.embed([CHANGED])  # (a tool text no gateway has any more)
    async with Hub(vectors=vectors) as hub:
        gateway = await live(hub, spec({"enabled": True}))
        assert (await search(gateway, "add two integers"))[0] == "fx___add"
        used = hub.live_vector_keys()
        assert len(used) == len(gateway.snapshot.tools) - 1  # (every tool but the search tool itself)
        assert digest(CHANGED) not in used
        vectors.today = lambda: today() + KEEP_DAYS + 1
        assert await vectors.keep(hub.live_vector_keys()) == 1
        assert set(_rows(tmp_path / "tool-vectors.db")) == used


async def test_a_large_catalogs_vectors_take_turns_with_a_few_tools(tmp_path: Path) -> None:
    """One tenant's catalog of many tools holds the model a batch at a time: another's few
    tools, computed while a search waits, come out after at most the batch in flight, not after
    the whole catalog."""
    vectors = Vectors(LocalEmbedder(), tmp_path / "tool-vectors.db")
    await vectors.embed(["warm the model"])
    large = [f"List the open issues of repository number {i} in the organisation." for i in range(8 * 64)]
    few = ["Send a message to a Slack channel.", "Create a Jira ticket.", "Book a meeting room."]
    done: list[str] = []

    async def compute(name: str, texts: list[str]) -> None:
        await vectors.embed(texts)
        done.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(compute, "large", large)
        await anyio.sleep(0.05)  # (its first batch is on the model)
        tg.start_soon(compute, "few", few)
    assert done == ["few", "large"]
    assert all(vectors.known(digest(t)) is not None for t in [*large, *few])
