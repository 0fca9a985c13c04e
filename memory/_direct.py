"""Records written directly, not extracted: AgentCore's ``BatchCreate/Update/DeleteMemoryRecords``
and ``IngestData`` (a document split into passages, one record each). Part of `MemoryService`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from memory._memories import ACTOR, actor_of, check_namespace, check_part, check_template, passages
from memory._records import NewRecord, Records, check_metadata, check_text
from memory._types import Invalid, MemoryView, NotFound, Record

SELF_MANAGED = "self-managed"  # the strategy id of records written directly, not extracted
MAX_BATCH = 100
MAX_INGEST = 2 * 1024 * 1024


class DirectWrites:
    """The direct writes of `MemoryService` (which gives them its records, clock and lookups)."""

    records: Records
    clock: Callable[[], float]
    get_memory: Callable[[str, str], Awaitable[MemoryView]]

    async def batch_create(
        self, tenant: str, memory_id: str, items: Any, *, actor_id: str | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``BatchCreateMemoryRecords``: each record succeeds or fails on its own."""
        memory = await self.get_memory(tenant, memory_id)
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise Invalid(f"records must be a list of 1 to {MAX_BATCH} records")
        good: list[tuple[str, NewRecord]] = []
        failed: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            request = item.get("requestIdentifier", str(i)) if isinstance(item, dict) else str(i)
            try:
                good.append((request, self._new(memory, item, f"records[{i}]", actor_id)))
            except (Invalid, NotFound) as exc:
                failed.append(
                    {
                        "memoryRecordId": "",
                        "status": "FAILED",
                        "requestIdentifier": request,
                        "errorCode": 400,
                        "errorMessage": str(exc),
                    }
                )
        written = await self.records.write(memory_id, [n for _, n in good])
        ok = [
            {"memoryRecordId": r.memory_record_id, "status": "SUCCEEDED", "requestIdentifier": request}
            for (request, _), r in zip(good, written, strict=True)
        ]
        return ok, failed

    def _new(
        self, memory: MemoryView, item: Any, at: str, actor_id: str | None, record_id: str | None = None
    ) -> NewRecord:
        """A record to write from AgentCore's input (``record_id``: the one an update replaces; a
        created record always gets a new id, whatever its input says)."""
        if not isinstance(item, dict):
            raise Invalid(f"{at} must be a record")
        text = check_text((item.get("content") or {}).get("text"), f"{at}.content.text")
        spaces = item.get("namespaces")
        if not isinstance(spaces, list) or len(spaces) != 1:
            raise Invalid(f"{at}.namespaces must hold exactly one namespace")
        namespace = check_namespace(spaces[0], f"{at}.namespaces[0]")
        strategy_id = item.get("memoryStrategyId") or SELF_MANAGED
        strategy = None if strategy_id == SELF_MANAGED else memory.strategy(strategy_id)
        owner = actor_id
        if owner is None and strategy is not None:
            owner = next((a for t in strategy.namespaces if (a := actor_of(t, namespace))), None)
        metadata = check_metadata(item.get("metadata"), f"{at}.metadata")
        stamp = item.get("timestamp")
        expires = (
            self.clock() + strategy.record_expiry_days * 86400
            if strategy and strategy.record_expiry_days
            else None
        )
        return NewRecord(
            strategy_id,
            namespace,
            text,
            owner,
            None,
            metadata=metadata,
            sources={"written": "directly"},
            expires=expires,
            record_id=record_id,
            timestamp=stamp if isinstance(stamp, int | float) else None,
        )

    async def batch_update(
        self, tenant: str, memory_id: str, items: Any
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        memory = await self.get_memory(tenant, memory_id)
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise Invalid(f"records must be a list of 1 to {MAX_BATCH} records")
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            rid = item.get("memoryRecordId", "") if isinstance(item, dict) else ""
            try:
                old = await self.records.get(memory_id, str(rid))
                merged = {
                    "content": item.get("content") or old.content,
                    "namespaces": item.get("namespaces") or old.namespaces,
                    "memoryStrategyId": item.get("memoryStrategyId") or old.memory_strategy_id,
                    "metadata": item.get("metadata")
                    if item.get("metadata") is not None
                    else (old.metadata or {}),
                    "memoryRecordId": rid,
                    "timestamp": item.get("timestamp"),
                }
                new = self._new(memory, merged, f"records[{i}]", old.actor_id, old.memory_record_id)
                new.sources = {**old.sources, "updated": "directly"}
                await self.records.write(memory_id, [new])
                ok.append({"memoryRecordId": rid, "status": "SUCCEEDED"})
            except (Invalid, NotFound) as exc:
                failed.append(
                    {
                        "memoryRecordId": rid or "-",
                        "status": "FAILED",
                        "errorCode": 400 if isinstance(exc, Invalid) else 404,
                        "errorMessage": str(exc),
                    }
                )
        return ok, failed

    async def batch_delete(
        self, tenant: str, memory_id: str, ids: Sequence[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        await self.get_memory(tenant, memory_id)
        if not 1 <= len(ids) <= MAX_BATCH:
            raise Invalid(f"records must be a list of 1 to {MAX_BATCH} record ids")
        gone = set(await self.records.delete(memory_id, list(ids)))
        ok = [{"memoryRecordId": r, "status": "SUCCEEDED"} for r in ids if r in gone]
        failed = [
            {
                "memoryRecordId": r,
                "status": "FAILED",
                "errorCode": 404,
                "errorMessage": f"memory {memory_id} has no record {r}",
            }
            for r in ids
            if r not in gone
        ]
        return ok, failed

    async def ingest(
        self,
        tenant: str,
        memory_id: str,
        *,
        actor_id: str,
        text: Any,
        namespace: Any = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> list[Record]:
        """A document straight into long-term memory: split into passages, each one record, no model."""
        await self.get_memory(tenant, memory_id)
        actor = check_part(actor_id, "actorId", ACTOR, 255)
        if not isinstance(text, str) or not text.strip():
            raise Invalid("the document must be non-empty text")
        if len(text.encode()) > MAX_INGEST:
            raise Invalid(
                f"the document is {len(text.encode()):,} bytes; ingest at most {MAX_INGEST:,} at a time"
            )
        space = check_template(namespace or "/documents/{actorId}/", "namespace").replace("{actorId}", actor)
        check_namespace(space)
        sources = {"document": source or "ingested", "written": "ingest"}
        pieces = passages(text)
        return await self.records.write(
            memory_id,
            [
                NewRecord(
                    SELF_MANAGED,
                    space,
                    p,
                    actor,
                    None,
                    metadata=dict(metadata or {}),
                    sources={**sources, "passage": i},
                )
                for i, p in enumerate(pieces)
            ],
        )
