"""The gateway's search tool (ADR 0047): a provider in the gateway's own catalog, so a search is
a call like any other (policy, rate limits, audit, traces), that answers the best matching tools
the caller may call, with their whole definitions, so the client can call them next.

The provider reads its gateway's live catalog through ``gateway_of`` (the hub's), and the caller's
visible tools through the gateway's policy: a tool no policy could permit this caller is never
found. Its index follows the catalog: each search first syncs it with the snapshot it is about
to read (words at once), and a change the hub announces is synced and embedded in the background.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar, Protocol

from anyio.abc import TaskGroup

from gateway.config import AGENTCORE_SEARCH_TOOL, SEARCH_TOOL, SearchSpec
from gateway.core.catalog import CatalogSnapshot
from gateway.core.errors import ToolNotFound
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, Principal, ToolCall, ToolResult, ToolSpec
from gateway.search._index import Listed, ToolIndex, listed
from gateway.search._vectors import Vector, Vectors
from memory import EmbedderError

logger = logging.getLogger(__name__)

TARGET = "gateway.search"  # (the provider's id, as the audit and traces name the target)
OWN = (TARGET, "gateway.code")  # (the gateway's own tools are never found)
NAMES = (SEARCH_TOOL, AGENTCORE_SEARCH_TOOL)
MAX_QUERY = 2_000  # characters of a query read
INLINE = 32  # new tools whose vectors a search waits for; more are computed in the background
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
        self.gateway_of = gateway_of
        self.task_group = task_group
        self._filling = False

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
        if call.name not in NAMES:
            raise ToolNotFound(call.name)
        gateway = self.gateway_of()
        if gateway is None:
            return ToolResult.error("this gateway is being reloaded; search again in a moment")
        query = str(call.arguments.get("query", "")).strip()[:MAX_QUERY]
        if not query:
            return ToolResult.error("query is empty: describe the task the tool is for, in plain words")
        limit = int(call.arguments.get("limit") or min(5, self.spec.max_results))
        snapshot = gateway.snapshot
        await self._sync(snapshot)
        vector = await self._query_vector(query)
        visible = gateway.visible_names(ctx.principal)

        def allow(name: str) -> bool:
            return name in snapshot.tools and (visible is None or name in visible)

        hits = self.index.search(query, vector, min(limit, self.spec.max_results), allow)
        tools: list[JSON] = []
        for hit in hits:
            tool = dict(snapshot.tools[hit.record_id].wire())
            tool.pop("execution", None)  # (how to call it is the client's era's business)
            tools.append(tool)
        found: JSON = {"tools": tools}
        text = json.dumps(found, separators=(",", ":"))
        return ToolResult(content=({"type": "text", "text": text},), structured=found)

    def catalog_changed(self) -> None:
        """The hub's news that the catalog changed: index it ahead of the next search."""
        if self.task_group is not None:
            gateway = self.gateway_of()
            if gateway is not None:
                self.task_group.start_soon(self._sync, gateway.snapshot, 0)

    async def _sync(self, snapshot: CatalogSnapshot, inline: int = INLINE) -> None:
        pending = self.index.sync(snapshot, self._tools(snapshot))
        if not pending:
            return
        if len(pending) <= inline:
            await self._fill(pending)
        elif self.task_group is not None and not self._filling:
            self._filling = True
            self.task_group.start_soon(self._fill_all)

    async def _fill_all(self) -> None:
        try:
            while True:
                gateway = self.gateway_of()
                if gateway is None:
                    return
                pending = self.index.sync(gateway.snapshot, self._tools(gateway.snapshot))
                if not pending:
                    return
                if not await self._fill(pending[:256]):
                    return
        finally:
            self._filling = False

    async def _fill(self, names: list[str]) -> bool:
        try:
            await self.index.fill(names)
        except EmbedderError as exc:
            logger.warning("tool search: vectors could not be computed (%s); searching by words", exc)
            return False
        return True

    async def _query_vector(self, query: str) -> Vector | None:
        if not self.index.has_vectors:
            return None
        try:
            found = await self.index.vectors.embedder.embed([query])  # (a query is not kept)
        except EmbedderError as exc:
            logger.warning("tool search: the query could not be embedded (%s); searching by words", exc)
            return None
        return found[0] if found.shape == (1, self.index.vectors.dim) else None

    def _tools(self, snapshot: CatalogSnapshot) -> Iterator[Listed]:
        return listed(snapshot, OWN)
