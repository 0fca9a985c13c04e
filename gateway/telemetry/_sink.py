"""The embedded trace store: finished spans written to the gateway's own database.

``make serve`` has traces with no other service. A span is queued when it ends (the
span processor runs on whatever thread ends it; the queue is a deque, and the writer is
woken on the event loop), and a background task writes what gathered every 200 ms in
one transaction. Tracing never makes a call wait: when the queue is full (the database
cannot keep up), spans are dropped and counted in ``switchboard_trace_spans_dropped``.
Spans without a tenant (start-up, background work) are left to the other exporters.
The writer also forgets spans older than the retention.
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
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from gateway.telemetry._metrics import current
from gateway.telemetry._tracing import TENANT_ATTR

logger = logging.getLogger(__name__)
GATHER_SECONDS = 0.2
BATCH = 2000
PURGE_EVERY_SECONDS = 300.0
ORPHAN_SECONDS = 60.0

Write = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]
Purge = Callable[[int], Awaitable[int]]


def span_row(span: ReadableSpan, children: Sequence[ReadableSpan] = ()) -> dict[str, Any]:
    """A finished span as an ``sb_spans`` row, with the spans under it (``children``) folded in."""
    attributes = _attributes(span)
    ctx = span.context
    assert ctx is not None
    trace_id = format(ctx.trace_id, "032x")
    # A step is an MCP request (not a notification, not the handshake, which has no session yet).
    step = (
        span.kind is SpanKind.SERVER
        and "jsonrpc.request.id" in attributes
        and attributes.get("mcp.method.name") not in (None, "initialize")
    )
    session = (attributes.get("mcp.session.id") or trace_id) if step else None
    tool = attributes.get("gen_ai.tool.name") or attributes.get("gen_ai.prompt.name")
    row = _common(span)
    row["tenant"] = str(attributes.get(TENANT_ATTR))
    row["trace_id"] = trace_id
    row["session"] = _text(session, 255)
    row["gateway"] = _text(attributes.get("switchboard.gateway"), 63)
    row["tool"] = _text(tool, 255)
    row["subject"] = _text(attributes.get("enduser.id"), 255)
    row["attributes"] = orjson.dumps(attributes, default=str).decode()
    row["children"] = orjson.dumps([_child(c) for c in children], default=str).decode() if children else None
    return row


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a dict: the gateway's own spans keep theirs in one (not copied:
    an ended span is never changed); the SDK's spans in a mapping of their own."""
    mine = span._attributes
    return mine if type(mine) is dict else dict(span.attributes or {})


_KINDS = {kind: kind.name.lower() for kind in SpanKind}


def _common(span: ReadableSpan) -> dict[str, Any]:
    context, parent, status = span.context, span.parent, span.status
    assert context is not None
    start = span.start_time or 0
    return {
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": _text(span.name, 255) or "",
        "kind": _KINDS[span.kind],
        "start_ns": start,
        "end_ns": span.end_time or start,
        "error": status.status_code is StatusCode.ERROR,
        "status_message": _text(status.description, 500),
    }


def _text(value: Any, limit: int) -> str | None:
    """A text column's value: capped, and without NUL (which PostgreSQL text cannot hold: one
    would fail the whole batch). Names and tools come from clients."""
    return str(value).replace("\x00", "")[:limit] or None if value else None


def _child(span: ReadableSpan) -> dict[str, Any]:
    row = _common(span)
    row["attributes"] = _attributes(span)
    return row


class TraceSink(SpanProcessor):
    """Queues tenants' finished spans; ``run`` writes them and applies the retention."""

    def __init__(self, write: Write, purge: Purge, retention_seconds: float, capacity: int = 50_000) -> None:
        self.write = write
        self.purge = purge
        self.retention_ns = int(retention_seconds * 1e9)
        self.capacity = capacity
        self.written = 0
        # Rows to write: a span with no parent in this process, and the spans under it.
        self._pending: deque[tuple[ReadableSpan, list[ReadableSpan]]] = deque()
        # Spans waiting for their parent to end, by the parent's span id (with when first seen).
        self._under: dict[int, tuple[float, list[ReadableSpan]]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a row for a span whose parent is not local (a request's span, with everything
        under it folded in: one row a call, not one a span); hold the others for their parent."""
        if span.context is None or not _attributes(span).get(TENANT_ATTR):
            return
        parent = span.parent
        with self._lock:
            below = self._under.pop(span.context.span_id, None)
            family = [span, *below[1]] if below else [span]
            if parent is not None and not parent.is_remote:
                waiting = self._under.get(parent.span_id)
                if waiting is None:
                    self._under[parent.span_id] = (time.monotonic(), family)
                else:
                    waiting[1].extend(family)
                return
            if len(self._pending) >= self.capacity:
                metrics = current()
                if metrics is not None:
                    metrics.spans_dropped.inc(len(family))
                return
            self._pending.append((span, family[1:]))
        self._wake_writer()

    def _wake_writer(self) -> None:
        wake, loop = self._wake, self._loop
        if wake is None or loop is None or wake.is_set():
            return
        if threading.get_ident() == self._thread:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def _orphans(self, older_than: float) -> None:
        """Spans whose parent never ended (a request that moved to another path) get rows of their own."""
        cut = time.monotonic() - older_than
        with self._lock:
            stale = [key for key, (seen, _) in self._under.items() if seen < cut]
            for key in stale:
                self._pending.extend((span, []) for span in self._under.pop(key)[1])

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
                    self._orphans(ORPHAN_SECONDS)
                    await self.flush()
                    if time.monotonic() - purged > PURGE_EVERY_SECONDS:
                        purged = time.monotonic()
                        await self._purge()
        finally:
            self._orphans(0.0)
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
            rows = [span_row(span, children) for span, children in batch]
            # In the order of the trace index (clients' trace ids are random): each page visited once.
            rows.sort(key=itemgetter("tenant", "trace_id"))
            try:
                await self.write(rows)
                self.written += sum(1 + len(children) for _, children in batch)
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
