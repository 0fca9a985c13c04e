"""The embedded trace store: finished spans written to the gateway's own database.

``make serve`` has traces with no other service. A request's tree of records is queued
when its root ends (on whatever thread ends it; the queue is a deque, and the writer is
woken on the event loop), and a background task turns what gathered every 200 ms into
rows, one a request, written in one transaction. Tracing never makes a call wait: when
the queue is full (the database cannot keep up), spans are dropped and counted in
``switchboard_trace_spans_dropped``. Records without a tenant (start-up, background work)
are left to the exporters. The writer also forgets spans older than the retention.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from operator import itemgetter
from typing import Any

import anyio
import orjson
from opentelemetry.trace import SpanKind, StatusCode

from gateway.telemetry._metrics import current
from gateway.telemetry._record import Record, filed_under

logger = logging.getLogger(__name__)
GATHER_SECONDS = 0.2
BATCH = 2000
PURGE_EVERY_SECONDS = 300.0

Write = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]
Purge = Callable[[int], Awaitable[int]]


def span_row(record: Record) -> dict[str, Any]:
    """A delivered record as an ``sb_spans`` row: a root with the records under it folded
    into ``children``, or a record that ended after its root (a row of its own)."""
    record.settle()
    attributes = record.attributes
    ctx = record.context
    trace_id = format(ctx.trace_id, "032x")
    # A step is an MCP request (not a notification, not the handshake, which has no session yet).
    step = (
        record.root is None
        and record.kind is SpanKind.SERVER
        and "jsonrpc.request.id" in attributes
        and attributes.get("mcp.method.name") not in (None, "initialize")
    )
    session = (attributes.get("mcp.session.id") or trace_id) if step else None
    tool = attributes.get("gen_ai.tool.name") or attributes.get("gen_ai.prompt.name")
    row = _common(record)
    row["tenant"] = filed_under(record)
    row["trace_id"] = trace_id
    row["session"] = _text(session, 255)
    row["gateway"] = _text(attributes.get("switchboard.gateway"), 63)
    row["tool"] = _text(tool, 255)
    row["subject"] = _text(attributes.get("enduser.id"), 255)
    row["attributes"] = orjson.dumps(attributes, default=str).decode()
    children = _filed_children(record)
    row["children"] = orjson.dumps([_child(c) for c in children], default=str).decode() if children else None
    return row


def _filed_children(record: Record) -> list[Record]:
    """The records under a root that are filed with it (see ``Record.owned``)."""
    return (record.children or []) if record.root is None and record.owned else []


_KINDS = {kind: kind.name.lower() for kind in SpanKind}


def _common(record: Record) -> dict[str, Any]:
    parent, status = record.parent, record.status
    start = record.start_time
    return {
        "span_id": format(record.context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": _text(record.name, 255) or "",
        "kind": _KINDS[record.kind],
        "start_ns": start,
        "end_ns": record.end_time or start,
        "error": status.status_code is StatusCode.ERROR,
        "status_message": _text(status.description, 500),
    }


def _text(value: Any, limit: int) -> str | None:
    """A text column's value: capped, and without NUL (which PostgreSQL text cannot hold: one
    would fail the whole batch). Names and tools come from clients."""
    return str(value).replace("\x00", "")[:limit] or None if value else None


def _child(record: Record) -> dict[str, Any]:
    record.settle()
    row = _common(record)
    row["attributes"] = record.attributes
    return row


class TraceSink:
    """Queues tenants' finished trees of records; ``run`` writes them and applies the retention."""

    def __init__(self, write: Write, purge: Purge, retention_seconds: float, capacity: int = 50_000) -> None:
        self.write = write
        self.purge = purge
        self.retention_ns = int(retention_seconds * 1e9)
        self.capacity = capacity
        self.written = 0
        self._pending: deque[Record] = deque()  # rows to write: a root with what ended under it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False

    def take(self, record: Record) -> None:
        """Queue a row (a tenant's request with everything under it: one row a call, not one
        a span); the writer builds it. Records of no tenant (start-up, background work) are
        left to the exporters."""
        if filed_under(record) is None:
            return
        if len(self._pending) >= self.capacity:
            metrics = current()
            if metrics is not None:
                metrics.spans_dropped.inc(1 + len(_filed_children(record)))
            return
        self._pending.append(record)
        wake = self._wake
        if wake is not None and not wake.is_set():
            if threading.get_ident() == self._thread:
                wake.set()
            elif self._loop is not None:
                self._loop.call_soon_threadsafe(wake.set)

    async def run(self) -> None:
        """The writer, until cancelled; then it writes what is still queued."""
        self._loop, self._thread = asyncio.get_running_loop(), threading.get_ident()
        self._wake = wake = asyncio.Event()
        purged = 0.0
        try:
            while not self._closed:
                if self._pending:
                    wake.set()
                await wake.wait()
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(GATHER_SECONDS)  # one transaction for many spans
                    wake.clear()
                    await self.flush()
                    if time.monotonic() - purged > PURGE_EVERY_SECONDS:
                        purged = time.monotonic()
                        await self._purge()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                while self._pending:
                    await self.flush()

    def close(self) -> None:
        """End ``run`` (on the event loop): it writes what is queued, then returns."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        """Write what is queued now. Rows that arrive meanwhile wait for the next round: writing
        them at once would turn one transaction every 200 ms into one every call or two."""
        left = len(self._pending)
        while left > 0:
            batch = [self._pending.popleft() for _ in range(min(BATCH, left))]
            left -= len(batch)
            rows = [span_row(record) for record in batch]
            # In the order of the trace index (clients' trace ids are random): each page visited once.
            rows.sort(key=itemgetter("tenant", "trace_id"))
            try:
                await self.write(rows)
                self.written += sum(1 + len(_filed_children(record)) for record in batch)
            except Exception as exc:  # noqa: BLE001 - boundary: the store is down; tracing must not stop calls
                logger.warning("trace store: %d spans not written: %s", len(batch), exc)
                return

    async def _purge(self) -> None:
        try:
            gone = await self.purge(time.time_ns() - self.retention_ns)
        except Exception as exc:  # noqa: BLE001 - boundary: retried at the next round
            logger.warning("trace store: old spans not purged yet: %s", exc)
            return
        if gone:
            logger.info("trace store: forgot %d spans past the retention", gone)
