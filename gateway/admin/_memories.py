"""Admin API: the tenant's memories (ADR 0045), to look into and to clean up.

- memories with their strategies; making one (AgentCore's input shapes for strategies) and
  deleting one with everything in it;
- long-term records, filtered by namespace (a prefix), strategy and actor, newest first;
- one record with its sources: the events it was extracted from (their conversational text, so a
  person sees why an agent believes it), the extraction job, earlier jobs and the text it had
  before, for a record that was updated; deleting a record;
- the extraction jobs;
- a document put straight into long-term memory (``IngestData``), one record per passage.

Shapes are memory's own, AgentCore's camelCase (``MemoryView``, ``Record``, ``Job``), with a
record's ``actorId`` and ``sessionId`` added. Memory's errors are answered 404 (not found, or
another tenant's), 400 (bad input), 409 (a name taken) and 503 (a part not running).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin._http import body_as, error
from gateway.admin._openapi import Operation
from gateway.core.model import Model
from gateway.system import Switchboard
from memory import (
    Conflict,
    EmbedderError,
    Event,
    Invalid,
    MemoryService,
    NotFound,
    Page,
    Record,
    Unavailable,
    iso,
)

M = "/admin/v1/memories"
StrategyKind = Literal[
    "semanticMemoryStrategy",
    "summaryMemoryStrategy",
    "userPreferenceMemoryStrategy",
    "episodicMemoryStrategy",
    "customMemoryStrategy",
]
StrategyInput = Annotated[dict[StrategyKind, dict[str, Any]], Field(min_length=1, max_length=1)]


class NewMemory(Model):
    """A memory to make: short-term events alone, or with strategies that extract long-term records
    (those need the memory model, ``SWITCHBOARD_MEMORY_MODEL``)."""

    name: str = Field(
        pattern=r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$", description="A letter, then letters, digits or '_'."
    )
    description: str | None = Field(None, max_length=4096)
    event_expiry_days: int = Field(
        90, ge=3, le=365, alias="eventExpiryDays", description="How long short-term events are kept."
    )
    strategies: list[StrategyInput] = Field(
        default_factory=list,
        description="AgentCore's MemoryStrategyInput, each with exactly one key, e.g. "
        '{"semanticMemoryStrategy": {"name": "facts", "namespaces": ["/facts/{actorId}/"]}}.',
    )


class NewDocument(Model):
    """A document to put straight into long-term memory (``IngestData``): split into passages of
    at most 1,500 characters, each a record of the actor's, found by retrieval at once (no model)."""

    actor_id: str = Field(alias="actorId", min_length=1, max_length=255, description="Whose it is.")
    text: str = Field(min_length=1, max_length=2 * 1024 * 1024)
    namespace: str | None = Field(
        None, max_length=512, description="Where its records go (default /documents/{actorId}/)."
    )
    source: str | None = Field(None, max_length=512, description="Where it came from (a file name, a URL).")


Handler = Callable[[Request, Switchboard, str], Awaitable[Response]]


def _answering(handler: Callable[[Request, MemoryService, str], Awaitable[Response]]) -> Handler:
    """A handler given the memory service, whose errors become the admin API's answers."""

    @functools.wraps(handler)
    async def answer(request: Request, system: Switchboard, tenant: str) -> Response:
        if system.memory is None:
            return error(503, "this process serves no memory")
        try:
            return await handler(request, system.memory, tenant)
        except NotFound as exc:
            return error(404, str(exc))
        except Invalid as exc:
            return error(400, str(exc))
        except Conflict as exc:
            return error(409, str(exc))
        except (Unavailable, EmbedderError) as exc:
            return error(503, str(exc))

    return answer


def _query(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def _limit(request: Request) -> int | None:
    given = _query(request, "limit")
    if given is None:
        return None
    if not given.isdigit():
        raise Invalid(f"limit must be a whole number, not {given!r}")
    return int(given)


def _page(key: str, page: Page, shown: Callable[[Any], dict[str, Any]]) -> Response:
    body: dict[str, Any] = {key: [shown(item) for item in page.items]}
    if page.next_token is not None:
        body["nextCursor"] = page.next_token
    return JSONResponse(body)


def _record(record: Record) -> dict[str, Any]:
    owner = {"actorId": record.actor_id, "sessionId": record.session_id}
    return {**record.wire(), **{k: v for k, v in owner.items() if v is not None}}


def _event(event: Event) -> dict[str, Any]:
    """An event as a person reads it: when, who, and what was said (its payload as well)."""
    said = []
    for item in event.payload:
        turn = item.get("conversational") if isinstance(item, dict) else None
        if isinstance(turn, dict):
            content = turn.get("content")
            text = content.get("text") if isinstance(content, dict) else None
            said.append({"role": turn.get("role"), "text": text})
    return {**event.wire(), "at": iso(event.event_timestamp), "conversation": said}


# -- handlers ----------------------------------------------------------------------------------


@_answering
async def list_memories(request: Request, service: MemoryService, tenant: str) -> Response:
    page = await service.list_memories(tenant, _limit(request), _query(request, "cursor"))
    return _page("memories", page, lambda m: m.wire())


@_answering
async def create_memory(request: Request, service: MemoryService, tenant: str) -> Response:
    wanted = await body_as(request, NewMemory)
    made = await service.create_memory(
        tenant,
        name=wanted.name,
        description=wanted.description,
        event_expiry_days=wanted.event_expiry_days,
        strategies=[dict(s) for s in wanted.strategies],
    )
    return JSONResponse(made.wire(), 201)


@_answering
async def get_memory(request: Request, service: MemoryService, tenant: str) -> Response:
    return JSONResponse((await service.get_memory(tenant, request.path_params["memory_id"])).wire())


@_answering
async def delete_memory(request: Request, service: MemoryService, tenant: str) -> Response:
    await service.delete_memory(tenant, request.path_params["memory_id"])
    return Response(status_code=204)


@_answering
async def list_records(request: Request, service: MemoryService, tenant: str) -> Response:
    page = await service.list_records(
        tenant,
        request.path_params["memory_id"],
        namespace=_query(request, "namespace"),
        strategy_id=_query(request, "strategy"),
        actor_id=_query(request, "actor"),
        max_results=_limit(request),
        next_token=_query(request, "cursor"),
    )
    return _page("records", page, _record)


@_answering
async def get_record(request: Request, service: MemoryService, tenant: str) -> Response:
    memory_id, record_id = request.path_params["memory_id"], request.path_params["record_id"]
    record, events = await service.explain(tenant, memory_id, record_id)
    raw = dict(record.sources)
    named = [str(e) for e in raw.pop("events", [])]
    job, earlier, previous = raw.pop("job", None), raw.pop("history", []), raw.pop("previous", None)
    found = {e.event_id for e in events}
    sources: dict[str, Any] = {
        **raw,  # (how it was written, its strategy and session...)
        "events": [_event(e) for e in events],
        "missingEvents": [e for e in named if e not in found],  # (expired or deleted since)
        "job": job,
        "earlierJobs": earlier,
        "previousText": previous,  # (an updated record's text before the last update)
    }
    return JSONResponse({"record": _record(record), "sources": sources})


@_answering
async def delete_record(request: Request, service: MemoryService, tenant: str) -> Response:
    memory_id, record_id = request.path_params["memory_id"], request.path_params["record_id"]
    await service.delete_record(tenant, memory_id, record_id)
    return Response(status_code=204)


@_answering
async def ingest(request: Request, service: MemoryService, tenant: str) -> Response:
    wanted = await body_as(request, NewDocument)
    made = await service.ingest(
        tenant,
        request.path_params["memory_id"],
        actor_id=wanted.actor_id,
        text=wanted.text,
        namespace=wanted.namespace,
        source=wanted.source,
    )
    return JSONResponse({"records": [_record(r) for r in made]}, 201)


@_answering
async def list_jobs(request: Request, service: MemoryService, tenant: str) -> Response:
    page = await service.list_jobs(
        tenant,
        request.path_params["memory_id"],
        status=_query(request, "status"),
        actor_id=_query(request, "actor"),
        session_id=_query(request, "session"),
        strategy_id=_query(request, "strategy"),
        max_results=_limit(request),
        next_token=_query(request, "cursor"),
    )
    return _page("jobs", page, lambda j: j.wire())


BAD, DOWN = "Bad input: the message names the field", "Memory is not running here (or needs a model)"
MEMORY_OPERATIONS = [
    Operation(
        M, "GET", list_memories, "The tenant's memories (?limit=&cursor=)", answers={200: "OK", 400: BAD}
    ),
    Operation(
        M,
        "POST",
        create_memory,
        "Make a memory (strategies in AgentCore's MemoryStrategyInput shape)",
        NewMemory,
        {
            201: "Created: the memory",
            400: BAD,
            409: "A memory of this name exists",
            422: "Refused: the request is not valid",
            503: DOWN,
        },
    ),
    Operation(M + "/{memory_id}", "GET", get_memory, "A memory, with its strategies"),
    Operation(M + "/{memory_id}", "DELETE", delete_memory, "Delete a memory: its events, records and jobs"),
    Operation(
        M + "/{memory_id}/records",
        "GET",
        list_records,
        "Long-term records, newest first (?namespace=&strategy=&actor=&limit=&cursor=)",
        answers={200: "OK", 400: BAD, 503: DOWN},
    ),
    Operation(
        M + "/{memory_id}/records/{record_id}",
        "GET",
        get_record,
        "A record with its sources: the events it was extracted from, its job, its earlier text",
    ),
    Operation(M + "/{memory_id}/records/{record_id}", "DELETE", delete_record, "Delete a record"),
    Operation(
        M + "/{memory_id}/documents",
        "POST",
        ingest,
        "Put a document straight into long-term memory (IngestData): one record per passage",
        NewDocument,
        {201: "Created: the records", 400: BAD, 404: "No such memory", 422: "Refused", 503: DOWN},
    ),
    Operation(
        M + "/{memory_id}/jobs",
        "GET",
        list_jobs,
        "Extraction jobs, newest first (?status=&actor=&session=&strategy=&limit=&cursor=)",
        answers={200: "OK", 400: BAD},
    ),
]
