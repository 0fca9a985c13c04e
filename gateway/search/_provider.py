"""The gateway's search tool (ADR 0047): a provider in the gateway's own catalog, so a search is
a call like any other (policy, rate limits, audit, traces), that answers the best matching tools
the caller may call, with their whole definitions, so the client can call them next.

The provider reads its gateway's live catalog through ``gateway_of`` (the hub's), and the caller's
visible tools through the gateway's policy: a tool no policy could permit this caller is never
found. Its index follows the catalog: each search first syncs it with the snapshot it is about
to read (words at once), and a change the hub announces is synced and embedded in the background.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import ClassVar, Protocol

import anyio
import orjson
from anyio.abc import TaskGroup

from gateway.config import SearchSpec
from gateway.core.catalog import CatalogSnapshot
from gateway.core.errors import ToolNotFound
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, Principal, ToolCall, ToolResult, ToolSpec
from gateway.search._index import ToolIndex, listed
from gateway.search._vectors import Vector, Vectors
from memory import EmbedderError

logger = logging.getLogger(__name__)

TARGET = "gateway.search"  # (the provider's id, as the audit and traces name the target)
CODE_TARGET = "gateway.code"  # (code mode's)
OWN = (TARGET, CODE_TARGET)  # (the gateway's own tools are never found)
MAX_QUERY = 2_000  # characters of a query read
INLINE = 32  # new tools whose vectors a search waits for; more are computed in the background
FILL_BATCH = 256  # vectors computed in the background between two looks at the catalog
VIEWS = 16  # indexes of callers who may call only some tools, one per distinct set, kept
FOUND_KEPT = 32  # tools a session's searches found, added to its list (list_found), the latest kept
SESSIONS_KEPT = 10_000  # sessions whose found tools are kept (the least recently searching go first)
# Set while a code-mode program's call runs: its searches find tools for the program, not for the
# session's list (a program's hundred searches would crowd out the model's own, each one told).
IN_PROGRAM: ContextVar[bool] = ContextVar("switchboard_in_program", default=False)
DESCRIPTION = (
    "Find this gateway's tools for a task described in plain words. Answers the best matching "
    "tools with their full definitions (name, description, input schema); call them next by "
    "name. Search again with other words when none fits."
)


class Gateway(Protocol):
    """What the provider reads of its live gateway (``gateway.hub.LiveGateway``)."""

    @property
    def snapshot(self) -> CatalogSnapshot: ...

    def visible_names(self, principal: Principal) -> set[str] | None: ...


def listed_always(pinned: Sequence[str], snap: CatalogSnapshot, name: str) -> bool:
    """Whether progressive search lists ``name`` for every session: the gateway's own tools
    (search, code mode), and the pinned tools."""
    entry = snap.tools.get(name)
    if entry is not None and entry.provider.id in (TARGET, CODE_TARGET):
        return True
    return any(fnmatch.fnmatchcase(name, glob) for glob in pinned)


class SearchProvider(ToolProvider):
    """The search tool of one gateway."""

    kind = "search"
    namespaced: ClassVar[bool] = False

    def __init__(
        self,
        spec: SearchSpec,
        vectors: Vectors,
        gateway_of: Callable[[], Gateway | None],
        task_group: TaskGroup | None = None,
    ) -> None:
        super().__init__(TARGET)
        self.spec = spec
        self.index = ToolIndex(vectors)
        self.views: OrderedDict[frozenset[str], ToolIndex] = OrderedDict()  # (per visible set)
        self._keys: dict[int, tuple[set[str], CatalogSnapshot, frozenset[str] | None]] = {}
        self._lock = anyio.Lock()  # (every index here: synced in a thread, searched on the loop)
        self.gateway_of = gateway_of
        self.task_group = task_group
        self._filling = False
        self._warmed = False
        self._found: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()  # session -> names
        self.on_found: Callable[[str], None] | None = None  # (the hub's: a session's list changed)
        self.knows: Callable[[str], bool] | None = None  # (the hub's: a live 2025-era session's id)

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        limit = self.spec.max_results
        schema = {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "description": "The task, in plain words."},
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": limit,
                    "description": f"How many tools at most (default {min(5, limit)}).",
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        }
        found = {
            "type": "object",
            "properties": {"tools": {"type": "array", "items": {"type": "object"}}},
            "required": ["tools"],
        }
        return [
            ToolSpec(
                name=self.spec.name,
                title="Search tools",
                description=DESCRIPTION,
                input_schema=schema,
                output_schema=found,
                annotations={"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
            )
        ]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        if call.name != self.spec.name:  # (the gateway sends the other name here as this one)
            raise ToolNotFound(call.name)
        gateway = self.gateway_of()
        if gateway is None:
            return ToolResult.error("this gateway is being reloaded; search again in a moment")
        query = str(call.arguments.get("query", "")).strip()[:MAX_QUERY]
        if not query:
            return ToolResult.error("query is empty: describe the task the tool is for, in plain words")
        limit = int(call.arguments.get("limit") or min(5, self.spec.max_results))
        snapshot = gateway.snapshot
        index, only = self._index_for(snapshot, gateway.visible_names(ctx.principal))
        await self._sync(index, snapshot, only)
        vector = await self._query_vector(query, index)
        async with self._lock:
            hits = index.search(query, vector, min(limit, self.spec.max_results), snapshot.tools.__contains__)
        tools: list[JSON] = []
        for hit in hits:
            tool = dict(snapshot.tools[hit.record_id].wire())
            tool.pop("execution", None)  # (how to call it is the client's era's business)
            tools.append(tool)
        if self._lists_for(ctx.session_id) and tools:  # (what every session lists adds nothing)
            names = [str(t["name"]) for t in tools]
            self._remember(
                str(ctx.session_id), [n for n in names if not listed_always(self.spec.pinned, snapshot, n)]
            )
        found: JSON = {"tools": tools}
        text = orjson.dumps(found).decode()  # (a search answers some 13 KB: 0.5 ms with json's)
        return ToolResult(content=({"type": "text", "text": text},), structured=found)

    def found(self, session_id: str) -> tuple[str, ...]:
        """The tools a session's searches found, the latest last (``list_found``)."""
        return tuple(self._found.get(session_id, ()))

    def _lists_for(self, session_id: str | None) -> bool:
        """Whether a search in this session adds what it found to the session's list: list_found,
        a live 2025-era session (not an id a client made up), and not a program's own search."""
        if not (self.spec.list_found and self.spec.progressive and session_id) or IN_PROGRAM.get():
            return False
        return self.knows is None or self.knows(session_id)

    def forget(self, session_id: str) -> None:
        """A session ended: what it found is dropped."""
        self._found.pop(session_id, None)

    def _remember(self, session_id: str, names: list[str]) -> None:
        if not names and session_id not in self._found:  # (nothing to keep: no slot taken)
            return
        kept = self._found.pop(session_id, None) or OrderedDict()
        before = set(kept)
        for name in names:
            kept.pop(name, None)
            kept[name] = None
        while len(kept) > FOUND_KEPT:
            kept.popitem(last=False)
        self._found[session_id] = kept
        while len(self._found) > SESSIONS_KEPT:  # (the session is told: its list is back to the pinned)
            dropped, had = self._found.popitem(last=False)
            if had and self.on_found is not None:
                self.on_found(dropped)
        if set(kept) != before and self.on_found is not None:
            self.on_found(session_id)

    def _index_for(
        self, snapshot: CatalogSnapshot, visible: set[str] | None
    ) -> tuple[ToolIndex, frozenset[str] | None]:
        """The index this caller's search ranks in, and the tools it holds (None: all): the
        gateway's whole one when they may call every tool; else one of only the tools they may
        call (its words' statistics are theirs too, so a word held only by a tool hidden from
        them changes nothing they see)."""
        if visible is None:
            return self.index, None
        cached = self._keys.get(id(visible))
        if cached is None or cached[0] is not visible or cached[1] is not snapshot:
            every = sum(e.provider.id not in OWN for e in snapshot.tools.values())
            allowed = frozenset(
                n for n, e in snapshot.tools.items() if n in visible and e.provider.id not in OWN
            )
            cached = (visible, snapshot, None if len(allowed) == every else allowed)
            if len(self._keys) >= VIEWS * 4:
                self._keys.clear()
            self._keys[id(visible)] = cached
        mine = cached[2]
        if mine is None:
            return self.index, None
        view = self.views.pop(mine, None) or ToolIndex(self.index.vectors)
        self.views[mine] = view  # (the most recently used last)
        while len(self.views) > VIEWS:
            self.views.popitem(last=False)
        return view, mine

    def catalog_changed(self) -> None:
        """The hub's news that the catalog changed: index it ahead of the next search."""
        if self.task_group is not None:
            gateway = self.gateway_of()
            if gateway is not None:
                self.task_group.start_soon(self._sync, self.index, gateway.snapshot, None, 0)
            if not self._warmed:
                self._warmed = True
                self.task_group.start_soon(self._warm)

    async def _warm(self) -> None:
        """Embed a query before the first caller's: the local model builds its fast query encoder
        on its first query (ADR 0048), and the first searches would wait for float32 meanwhile."""
        with contextlib.suppress(EmbedderError):
            await self.index.vectors.embedder.embed_query("find a tool")

    async def _sync(
        self,
        index: ToolIndex,
        snapshot: CatalogSnapshot,
        only: frozenset[str] | None,
        inline: int = INLINE,
    ) -> None:
        """Bring ``index`` to ``snapshot``'s tools (``only`` those, for a view; in a worker
        thread: a large change would hold up the event loop), then compute the new tools'
        vectors: a few now, many in the background."""
        await index.vectors.load()  # (what earlier runs computed is read before indexing: no refill)
        tools = (item for item in listed(snapshot, OWN) if only is None or item[0] in only)
        async with self._lock:
            pending = (
                index.sync(snapshot, tools)
                if snapshot is index.synced
                else await anyio.to_thread.run_sync(index.sync, snapshot, list(tools))
            )
        if not pending:
            return
        if len(pending) <= inline:
            await self._fill(index, pending)
        elif self.task_group is not None and not self._filling:
            self._filling = True
            self.task_group.start_soon(self._fill_all)

    async def _fill_all(self) -> None:
        """Vectors for every index's tools, a batch at a time (searches go on meanwhile)."""
        try:
            while True:
                gateway = self.gateway_of()
                if gateway is None:
                    return
                async with self._lock:  # (a sync may be changing an index in its thread)
                    pending = [(i, p) for i in (self.index, *self.views.values()) if (p := i.pending())]
                if not pending:
                    return
                for index, names in pending:
                    if not await self._fill(index, names[:FILL_BATCH]):
                        return
        finally:
            self._filling = False

    async def _fill(self, index: ToolIndex, names: list[str]) -> bool:
        async with self._lock:
            wanted = index.to_embed(names)
        if not wanted:
            return True
        try:
            found = await index.vectors.embed([semantic for _, semantic in wanted])
        except EmbedderError as exc:
            logger.warning("tool search: vectors could not be computed (%s); searching by words", exc)
            return False
        async with self._lock:
            index.vectored(wanted, found)
        return True

    async def _query_vector(self, query: str, index: ToolIndex) -> Vector | None:
        if not index.has_vectors:
            return None
        try:
            found = await index.vectors.embedder.embed_query(query)  # (a query is not kept)
        except EmbedderError as exc:
            logger.warning("tool search: the query could not be embedded (%s); searching by words", exc)
            return None
        return found if found.shape == (index.vectors.dim,) else None
