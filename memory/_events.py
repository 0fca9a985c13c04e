"""Short-term memory: the events of an actor's sessions, their branches, and their expiry.

Events list newest first (as AgentCore lists them: its SDK reads the last turns from the top).
A branch starts at an event of the same session (``rootEventId``) under a new name; later
events on it name the branch (with the same root, or none). Listing a branch gives its own
events, and with ``includeParentBranches`` the main line up to and including its root too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from memory._db import Db, Row
from memory._memories import ACTOR, check_part, offset, page_size, token
from memory._records import matches
from memory._schema import events
from memory._types import Branch, Conflict, Event, Invalid, MemoryView, NotFound, Page

MAX_PAYLOAD_BYTES = 1024 * 1024  # one event, every payload item together
MAX_ITEMS = 100
MAX_TEXT = 100_000
MAX_METADATA = 15
MAX_SCANNED = 10_000  # events a metadata-filtered listing looks through (the newest)
ROLES = ("ASSISTANT", "USER", "TOOL", "OTHER")


def check_payload(payload: Any) -> list[dict[str, Any]]:
    """An event's payload as AgentCore allows it: 1 to 100 items, each conversational, blob or
    json, at most 1 MiB in all."""
    if not isinstance(payload, list) or not 1 <= len(payload) <= MAX_ITEMS:
        raise Invalid(f"payload must be a list of 1 to {MAX_ITEMS} items")
    for i, item in enumerate(payload):
        at = f"payload[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise Invalid(f"{at} must have exactly one of conversational, blob, json")
        kind, body = next(iter(item.items()))
        if kind == "conversational":
            text = (body.get("content") or {}).get("text") if isinstance(body, dict) else None
            if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
                raise Invalid(
                    f"{at}.conversational.content.text must be text of 1 to {MAX_TEXT:,} characters"
                )
            if body.get("role") not in ROLES:
                raise Invalid(f"{at}.conversational.role must be one of {', '.join(ROLES)}")
        elif kind == "json":
            if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
                raise Invalid(f"{at}.json.content must be a JSON object")
        elif kind != "blob":
            raise Invalid(f"{at} has {kind!r}; an item is one of conversational, blob, json")
    try:
        size = len(orjson.dumps(payload))
    except orjson.JSONEncodeError as exc:  # (a number past 64 bits, say: JSON's parsers disagree on it)
        raise Invalid(f"payload cannot be stored as JSON: {exc}; send numbers of at most 64 bits") from None
    if size > MAX_PAYLOAD_BYTES:
        raise Invalid(
            f"the payload is {size:,} bytes; an event holds at most {MAX_PAYLOAD_BYTES:,}: split it over "
            "several events, or keep large documents elsewhere and put a reference in the event"
        )
    return payload


def check_metadata(metadata: Any) -> dict[str, dict[str, str]]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA:
        raise Invalid(f"metadata must be a map of at most {MAX_METADATA} keys to {{stringValue: ...}}")
    for key, value in metadata.items():
        text = value.get("stringValue") if isinstance(value, dict) else None
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= 128
            or not isinstance(text, str)
            or len(text) > 256
        ):
            raise Invalid(f"metadata[{key!r}] must be {{stringValue: text of at most 256 characters}}")
    return metadata


def text_of(event: Event) -> list[tuple[str, str]]:
    """The (role, text) turns of an event's conversational items."""
    turns: list[tuple[str, str]] = []
    for item in event.payload:
        body = item.get("conversational")
        if isinstance(body, dict):
            turns.append((str(body.get("role", "OTHER")), str((body.get("content") or {}).get("text", ""))))
    return turns


def _event(row: Any, with_payload: bool = True) -> Event:
    return Event(
        memory_id=row.memory_id,
        actor_id=row.actor_id,
        session_id=row.session_id,
        event_id=row.id,
        event_timestamp=row.ts,
        payload=orjson.loads(row.payload) if with_payload else [],
        branch=Branch(name=row.branch, root_event_id=row.root_event_id) if row.branch else None,
        metadata=orjson.loads(row.metadata) or None,
    )


class Events:
    """Every memory's events."""

    def __init__(self, db: Db, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def create(
        self,
        memory: MemoryView,
        *,
        actor_id: Any,
        session_id: Any,
        timestamp: float,
        payload: Any,
        branch: Any = None,
        metadata: Any = None,
        extract: bool = True,
        client_token: str | None = None,
    ) -> tuple[Event, bool]:
        """Store an event; returns it and whether it is new (False: the client token's earlier one)."""
        actor = check_part(actor_id, "actorId", ACTOR, 255)
        session = check_part(session_id, "sessionId")
        items = check_payload(payload)
        meta = check_metadata(metadata)
        name, root = None, None
        if branch is not None:
            if not isinstance(branch, dict):
                raise Invalid("branch must be {name, rootEventId}")
            name = check_part(branch.get("name"), "branch.name")
            root = branch.get("rootEventId")
        now = self.clock()
        async with self.db.write() as conn:
            if client_token:
                found = (
                    await conn.execute(
                        sa.select(events).where(
                            events.c.memory_id == memory.id, events.c.client_token == client_token
                        )
                    )
                ).first()
                if found is not None:
                    if found.actor_id != actor or found.session_id != session:
                        raise Conflict(
                            "clientToken was used for another event: use a new token for a new event"
                        )
                    return _event(found), False
            if name is not None:
                root = await self._check_branch(conn, memory.id, actor, session, name, root)
            row = {
                "id": f"{int(now * 1000):013d}#{uuid.uuid4().hex[:16]}",
                "memory_id": memory.id,
                "actor_id": actor,
                "session_id": session,
                "ts": float(timestamp),
                "seq": time.time_ns(),
                "branch": name,
                "root_event_id": root,
                "payload": orjson.dumps(items).decode(),
                "metadata": orjson.dumps(meta).decode(),
                "extract": extract,
                "client_token": client_token,
                "expires": now + memory.event_expiry_days * 86400,
            }
            await conn.execute(sa.insert(events).values(**row))
        return _event(Row(row)), True

    async def _check_branch(
        self, conn: Any, memory_id: str, actor: str, session: str, name: str, root: Any
    ) -> str | None:
        same_session = (
            events.c.memory_id == memory_id,
            events.c.actor_id == actor,
            events.c.session_id == session,
        )
        existing = (
            await conn.execute(
                sa.select(events.c.root_event_id).where(*same_session, events.c.branch == name).limit(1)
            )
        ).first()
        if existing is not None:
            if root is not None and root != existing.root_event_id:
                raise Invalid(
                    f"branch {name!r} already starts at event {existing.root_event_id}; name that root, "
                    "or pick a new branch name to fork from event " + str(root)
                )
            return str(existing.root_event_id) if existing.root_event_id else None
        if root is None:
            raise Invalid(
                f"branch {name!r} does not exist in session {session}: start it with branch.rootEventId, "
                "the event it forks from"
            )
        found = (await conn.execute(sa.select(events.c.id).where(*same_session, events.c.id == root))).first()
        if found is None:
            raise Invalid(
                f"branch.rootEventId {root!r} is not an event of actor {actor} in session {session}: "
                "fork from one of that session's events"
            )
        return str(root)

    async def get(self, memory_id: str, actor_id: str, session_id: str, event_id: str) -> Event:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(events).where(
                        events.c.memory_id == memory_id,
                        events.c.actor_id == actor_id,
                        events.c.session_id == session_id,
                        events.c.id == event_id,
                        events.c.expires > self.clock(),
                    )
                )
            ).first()
        if row is None:
            raise NotFound(
                f"memory {memory_id} has no event {event_id} for actor {actor_id} in session {session_id}"
            )
        return _event(row)

    async def many(self, memory_id: str, event_ids: Sequence[str]) -> list[Event]:
        """Events by id, oldest first (what a job or a record's sources name)."""
        if not event_ids:
            return []
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(events)
                .where(events.c.memory_id == memory_id, events.c.id.in_(list(event_ids)))
                .order_by(events.c.ts, events.c.seq)
            )
            return [_event(r) for r in rows]

    async def delete(self, memory_id: str, actor_id: str, session_id: str, event_id: str) -> str:
        async with self.db.write() as conn:
            done = await conn.execute(
                sa.delete(events).where(
                    events.c.memory_id == memory_id,
                    events.c.actor_id == actor_id,
                    events.c.session_id == session_id,
                    events.c.id == event_id,
                )
            )
        if not done.rowcount:
            raise NotFound(
                f"memory {memory_id} has no event {event_id} for actor {actor_id} in session {session_id}"
            )
        return event_id

    async def listing(
        self,
        memory_id: str,
        actor_id: str,
        session_id: str,
        *,
        include_payloads: bool = True,
        filter: Mapping[str, Any] | None = None,
        max_results: Any = None,
        next_token: str | None = None,
    ) -> Page:
        size = page_size(max_results, 20, 100)
        start = offset(next_token)
        where = [
            events.c.memory_id == memory_id,
            events.c.actor_id == actor_id,
            events.c.session_id == session_id,
            events.c.expires > self.clock(),
        ]
        branch = (filter or {}).get("branch")
        wanted_meta = list((filter or {}).get("eventMetadata") or [])
        async with self.db.read() as conn:
            if branch:
                name = check_part(branch.get("name"), "filter.branch.name")
                on_branch = events.c.branch == name
                if branch.get("includeParentBranches"):
                    root = (
                        await conn.execute(
                            sa.select(events.c.root_event_id).where(*where, on_branch).limit(1)
                        )
                    ).first()
                    if root is not None and root.root_event_id:
                        at = (
                            await conn.execute(
                                sa.select(events.c.ts, events.c.seq).where(events.c.id == root.root_event_id)
                            )
                        ).first()
                        if at is not None:
                            on_branch = sa.or_(
                                on_branch,
                                sa.and_(
                                    events.c.branch.is_(None),
                                    sa.or_(
                                        events.c.ts < at.ts,
                                        sa.and_(events.c.ts == at.ts, events.c.seq <= at.seq),
                                    ),
                                ),
                            )
                where.append(on_branch)
            query = sa.select(events).where(*where).order_by(events.c.ts.desc(), events.c.seq.desc())
            if not wanted_meta:
                query = query.offset(start).limit(size + 1)
            else:  # (metadata is matched here: over the session's newest MAX_SCANNED events at most)
                filters = _as_record_filters(wanted_meta)
                query = query.with_only_columns(*(c for c in events.c if c.name != "payload")).limit(
                    MAX_SCANNED
                )
            rows = list(await conn.execute(query))
            if wanted_meta:
                chosen = [r.id for r in rows if matches(orjson.loads(r.metadata), filters)][
                    start : start + size + 1
                ]
                by_id = (
                    {r.id: r for r in await conn.execute(sa.select(events).where(events.c.id.in_(chosen)))}
                    if chosen
                    else {}
                )
                rows = [by_id[i] for i in chosen if i in by_id]
        found = [_event(r, include_payloads) for r in rows]
        more = len(found) > size
        return Page(items=found[:size], next_token=token(start + size) if more else None)

    async def actors(self, memory_id: str, max_results: Any = None, next_token: str | None = None) -> Page:
        size, start = page_size(max_results, 20, 100), offset(next_token)
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    sa.select(events.c.actor_id)
                    .where(events.c.memory_id == memory_id, events.c.expires > self.clock())
                    .group_by(events.c.actor_id)
                    .order_by(events.c.actor_id)
                    .offset(start)
                    .limit(size + 1)
                )
            )
        return Page(
            items=[r.actor_id for r in rows[:size]],
            next_token=token(start + size) if len(rows) > size else None,
        )

    async def sessions(
        self, memory_id: str, actor_id: str, max_results: Any = None, next_token: str | None = None
    ) -> Page:
        """The actor's sessions, newest first, each with when its first event came."""
        size, start = page_size(max_results, 20, 100), offset(next_token)
        first = sa.func.min(events.c.ts).label("created")
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    sa.select(events.c.session_id, first)
                    .where(
                        events.c.memory_id == memory_id,
                        events.c.actor_id == actor_id,
                        events.c.expires > self.clock(),
                    )
                    .group_by(events.c.session_id)
                    .order_by(first.desc(), events.c.session_id)
                    .offset(start)
                    .limit(size + 1)
                )
            )
        items = [(r.session_id, r.created) for r in rows[:size]]
        return Page(items=items, next_token=token(start + size) if len(rows) > size else None)

    async def expire(self) -> int:
        async with self.db.write() as conn:
            done = await conn.execute(sa.delete(events).where(events.c.expires <= self.clock()))
        return int(done.rowcount or 0)

    async def forget_memory(self, conn: Any, memory_id: str) -> None:
        await conn.execute(sa.delete(events).where(events.c.memory_id == memory_id))


def _as_record_filters(filters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Event metadata filters (EQUALS_TO, EXISTS, NOT_EXISTS) in the records' filter form."""
    out = []
    for i, f in enumerate(filters):
        key = (f.get("left") or {}).get("metadataKey") if isinstance(f, dict) else None
        op = f.get("operator") if isinstance(f, dict) else None
        if not isinstance(key, str) or op not in ("EQUALS_TO", "EXISTS", "NOT_EXISTS"):
            raise Invalid(
                f"filter.eventMetadata[{i}] needs left.metadataKey and EQUALS_TO, EXISTS or NOT_EXISTS"
            )
        if op == "EQUALS_TO" and not isinstance((f.get("right") or {}).get("metadataValue"), dict):
            raise Invalid(
                f"filter.eventMetadata[{i}] with EQUALS_TO needs right.metadataValue {{stringValue: ...}}"
            )
        out.append(dict(f))
    return out
