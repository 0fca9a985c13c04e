"""The call audit: every tools/call as an append-only record, queryable from the admin API.

A record holds who (tenant, subject, client), which gateway and tool, the decision
(``allowed``, ``denied`` by policy, ``limited`` by a rate limit; ``would_deny``: allowed, but
log-only policies would have denied it, and the error says which), a SHA-256 digest of the
arguments (never the arguments: they may hold secrets), the outcome (``ok``/``error``) with
a short error text, the duration, and the approval when one was needed.

The stage is the outermost of the configurable ones, so refusals are recorded too.

**A call is answered only once its record is durable** (group commit): the stage hands
the record to one writer task and waits for the transaction that carries it. The writer
takes every record queued while the previous transaction ran, so under load one commit
(one fsync) carries many calls, and a lone call waits for one small commit. A ``kill -9``
therefore never loses the record of a call that was answered.

**Records are never dropped.** When the database refuses a batch, the writer appends it
to a spill file (JSON lines, fsynced, under a file lock shared by the processes of one
data dir) and the waiting calls go on; the writer moves spilled records into the database
as soon as it takes writes again, and at start-up. While the database refuses records,
``unwritable="refuse"`` (the default) refuses new calls before they run, saying why
(a privileged use never happens unaudited); ``unwritable="spill"`` keeps serving and spills.
When even the spill file cannot be written, the call ends with an error saying that its
record could not be kept. Shutdown writes what is queued.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import orjson

from gateway.core.errors import CredentialRequired, InputRequired, ToolExecutionError
from gateway.core.redaction import redact_text
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult
from gateway.stages.policy import Denied
from gateway.stages.ratelimit import RateLimited
from gateway.store import CallRecord

logger = logging.getLogger(__name__)
BATCH = 500  # records per transaction (a bigger group is written in several)
RETRY_SECONDS = 2.0  # how often spilled records are offered to the database again
Unwritable = Literal["refuse", "spill"]


def digest(arguments: Any) -> str:
    try:
        raw = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers past 64 bits: the standard encoder takes any size
        raw = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=repr).encode()
    return hashlib.sha256(raw).hexdigest()


class AuditUnavailable(ToolExecutionError):
    """The call audit cannot take records: calls are refused (or a record could not be kept)."""


@dataclass(slots=True)
class _Group:
    """The records of one commit, and the calls waiting for it."""

    records: list[CallRecord] = field(default_factory=list)
    done: anyio.Event = field(default_factory=anyio.Event)
    error: str | None = None


class SpillFile:
    """Records the database refused, appended as JSON lines and fsynced; one lock for every
    process of a data dir (``fcntl.flock``), so their appends and replays never interleave."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, records: Sequence[CallRecord]) -> None:
        """Blocking: run in a worker thread."""
        data = b"".join(orjson.dumps(asdict(r)) + b"\n" for r in records)
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)  # (closing releases the lock)

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    async def replay(self, write: Callable[[Sequence[CallRecord]], Awaitable[None]]) -> int:
        """Move the spilled records into the database; returns how many. Raises what ``write`` raises
        (the file is then kept as it was)."""
        if not self.pending():
            return 0
        fd = await anyio.to_thread.run_sync(self._locked)
        try:
            raw = await anyio.to_thread.run_sync(_read_all, fd)
            records = [CallRecord(**orjson.loads(line)) for line in raw.splitlines() if line.strip()]
            for start in range(0, len(records), BATCH):
                await write(records[start : start + BATCH])
            # A crash between the commit above and this truncation writes these records twice
            # at the next replay: a duplicate is recoverable, a lost record is not.
            await anyio.to_thread.run_sync(_truncate, fd)
            return len(records)
        finally:
            os.close(fd)

    def _locked(self) -> int:
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _truncate(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.fsync(fd)


class AuditLog:
    """Group-commits records with ``write(records)``; ``record`` returns once its record is durable.

    Args:
        write: Writes one batch in one transaction (raises when it cannot).
        spill: Where refused records are kept until the database takes them (None: nowhere,
            a refused batch fails its calls).
        unwritable: ``refuse``: while the database refuses records, new calls are refused;
            ``spill``: they go on and their records are spilled.
    """

    def __init__(
        self,
        write: Callable[[Sequence[CallRecord]], Awaitable[None]],
        *,
        spill: Path | None = None,
        unwritable: Unwritable = "refuse",
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.write = write
        self.spill = SpillFile(spill) if spill is not None else None
        self.unwritable = unwritable
        self.retry_seconds = retry_seconds
        self.failing: str | None = None  # why the database refuses records, while it does
        self.written = 0
        self.spilled = 0
        self._group = _Group()
        self._wake = anyio.Event()
        self._closed = False
        self._stopped = anyio.Event()

    def refusing(self) -> str | None:
        """Why new calls are refused now, or None."""
        if self.failing is not None and self.unwritable == "refuse":
            return self.failing
        return None

    async def record(self, record: CallRecord) -> None:
        """Queue ``record`` and return once it is durable (even when the caller is being cancelled).

        Raises:
            AuditUnavailable: the record could be neither written nor spilled.
        """
        with anyio.CancelScope(shield=True):
            if self._stopped.is_set():  # the writer has ended (shutdown): write it here
                group = _Group([record])
                await self._commit(group)
            else:
                group = self._group
                group.records.append(record)  # before any await: a cancellation cannot lose it
                self._wake.set()
                await group.done.wait()
        if group.error is not None:
            raise AuditUnavailable(group.error)

    async def run(self) -> None:
        """The writer: run in a task group until `close`; writes what is queued before it returns."""
        try:
            await self._replay()
            while True:
                with anyio.move_on_after(self.retry_seconds if self._retrying() else float("inf")):
                    await self._wake.wait()
                self._wake = anyio.Event()
                group, self._group = self._group, _Group()
                with anyio.CancelScope(shield=True):
                    if self._retrying():
                        await self._replay()
                    if group.records:
                        await self._commit(group)
                if self._closed and not self._group.records:
                    return
        finally:
            group, self._group = self._group, _Group()
            self._stopped.set()
            if group.records:  # (cancelled: never leave a call waiting)
                with anyio.CancelScope(shield=True):
                    await self._commit(group)

    def _retrying(self) -> bool:
        return self.failing is not None or (self.spill is not None and self.spill.pending())

    async def _replay(self) -> None:
        if self.spill is None:
            return
        try:
            moved = await self.spill.replay(self.write)
        except Exception as exc:  # noqa: BLE001 - boundary: the store is still down; keep the file
            self.failing = _reason(exc)
            return
        self.failing = None
        if moved:
            self.written += moved
            logger.info("audit: %d spilled records written to the database", moved)

    async def _commit(self, group: _Group) -> None:
        try:
            for start in range(0, len(group.records), BATCH):
                await self.write(group.records[start : start + BATCH])
            self.written += len(group.records)
            if self.failing is not None and not (self.spill is not None and self.spill.pending()):
                self.failing = None
        except Exception as exc:  # noqa: BLE001 - boundary: the store refused; spill instead
            self.failing = _reason(exc)
            logger.warning("audit: the database refused %d records (%s)", len(group.records), exc)
            group.error = await self._spill(group.records)
        finally:
            group.done.set()

    async def _spill(self, records: list[CallRecord]) -> str | None:
        if self.spill is None:
            return f"the call's audit record could not be written ({self.failing})"
        try:
            await anyio.to_thread.run_sync(self.spill.append, records)
        except OSError as exc:
            logger.error("audit: %d records could be neither written nor spilled: %s", len(records), exc)
            return f"the call's audit record could not be kept ({self.failing}; spill file: {exc})"
        self.spilled += len(records)
        return None

    def close(self) -> None:
        self._closed = True
        self._wake.set()


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


class GatewayAudit:
    """The audit stage of one gateway."""

    def __init__(self, tenant: str, gateway: str, log: AuditLog) -> None:
        self.tenant = tenant
        self.gateway = gateway
        self.log = log

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        started = time.perf_counter()
        decision, outcome, error = "allowed", "ok", None
        try:
            why = self.log.refusing()
            if why is not None:
                raise AuditUnavailable(
                    f"calls are refused: the call audit cannot be written ({why}); they are taken again "
                    "once the database takes audit records (SWITCHBOARD_AUDIT_UNWRITABLE=spill serves on "
                    "and keeps the records in a spill file meanwhile)"
                )
            result = await call_next(call, ctx)
            if result.is_error:
                outcome = "error"
                error = "".join(str(c.get("text", "")) for c in result.content if c.get("type") == "text")
            return result
        except AuditUnavailable as exc:
            decision, outcome, error = "refused", "refused", exc.message
            raise
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
            if ctx.policy_log is not None:  # what log-only policies would have decided (ADR 0032)
                would, why = ctx.policy_log
                decision = "would_deny" if would == "deny" and decision == "allowed" else decision
                note = f"log-only policies would {would} this call ({why})"
                error = f"{error}; {note}" if error else note
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
