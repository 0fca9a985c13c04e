"""The call audit: every tools/call as an append-only record, queryable from the admin API.

A record holds who (tenant, subject, client), which gateway and tool, the decision
(``allowed``, ``denied`` by policy, ``limited`` by a rate limit), a SHA-256 digest of the
arguments (never the arguments: they may hold secrets), the outcome (``ok``/``error``) with
a short error text, the duration, and the approval when one was needed.

The stage is the outermost of the configurable ones, so refusals are recorded too.
Records are queued and written in batches by a background task: a call never waits for
the database, and the writer gathers for 50 ms so that one transaction carries many
records. When the queue is full the call waits for room, so records are never dropped.
Shutdown flushes what is queued.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from gateway.core.errors import CredentialRequired, InputRequired, ToolExecutionError
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult
from gateway.policy import Denied
from gateway.ratelimit import RateLimited
from gateway.redaction import redact_text

logger = logging.getLogger(__name__)
BATCH = 500
GATHER_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class CallRecord:
    at: float
    tenant: str
    gateway: str
    subject: str
    client: str | None
    tool: str
    decision: str
    arguments_digest: str
    outcome: str
    error: str | None
    duration_ms: float
    approval: str | None = None


def digest(arguments: Any) -> str:
    try:
        raw = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers past 64 bits: the standard encoder takes any size
        raw = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=repr).encode()
    return hashlib.sha256(raw).hexdigest()


class AuditLog:
    """Queues records and writes them in batches with ``write(records)``."""

    def __init__(self, write: Any, capacity: int = 10_000) -> None:
        self.write = write
        self._send: MemoryObjectSendStream[CallRecord]
        self._receive: MemoryObjectReceiveStream[CallRecord]
        self._send, self._receive = anyio.create_memory_object_stream[CallRecord](capacity)
        self.written = 0

    async def record(self, record: CallRecord) -> None:
        await self._send.send(record)  # waits when full: never dropped

    async def run(self) -> None:
        """The writer: run in a task group until `close`; flushes what is queued."""
        async with self._receive:
            async for first in self._receive:
                # Gather for a moment: one transaction (and one fsync) for many calls, not one each.
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(GATHER_SECONDS)
                batch = [first]
                while len(batch) < BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self._flush(batch)

    async def _flush(self, batch: list[CallRecord]) -> None:
        for attempt in range(5):
            try:
                await self.write(batch)
                self.written += len(batch)
                return
            except Exception as exc:  # noqa: BLE001 - boundary: the store is down; try again
                logger.warning("audit records not written yet (%s); retrying", exc)
                await anyio.sleep(0.2 * 2**attempt)
        logger.error("audit: %d records could not be written", len(batch))

    def close(self) -> None:
        self._send.close()


class GatewayAudit:
    """The audit stage of one gateway."""

    def __init__(self, tenant: str, gateway: str, log: AuditLog) -> None:
        self.tenant = tenant
        self.gateway = gateway
        self.log = log

    async def stage(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        started = time.perf_counter()
        decision, outcome, error = "allowed", "ok", None
        try:
            result = await call_next(call, ctx)
            if result.is_error:
                outcome = "error"
                error = "".join(str(c.get("text", "")) for c in result.content if c.get("type") == "text")
            return result
        except Denied as exc:
            decision, outcome, error = "denied", "refused", exc.message
            raise
        except RateLimited as exc:
            decision, outcome, error = "limited", "refused", exc.message
            raise
        except ToolExecutionError as exc:
            outcome, error = "error", exc.message
            raise
        except InputRequired:
            outcome = "input_required"  # a round: the client answers and the call comes again
            raise
        except CredentialRequired as exc:
            outcome, error = "consent_required", exc.provider
            raise
        except Exception as exc:
            outcome, error = "error", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            p = ctx.principal
            await self.log.record(
                CallRecord(
                    at=time.time(),
                    tenant=self.tenant,
                    gateway=self.gateway,
                    subject=p.subject,
                    client=p.client_id,
                    tool=call.public_name or call.name,
                    decision=decision,
                    arguments_digest=digest(call.arguments),
                    outcome=outcome,
                    error=redact_text(error or "", 500)[:500] or None,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    approval=ctx.approval,
                )
            )
