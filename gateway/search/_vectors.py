"""Tool texts' embeddings, computed once per process and kept on disk across restarts.

Embedding a large catalog is slow on a CPU (GitHub's 1,223 tools: about 17 s here with the local
model), and the same tools are served by many gateways and tenants. So vectors are keyed by the
embedder's name and a digest of the text, shared by every gateway of the process, and written to
an SQLite file in the data directory; a restart reads them back instead of computing them again.
Several worker processes may share the file (WAL, one short transaction a batch).

Rows carry the day they were last known to be used. Once a day (``keep``), a process stamps the
vectors its gateways' tools have now, and rows no process stamped for ``KEEP_DAYS`` are deleted:
a tool changed or removed leaves its old vector behind only that long.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import anyio
import numpy as np
import numpy.typing as npt

from memory import Embedder, EmbedderError

logger = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
BATCH = 64  # texts a forward pass (and a disk write)
MAX_KEPT = 50_000  # vectors kept in memory (75 MB); the least recently used give way
KEEP_DAYS = 30  # days a vector no process uses is kept
KEEP_FIRST = 600.0  # seconds after a start before the first ``keep`` (the gateways have synced by then)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL, used INTEGER NOT NULL)"
)


def today() -> int:
    """Days since the epoch (UTC): the stamp of a vector in use."""
    return int(time.time() // 86400)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Vectors:
    """Embeddings of texts by digest: in memory, on disk (``path``; None keeps them in memory),
    computed by ``embedder`` when neither has them."""

    def __init__(self, embedder: Embedder, path: Path | None = None) -> None:
        self.embedder = embedder
        self.dim = embedder.dim
        self.path = path
        self._kept: OrderedDict[str, Vector] = OrderedDict()  # (the most recently used last)
        self._lock = threading.Lock()  # (the disk file, from worker threads)
        self._computing = anyio.Lock()  # (one embedding batch at a time: the model uses the cores)
        self._loaded = False
        self._loading = anyio.Lock()
        self.today: Callable[[], int] = today
        self._stamped = False  # (the file has its ``used`` column: checked once)

    def known(self, key: str) -> Vector | None:
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def _keep(self, fresh: dict[str, Vector]) -> None:
        self._kept.update(fresh)
        while len(self._kept) > MAX_KEPT:  # (the disk keeps them: read back when needed again)
            self._kept.popitem(last=False)

    async def load(self) -> None:
        """Read what earlier runs computed (once; later callers wait for the first)."""
        async with self._loading:
            if not self._loaded and self.path is not None:
                self._keep(await anyio.to_thread.run_sync(self._read))
            self._loaded = True

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """The vectors of ``texts`` (computed for those not known yet, in batches).

        Raises:
            EmbedderError: the embedder failed (the model missing, an embeddings API down).
        """
        await self.load()
        keys = [digest(t) for t in texts]
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in self._kept}.items())
        for start in range(0, len(missing), BATCH):
            # One batch at a time holds the model, and callers take turns (the lock is first come,
            # first served): a tenant's catalog of thousands does not hold up another's few
            # tools, which a search computes before it answers, for longer than a batch.
            async with self._computing:
                batch = [(k, t) for k, t in missing[start : start + BATCH] if k not in self._kept]
                if not batch:  # (another caller computed them meanwhile)
                    continue
                found = await self.embedder.embed([t for _, t in batch])
                if found.shape != (len(batch), self.dim):
                    raise EmbedderError(
                        f"the embedder answered {found.shape}, not ({len(batch)}, {self.dim})"
                    )
                fresh = {
                    k: np.ascontiguousarray(found[i], dtype=np.float32) for i, (k, _) in enumerate(batch)
                }
                self._keep(fresh)
                if self.path is not None:
                    await anyio.to_thread.run_sync(self._write, fresh)
        out: list[Vector] = []
        for key, text in zip(keys, texts, strict=True):
            kept = self._kept.get(key)
            out.append(kept if kept is not None else await self._one(text))
        return out

    async def _one(self, text: str) -> Vector:
        """A vector the memory bound dropped meanwhile (a batch larger than the bound)."""
        (vector,) = await self.embedder.embed([text])
        return np.ascontiguousarray(vector, dtype=np.float32)

    async def keep(self, live: Iterable[str]) -> int:
        """Stamp the vectors of ``live`` texts (their digests) as used today, and delete those
        no process has stamped for ``KEEP_DAYS``; how many were deleted (nothing on disk: 0)."""
        if self.path is None:
            return 0
        return await anyio.to_thread.run_sync(self._stamp, [f"{self.embedder.name}:{k}" for k in live])

    def _stamp(self, keys: list[str]) -> int:
        day = self.today()
        try:
            with self._lock, contextlib.closing(self._connect()) as conn, conn:
                conn.executemany(
                    "UPDATE vectors SET used = ? WHERE key = ? AND used < ?", [(day, k, day) for k in keys]
                )
                pruned = conn.execute("DELETE FROM vectors WHERE used < ?", (day - KEEP_DAYS,)).rowcount
        except sqlite3.Error as exc:
            logger.warning("tool search: the vectors kept in %s could not be pruned (%s)", self.path, exc)
            return 0
        if pruned:
            logger.info(
                "tool search: %d vectors no tool has used for %d days were deleted from %s",
                pruned,
                KEEP_DAYS,
                self.path,
            )
        return int(pruned)

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        if not self._stamped and "used" not in self._columns(conn):  # (a file from before stamps)
            try:
                with conn:
                    conn.execute(
                        f"ALTER TABLE vectors ADD COLUMN used INTEGER NOT NULL DEFAULT {self.today()}"
                    )
            except sqlite3.OperationalError:
                if "used" not in self._columns(conn):  # (else another worker added it meanwhile)
                    raise
        self._stamped = True
        return conn

    @staticmethod
    def _columns(conn: sqlite3.Connection) -> set[str]:
        return {str(row[1]) for row in conn.execute("PRAGMA table_info(vectors)")}

    def _read(self) -> dict[str, Vector]:
        prefix = f"{self.embedder.name}:"
        found: dict[str, Vector] = {}
        try:
            with self._lock, contextlib.closing(self._connect()) as conn:
                rows = conn.execute(
                    "SELECT key, vector FROM vectors WHERE key >= ? AND key < ?", (prefix, prefix + "~")
                )
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape == (self.dim,):
                        found[key.removeprefix(prefix)] = vector
        except sqlite3.Error as exc:
            logger.warning(
                "tool search: the vectors kept in %s could not be read (%s); computing them", self.path, exc
            )
        return found

    def _write(self, fresh: dict[str, Vector]) -> None:
        prefix = f"{self.embedder.name}:"
        try:
            with self._lock, contextlib.closing(self._connect()) as conn, conn:
                day = self.today()
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vector, used) VALUES (?, ?, ?)",
                    [(prefix + k, v.tobytes(), day) for k, v in fresh.items()],
                )
        except sqlite3.Error as exc:
            logger.warning("tool search: vectors could not be kept in %s (%s)", self.path, exc)


async def keep_daily(vectors: Vectors, live: Callable[[], Iterable[str]]) -> None:
    """``vectors.keep(live())`` some minutes after the start, then once a day (until cancelled)."""
    await anyio.sleep(KEEP_FIRST)
    while True:
        try:
            await vectors.keep(live())
        except Exception:  # (a background chore never takes the hub down)
            logger.exception("tool search: the vectors kept in %s were not pruned", vectors.path)
        await anyio.sleep(86400)
