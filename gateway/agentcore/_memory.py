"""AgentCore Memory on the memory service (ADR 0045): the control plane's memories
(``Create/Get/List/Update/DeleteMemory``) and the data plane's events, long-term records and
extraction jobs.

Every call acts for the caller's tenant: a memory of another tenant is answered as one that does
not exist. A memory is ``ACTIVE`` from the moment it is made (no provisioning to wait for), and
``DeleteMemory`` removes it, its events and its records at once (answered ``DELETING``, as
AgentCore answers). The data plane's callers are trusted for their tenant, as IAM trusts them on
AgentCore: they may read every actor's events and records of the tenant's memories.

The memory service's errors are mapped here, where it is called: ``NotFound`` is
``ResourceNotFoundException``, ``Invalid`` ``ValidationException``, ``Conflict``
``ConflictException``, ``Unavailable`` (no model for a strategy, say) and an embeddings failure
``ServiceUnavailableException``; their messages are written for the caller and passed on.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from gateway.agentcore._call import AwsError, Call, Handler, Params, conflict, not_found, validation
from memory import (
    Conflict,
    EmbedderError,
    Event,
    Job,
    MemoryService,
    MemoryServiceError,
    MemoryView,
    NotFound,
    Page,
    Record,
    Strategy,
    Unavailable,
)

_BASE = ("memoryRecordId", "content", "memoryStrategyId", "namespaces", "createdAt", "timestamp", "metadata")
_SUMMARY = (*_BASE, "score")  # (what a listing or a retrieval answers)
_RECORD = (*_BASE, "expiresAt")  # (what GetMemoryRecord answers)
# A custom strategy's configuration, per override: the member its extraction and its
# consolidation steps are answered under (a summary override has no extraction step).
_STEPS: dict[str, tuple[str | None, str]] = {
    "SEMANTIC_OVERRIDE": ("semanticExtractionOverride", "semanticConsolidationOverride"),
    "SUMMARY_OVERRIDE": (None, "summaryConsolidationOverride"),
    "USER_PREFERENCE_OVERRIDE": ("userPreferenceExtractionOverride", "userPreferenceConsolidationOverride"),
    "EPISODIC_OVERRIDE": ("episodicExtractionOverride", "episodicConsolidationOverride"),
}
_WRAPPERS = (
    ("extraction", "customExtractionConfiguration"),
    ("consolidation", "customConsolidationConfiguration"),
)
_UNSERVED = {
    "encryptionKeyArn": "memory is kept in Switchboard's own database, not encrypted with a KMS key",
    "streamDeliveryResources": "records are not delivered to Kinesis here; read them with ListMemoryRecords",
    "namespaceKeys": "namespace templates may use {actorId}, {sessionId} and {memoryStrategyId} only",
}


def _service(call: Call) -> MemoryService:
    found = call.system.memory
    if found is None:
        raise AwsError("ServiceUnavailableException", "memory is not running in this process", 503)
    return found


def _mapped(handler: Callable[[Call, Params], Awaitable[Params]]) -> Handler:
    """The handler, with the memory service's errors answered as AgentCore's."""

    @functools.wraps(handler)
    async def run(call: Call, params: Params) -> Params:
        try:
            return await handler(call, params)
        except NotFound as exc:
            raise not_found(str(exc)) from None
        except Conflict as exc:
            raise conflict(str(exc)) from None
        except (Unavailable, EmbedderError) as exc:
            raise AwsError("ServiceUnavailableException", str(exc), 503) from None
        except MemoryServiceError as exc:  # Invalid, and any other refusal of the input
            raise validation(str(exc)) from None

    return run


def _refuse_unserved(params: Params) -> None:
    for name, why in _UNSERVED.items():
        if params.get(name):
            raise validation(f"{name} is not supported by Switchboard ({why}): leave it out")


def _seconds(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _memory_id(params: Params) -> str:
    """The memory's id, from its id or its ARN (the data plane takes either)."""
    named = str(params["memoryId"])
    return named.rsplit(":memory/", 1)[-1] if named.startswith("arn:") else named


# -- the control plane -----------------------------------------------------------------------------


def _configuration(strategy: Strategy, model: str | None) -> Params | None:
    """A strategy's ``StrategyConfiguration``: a custom strategy's override and its prompts; an
    episodic strategy's reflection namespaces."""
    out: Params = {}
    steps = _STEPS.get(strategy.override or "")
    if strategy.override is not None and steps is not None:
        out["type"] = strategy.override
        model_id = strategy.model_id or model
        prompts = (strategy.extraction_prompt, strategy.consolidation_prompt)
        for (key, wrapper), member, prompt in zip(_WRAPPERS, steps, prompts, strict=True):
            if member is not None and prompt:
                step = {"appendToPrompt": prompt, **({"modelId": model_id} if model_id else {})}
                out[key] = {wrapper: {member: step}}
    if strategy.kind == "EPISODIC" and strategy.reflection_namespaces:
        templates = list(strategy.reflection_namespaces)
        reflection = {"namespaces": templates, "namespaceTemplates": templates}
        out["reflection"] = {"episodicReflectionConfiguration": reflection}
    return out or None


def _strategy(strategy: Strategy, model: str | None) -> Params:
    out: Params = {
        "strategyId": strategy.strategy_id,
        "name": strategy.name,
        "description": strategy.description or None,
        "type": strategy.type,
        "namespaces": list(strategy.namespaces),
        "namespaceTemplates": list(strategy.namespaces),
        "configuration": _configuration(strategy, model),
        "status": strategy.status,
        "createdAt": strategy.created_at,
        "updatedAt": strategy.updated_at,
        "recordExpiryDurationDays": strategy.record_expiry_days,
    }
    return {k: v for k, v in out.items() if v is not None}


def _memory(call: Call, service: MemoryService, view: MemoryView, status: str | None = None) -> Params:
    model = None  # (the operator's model is not the tenant's to see: only a strategy's own is shown)
    out: Params = {
        "arn": call.arn("bedrock-agentcore", f"memory/{view.id}"),
        "id": view.id,
        "name": view.name,
        "description": view.description or None,
        "eventExpiryDuration": view.event_expiry_days,
        "status": status or view.status,
        "createdAt": view.created_at,
        "updatedAt": view.updated_at,
        "strategies": [_strategy(s, model) for s in view.strategies],
    }
    return {k: v for k, v in out.items() if v is not None}


@_mapped
async def create_memory(call: Call, params: Params) -> Params:
    service = _service(call)
    _refuse_unserved(params)
    view = await service.create_memory(
        call.tenant,
        name=params["name"],
        description=params.get("description"),
        event_expiry_days=params["eventExpiryDuration"],
        strategies=params.get("memoryStrategies"),
        client_token=params.get("clientToken"),
    )
    return {"memory": _memory(call, service, view)}


@_mapped
async def get_memory(call: Call, params: Params) -> Params:
    service = _service(call)
    return {"memory": _memory(call, service, await service.get_memory(call.tenant, params["memoryId"]))}


@_mapped
async def list_memories(call: Call, params: Params) -> Params:
    service = _service(call)
    page = await service.list_memories(call.tenant, params.get("maxResults"), params.get("nextToken"))
    memories = [
        {
            "arn": call.arn("bedrock-agentcore", f"memory/{view.id}"),
            "id": view.id,
            "status": view.status,
            "createdAt": view.created_at,
            "updatedAt": view.updated_at,
        }
        for view in page.items
    ]
    return {"memories": memories, **_next(page)}


@_mapped
async def update_memory(call: Call, params: Params) -> Params:
    service = _service(call)
    _refuse_unserved(params)
    changes = params.get("memoryStrategies") or {}
    view = await service.update_memory(
        call.tenant,
        params["memoryId"],
        description=params.get("description"),
        event_expiry_days=params.get("eventExpiryDuration"),
        add=changes.get("addMemoryStrategies"),
        modify=changes.get("modifyMemoryStrategies"),
        delete=changes.get("deleteMemoryStrategies"),
    )
    return {"memory": _memory(call, service, view)}


@_mapped
async def delete_memory(call: Call, params: Params) -> Params:
    view = await _service(call).delete_memory(call.tenant, params["memoryId"])
    return {"memoryId": view.id, "status": "DELETING"}


# -- events ----------------------------------------------------------------------------------------


def _event(event: Event) -> Params:
    return event.wire()


def _next(page: Page) -> Params:
    return {"nextToken": page.next_token} if page.next_token else {}


@_mapped
async def create_event(call: Call, params: Params) -> Params:
    event = await _service(call).create_event(
        call.tenant,
        _memory_id(params),
        actor_id=params["actorId"],
        session_id=params.get("sessionId"),
        timestamp=_seconds(params.get("eventTimestamp")),
        payload=params["payload"],
        branch=params.get("branch"),
        metadata=params.get("metadata"),
        extraction_mode=params.get("extractionMode"),
        client_token=params.get("clientToken"),
    )
    return {"event": _event(event)}


def _event_key(params: Params) -> tuple[str, str, str, str]:
    return _memory_id(params), params["actorId"], params["sessionId"], params["eventId"]


@_mapped
async def get_event(call: Call, params: Params) -> Params:
    return {"event": _event(await _service(call).get_event(call.tenant, *_event_key(params)))}


@_mapped
async def delete_event(call: Call, params: Params) -> Params:
    return {"eventId": await _service(call).delete_event(call.tenant, *_event_key(params))}


def _check_event_filters(wanted: Params) -> None:
    # (the service reads right.metadataValue of an EQUALS_TO filter without checking it is there)
    for i, expression in enumerate(wanted.get("eventMetadata") or []):
        compared = (expression.get("right") or {}).get("metadataValue")
        if expression.get("operator") == "EQUALS_TO" and not compared:
            raise validation(f"filter.eventMetadata[{i}] with EQUALS_TO needs right.metadataValue")


@_mapped
async def list_events(call: Call, params: Params) -> Params:
    _check_event_filters(params.get("filter") or {})
    page = await _service(call).list_events(
        call.tenant,
        _memory_id(params),
        params["actorId"],
        params["sessionId"],
        include_payloads=params.get("includePayloads", True),
        filter=params.get("filter"),
        max_results=params.get("maxResults"),
        next_token=params.get("nextToken"),
    )
    return {"events": [_event(e) for e in page.items], **_next(page)}


@_mapped
async def list_actors(call: Call, params: Params) -> Params:
    page = await _service(call).list_actors(
        call.tenant,
        _memory_id(params),
        max_results=params.get("maxResults"),
        next_token=params.get("nextToken"),
    )
    return {"actorSummaries": [{"actorId": a} for a in page.items], **_next(page)}


@_mapped
async def list_sessions(call: Call, params: Params) -> Params:
    actor = params["actorId"]
    page = await _service(call).list_sessions(
        call.tenant,
        _memory_id(params),
        actor,
        max_results=params.get("maxResults"),
        next_token=params.get("nextToken"),
    )
    summaries = [{"sessionId": s, "actorId": actor, "createdAt": created} for s, created in page.items]
    return {"sessionSummaries": summaries, **_next(page)}


# -- records ---------------------------------------------------------------------------------------


def _record(record: Record, members: tuple[str, ...]) -> Params:
    out = record.wire()
    return {k: out[k] for k in members if k in out}


def _namespace(params: Params) -> str | None:
    """The namespace prefix asked for (``namespacePath`` or ``namespace``; a trailing ``*`` is
    the prefix it already is)."""
    found = params.get("namespacePath") or params.get("namespace")
    if not found:
        return None
    return str(found).rstrip("*") or None


@_mapped
async def retrieve_memory_records(call: Call, params: Params) -> Params:
    criteria = params["searchCriteria"]
    found = await _service(call).retrieve(
        call.tenant,
        _memory_id(params),
        query=criteria["searchQuery"],
        namespace=_namespace(params),
        top_k=criteria.get("topK"),
        strategy_id=criteria.get("memoryStrategyId"),
        filters=criteria.get("metadataFilters"),
    )
    # Every hit of the top k in one page: a ranking has no stable place to resume from.
    return {"memoryRecordSummaries": [_record(r, _SUMMARY) for r in found]}


@_mapped
async def list_memory_records(call: Call, params: Params) -> Params:
    page = await _service(call).list_records(
        call.tenant,
        _memory_id(params),
        namespace=_namespace(params),
        strategy_id=params.get("memoryStrategyId"),
        filters=params.get("metadataFilters"),
        max_results=params.get("maxResults"),
        next_token=params.get("nextToken"),
    )
    return {"memoryRecordSummaries": [_record(r, _SUMMARY) for r in page.items], **_next(page)}


@_mapped
async def get_memory_record(call: Call, params: Params) -> Params:
    record = await _service(call).get_record(call.tenant, _memory_id(params), params["memoryRecordId"])
    return {"memoryRecord": _record(record, _RECORD)}


@_mapped
async def delete_memory_record(call: Call, params: Params) -> Params:
    gone = await _service(call).delete_record(call.tenant, _memory_id(params), params["memoryRecordId"])
    return {"memoryRecordId": gone}


def _stamped(items: list[Params]) -> list[Params]:
    """Batch items with their ``timestamp`` in epoch seconds, as the service takes it."""
    return [{**item, "timestamp": _seconds(item.get("timestamp"))} for item in items]


def _batch(done: tuple[list[Params], list[Params]]) -> Params:
    ok, failed = done
    return {"successfulRecords": ok, "failedRecords": failed}


@_mapped
async def batch_create_memory_records(call: Call, params: Params) -> Params:
    items = _stamped(params["records"])
    return _batch(await _service(call).batch_create(call.tenant, _memory_id(params), items))


@_mapped
async def batch_update_memory_records(call: Call, params: Params) -> Params:
    items = _stamped(params["records"])
    return _batch(await _service(call).batch_update(call.tenant, _memory_id(params), items))


@_mapped
async def batch_delete_memory_records(call: Call, params: Params) -> Params:
    ids = [str(item["memoryRecordId"]) for item in params["records"]]
    return _batch(await _service(call).batch_delete(call.tenant, _memory_id(params), ids))


# -- extraction jobs -------------------------------------------------------------------------------


def _job(job: Job) -> Params:
    out: Params = {
        "jobID": job.job_id,
        # (one entry per event: the job reads each event's messages from the first)
        "messages": {"messagesList": [{"eventId": e, "messageIndex": 0} for e in job.event_ids]},
        "status": job.status,
        "failureReason": job.failure_reason,
        "strategyId": job.strategy_id,
        "sessionId": job.session_id,
        "actorId": job.actor_id,
    }
    return {k: v for k, v in out.items() if v is not None}


@_mapped
async def start_memory_extraction_job(call: Call, params: Params) -> Params:
    job_id = str(params["extractionJob"]["jobId"])
    return {"jobId": await _service(call).start_job(call.tenant, _memory_id(params), job_id)}


@_mapped
async def list_memory_extraction_jobs(call: Call, params: Params) -> Params:
    wanted = params.get("filter") or {}
    page = await _service(call).list_jobs(
        call.tenant,
        _memory_id(params),
        status=wanted.get("status"),
        actor_id=wanted.get("actorId"),
        session_id=wanted.get("sessionId"),
        strategy_id=wanted.get("strategyId"),
        max_results=params.get("maxResults"),
        next_token=params.get("nextToken"),
    )
    return {"jobs": [_job(j) for j in page.items], **_next(page)}


CONTROL: dict[str, Handler] = {
    "CreateMemory": create_memory,
    "GetMemory": get_memory,
    "ListMemories": list_memories,
    "UpdateMemory": update_memory,
    "DeleteMemory": delete_memory,
}

DATA: dict[str, Handler] = {
    "CreateEvent": create_event,
    "GetEvent": get_event,
    "ListEvents": list_events,
    "DeleteEvent": delete_event,
    "ListActors": list_actors,
    "ListSessions": list_sessions,
    "RetrieveMemoryRecords": retrieve_memory_records,
    "ListMemoryRecords": list_memory_records,
    "GetMemoryRecord": get_memory_record,
    "DeleteMemoryRecord": delete_memory_record,
    "BatchCreateMemoryRecords": batch_create_memory_records,
    "BatchUpdateMemoryRecords": batch_update_memory_records,
    "BatchDeleteMemoryRecords": batch_delete_memory_records,
    "StartMemoryExtractionJob": start_memory_extraction_job,
    "ListMemoryExtractionJobs": list_memory_extraction_jobs,
}
