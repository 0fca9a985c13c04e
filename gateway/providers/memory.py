"""A memory as a gateway target (``kind: memory``, ADR 0045): ``remember``, ``recall``, ``list``
and ``forget`` over the memory service, each acting for the caller alone.

**Who the caller is.** Every caller is an actor of the memory, whose id is made from the
caller's subject (`actor_id`). A subject of letters, digits, '-' and '_' (up to 100, starting
with a letter or digit, never holding ``--``) is its own actor id. Any other subject has every
other character replaced by '_', is cut to 80 characters, and ends in ``--`` and 16 hex digits of
the subject's SHA-256: the first kind never holds ``--`` and the second always ends in it, so two
subjects never share an actor. The id is kept to what one namespace segment may hold (AgentCore's
actor ids also allow ':' and '/'): a namespace cannot hold ':', and a '/' would put one actor's
namespace inside another's. An agent writing events for the same person through AgentCore's API
uses the same id (``actor_id(subject)``) to have them recalled here.

**What the caller reaches.** ``remember`` writes to the target's ``namespace`` with the actor's
id in it. ``recall``, ``list`` and ``forget`` reach the caller's namespaces: that one, and the
namespace templates of the memory's strategies, each filled in for the actor (and the target's
``session``) and cut before the first variable left, kept only when the actor is in what
remains. A target that names a ``strategy`` reaches that strategy's records alone, which
extraction makes: it has no ``remember`` (what it wrote could not be recalled there). Every read and
delete is also filtered on the actor id: a record is the caller's by where it is and by whose it
is. Another caller's record is answered as one that does not exist.

The memory (by name or id, in the caller's tenant) is looked up at each call: a target may name
a memory made later, and until then its calls say how to make it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import ClassVar

from gateway.config import MemoryTarget
from gateway.core.errors import ToolExecutionError, ToolNotFound, UpstreamUnavailable
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from memory import (
    EmbedderError,
    MemoryService,
    MemoryServiceError,
    MemoryView,
    NotFound,
    Record,
    Unavailable,
    iso,
)

_CLEAN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_VARIABLE = re.compile(r"(\{[A-Za-z]+\})")
MAX_TEXT = 16_000  # what one record holds
MAX_QUERY = 10_000
LIST_PAGE = 20
MAX_LISTED = 10_000  # how deep ``list`` pages


def actor_id(subject: str) -> str:
    """The actor id of a caller's subject: itself when it is one segment of letters, digits, '-'
    and '_' without ``--``; else a readable part and ``--`` + 16 hex digits of its hash."""
    if _CLEAN.fullmatch(subject) and "--" not in subject:
        return subject
    readable = re.sub(r"[^A-Za-z0-9_]", "_", subject)[:80]
    if not readable[:1].isalnum():
        readable = "u" + readable[:79]
    return f"{readable}--{hashlib.sha256(subject.encode()).hexdigest()[:16]}"


def _spec(name: str, description: str, inputs: JSON, output: JSON, **hints: bool) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        input_schema={"type": "object", "additionalProperties": False, **inputs},
        output_schema={"type": "object", **output},
        annotations={"openWorldHint": False, **hints},
    )


_RECORD: JSON = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "text": {"type": "string"},
        "score": {"type": "number", "description": "Relevance to the query, 0 to 1 (recall only)."},
        "namespace": {"type": "string"},
        "createdAt": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "text", "namespace", "createdAt"],
}
TOOLS = (
    _spec(
        "remember",
        "Keep something in your long-term memory, to recall in later conversations: a fact, a "
        "preference, a decision. Write it as one self-contained statement (\"The user's flight to "
        'Lisbon is on 3 May"), one thing per call. Only you can recall, list or forget it. '
        "Returns the record's id.",
        {
            "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
                "metadata": {
                    "type": "object",
                    "description": 'Labels kept with the record (e.g. {"topic": "travel"}).',
                    "additionalProperties": {"type": ["string", "number"]},
                    "maxProperties": 20,
                },
            },
            "required": ["text"],
        },
        {
            "properties": {"id": {"type": "string"}, "namespace": {"type": "string"}},
            "required": ["id", "namespace"],
        },
        readOnlyHint=False,
        destructiveHint=False,
        idempotentHint=False,
    ),
    _spec(
        "recall",
        "Search your long-term memory for what bears on a question or topic, by meaning and by "
        "words: the most relevant of your records first, each with its id, text, relevance score "
        "(0 to 1), namespace and when it was written. Only your own records are searched.",
        {
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY},
                "top_k": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 100,
                    "description": "How many records at most (default: the target's).",
                },
            },
            "required": ["query"],
        },
        {"properties": {"records": {"type": "array", "items": _RECORD}}, "required": ["records"]},
        readOnlyHint=True,
    ),
    _spec(
        "list",
        "Your long-term memory records, newest first, a page at a time: pass the nextCursor a "
        "page gave to read the next one.",
        {
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": LIST_PAGE},
                "cursor": {"type": "string", "description": "The nextCursor of the previous page."},
            }
        },
        {
            "properties": {"records": {"type": "array", "items": _RECORD}, "nextCursor": {"type": "string"}},
            "required": ["records"],
        },
        readOnlyHint=True,
    ),
    _spec(
        "forget",
        "Delete one of your records, by the id recall or list gave. It cannot be undone.",
        {"properties": {"id": {"type": "string", "minLength": 1}}, "required": ["id"]},
        {
            "properties": {"id": {"type": "string"}, "forgotten": {"type": "boolean"}},
            "required": ["id", "forgotten"],
        },
        readOnlyHint=False,
        destructiveHint=True,
        idempotentHint=True,
    ),
)


class MemoryProvider(ToolProvider):
    """Serves one ``kind: memory`` target."""

    kind: ClassVar[str] = "memory"

    def __init__(self, config: MemoryTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        self.config = config

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        if self.config.strategy is not None:  # (what recall reaches is extracted, not remembered)
            return [t for t in TOOLS if t.name != "remember"]
        return TOOLS

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        handlers: dict[str, Callable[[_Caller, JSON], Awaitable[ToolResult]]] = {
            "remember": self._remember,
            "recall": self._recall,
            "list": self._list,
            "forget": self._forget,
        }
        handler = handlers.get(call.name)
        if handler is None or (call.name == "remember" and self.config.strategy is not None):
            raise ToolNotFound(call.public_name or call.name)
        if self.memory is None:
            raise UpstreamUnavailable(f"target {self.id!r}: this process serves no memory")
        service: MemoryService = self.memory
        with _mapped(self.id):
            view = await self._memory(service, ctx.tenant)
            caller = _Caller(service, view, ctx.tenant, actor_id(ctx.principal.subject))
            return await handler(caller, call.arguments or {})

    async def _memory(self, service: MemoryService, tenant: str) -> MemoryView:
        """The memory the target names (by name or id), in ``tenant``."""
        try:
            return await service.find_memory(tenant, self.config.memory)
        except NotFound:
            raise ToolExecutionError(
                f"target {self.id!r}: there is no memory {self.config.memory!r} yet; an administrator makes "
                "it with POST /admin/v1/memories (or AgentCore's CreateMemory) in this gateway's tenant"
            ) from None

    # -- scope --------------------------------------------------------------------------------

    def _namespace(self, actor: str) -> str:
        """Where ``remember`` writes for ``actor``."""
        session = self.config.session or ""  # (a namespace with {sessionId} has one: checked at load)
        return self.config.namespace.replace("{actorId}", actor).replace("{sessionId}", session)

    def _scope(self, view: MemoryView, actor: str) -> list[str]:
        """The namespace prefixes of the caller's records (none inside another)."""
        found: list[str] = []
        strategies = view.strategies
        if self.config.strategy is None:
            found.append(self._namespace(actor))
        else:
            strategies = [view.strategy(self.config.strategy)]  # (NotFound: names it)
        for strategy in strategies:
            sid = strategy.strategy_id
            values = {"actorId": actor, "memoryStrategyId": sid, "strategyId": sid}
            if self.config.session is not None:
                values["sessionId"] = self.config.session
            for template in (*strategy.namespaces, *strategy.reflection_namespaces):
                prefix = _prefix(template, values)
                if prefix is not None:
                    found.append(prefix)
        kept: list[str] = []
        for prefix in sorted(set(found), key=len):
            if not any(prefix.startswith(k) for k in kept):
                kept.append(prefix)
        return kept

    # -- the tools ----------------------------------------------------------------------------

    async def _remember(self, caller: _Caller, arguments: JSON) -> ToolResult:
        namespace = self._namespace(caller.actor)
        item: JSON = {"content": {"text": arguments.get("text")}, "namespaces": [namespace]}
        labels = arguments.get("metadata") or {}
        if labels:
            item["metadata"] = {
                k: {"stringValue": v} if isinstance(v, str) else {"numberValue": v} for k, v in labels.items()
            }
        service, tenant, memory_id = caller.service, caller.tenant, caller.view.id
        ok, failed = await service.batch_create(tenant, memory_id, [item], actor_id=caller.actor)
        if failed or not ok:
            raise ToolExecutionError(failed[0]["errorMessage"] if failed else "the record was not written")
        record_id = ok[0]["memoryRecordId"]
        return ToolResult(
            content=({"type": "text", "text": f"Remembered (record {record_id})."},),
            structured={"id": record_id, "namespace": namespace},
        )

    async def _recall(self, caller: _Caller, arguments: JSON) -> ToolResult:
        query = arguments.get("query")
        k = arguments.get("top_k") or self.config.top_k
        found = await caller.service.retrieve(
            caller.tenant,
            caller.view.id,
            query=query,
            prefixes=self._scope(caller.view, caller.actor),
            top_k=k,
            strategy_id=self.config.strategy,
            actor_id=caller.actor,
        )
        if not found:
            text = f"Nothing in your memory matches {query!r}."
        else:
            lines = [f"{i}. {_line(r, scored=True)}" for i, r in enumerate(found, 1)]
            text = f"{len(found)} record(s) for {query!r}, most relevant first:\n" + "\n".join(lines)
        return ToolResult(
            content=({"type": "text", "text": text},), structured={"records": [_shown(r) for r in found]}
        )

    async def _list(self, caller: _Caller, arguments: JSON) -> ToolResult:
        limit = arguments.get("limit") or LIST_PAGE
        cursor = arguments.get("cursor")
        if cursor is not None and not (isinstance(cursor, str) and cursor.isdigit() and len(cursor) <= 6):
            raise ToolExecutionError(
                "cursor is not one list gave: pass the nextCursor of the previous page, or none"
            )
        start = int(cursor or 0)
        want = min(start + limit + 1, MAX_LISTED + 1)
        merged: dict[str, Record] = {}
        for prefix in self._scope(caller.view, caller.actor):
            for record in await caller.newest(prefix, self.config.strategy, want):
                merged.setdefault(record.memory_record_id, record)
        ordered = sorted(merged.values(), key=lambda r: (-r.created_at, r.memory_record_id))
        page = ordered[start : start + limit]
        structured: JSON = {"records": [_shown(r) for r in page]}
        more = len(ordered) > start + limit and start + limit < MAX_LISTED
        if more:
            structured["nextCursor"] = str(start + limit)
        if page:
            text = "\n".join(f"{i}. {_line(r)}" for i, r in enumerate(page, start + 1))
            if more:
                text += f"\n(more: call list with cursor {structured['nextCursor']!r})"
        else:
            text = "You have no records in memory." if start == 0 else "No more records."
        return ToolResult(content=({"type": "text", "text": text},), structured=structured)

    async def _forget(self, caller: _Caller, arguments: JSON) -> ToolResult:
        record_id = str(arguments.get("id") or "")
        gone = ToolExecutionError(
            f"you have no record {record_id!r} in memory (list shows the records you have)"
        )
        try:
            record = await caller.service.get_record(caller.tenant, caller.view.id, record_id, caller.actor)
        except NotFound:
            raise gone from None
        prefixes = self._scope(caller.view, caller.actor)
        if not any(n.startswith(p) for n in record.namespaces for p in prefixes) or (
            self.config.strategy is not None and record.memory_strategy_id != self.config.strategy
        ):
            raise gone  # (the caller's, but out of this target's reach)
        try:
            await caller.service.delete_record(caller.tenant, caller.view.id, record_id, caller.actor)
        except NotFound:
            raise gone from None  # (forgotten meanwhile)
        return ToolResult(
            content=({"type": "text", "text": f"Forgot record {record_id}."},),
            structured={"id": record_id, "forgotten": True},
        )


class _Caller:
    """One call's memory, tenant and actor."""

    def __init__(self, service: MemoryService, view: MemoryView, tenant: str, actor: str) -> None:
        self.service, self.view, self.tenant, self.actor = service, view, tenant, actor

    async def newest(self, prefix: str, strategy: str | None, want: int) -> list[Record]:
        """Up to ``want`` of the actor's newest records under ``prefix``."""
        found: list[Record] = []
        token: str | None = None
        while len(found) < want:
            page = await self.service.list_records(
                self.tenant,
                self.view.id,
                namespace=prefix,
                strategy_id=strategy,
                actor_id=self.actor,
                max_results=100,
                next_token=token,
            )
            found.extend(page.items)
            token = page.next_token
            if token is None:
                break
        return found[:want]


def _prefix(template: str, values: dict[str, str]) -> str | None:
    """``template`` filled in up to its first variable without a value; None when the actor is
    not in what is left (such a namespace is not the caller's alone)."""
    out: list[str] = []
    actor = False
    for part in _VARIABLE.split(template):
        if _VARIABLE.fullmatch(part):
            name = part[1:-1]
            if name not in values:
                break
            actor = actor or name == "actorId"
            out.append(values[name])
        else:
            out.append(part)
    return "".join(out) if actor else None


def _shown(record: Record) -> JSON:
    shown: JSON = {
        "id": record.memory_record_id,
        "text": record.text,
        "namespace": record.namespaces[0] if record.namespaces else "",
        "createdAt": iso(record.created_at),
    }
    if record.score is not None:
        shown["score"] = record.score
    return shown


def _line(record: Record, *, scored: bool = False) -> str:
    score = f"[{record.score:.2f}] " if scored and record.score is not None else ""
    return f"{score}{record.text} (id {record.memory_record_id}, {iso(record.created_at)})"


@contextlib.contextmanager
def _mapped(target: str) -> Iterator[None]:
    """Memory's errors as the gateway's: what the model can fix as tool errors, a part that is
    not running as unavailable."""
    try:
        yield
    except Unavailable as exc:
        raise UpstreamUnavailable(f"target {target!r}: {exc}") from None
    except EmbedderError as exc:  # (the embeddings API or model, under a search or a write)
        raise UpstreamUnavailable(f"target {target!r}: memory cannot embed text now: {exc}") from None
    except MemoryServiceError as exc:  # NotFound, Invalid, Conflict: what was wrong, and the fix
        raise ToolExecutionError(str(exc)) from None
