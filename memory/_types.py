"""Memory's errors and the shapes it answers in.

The shapes are AgentCore Memory's own (camelCase on the wire, through pydantic aliases), so the
AgentCore front hands them over as they are and the library's own callers read them as models.

Errors, by who caused them::

    MemoryServiceError
    ├── NotFound          a memory, event, record or job that does not exist (for this tenant)
    ├── Invalid           bad input: names the field and what would be accepted
    ├── Conflict          a name taken, a client token reused with other input
    └── Unavailable       a part is not configured or not running (no model, no embedder)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class MemoryServiceError(Exception):
    """Memory could not do what was asked; the message says what and how to fix it."""


class NotFound(MemoryServiceError):
    pass


class Invalid(MemoryServiceError):
    pass


class Conflict(MemoryServiceError):
    pass


class Unavailable(MemoryServiceError):
    pass


class Shape(BaseModel):
    """A wire shape: camelCase names, ``None`` fields left out when dumped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


StrategyType = Literal["SEMANTIC", "SUMMARIZATION", "USER_PREFERENCE", "EPISODIC", "CUSTOM"]
Override = Literal["SEMANTIC_OVERRIDE", "SUMMARY_OVERRIDE", "USER_PREFERENCE_OVERRIDE", "EPISODIC_OVERRIDE"]
OVERRIDDEN: dict[Override, StrategyType] = {  # what a custom strategy's override makes it do
    "SEMANTIC_OVERRIDE": "SEMANTIC",
    "SUMMARY_OVERRIDE": "SUMMARIZATION",
    "USER_PREFERENCE_OVERRIDE": "USER_PREFERENCE",
    "EPISODIC_OVERRIDE": "EPISODIC",
}


def iso(ts: float) -> str:
    """A time (seconds since the epoch) as ISO 8601 in UTC, ``Z`` at the end: how memory's times
    are shown to people and models (the wire keeps the seconds)."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class Strategy(Shape):
    """One long-term strategy of a memory: what it extracts, where records go, with which prompts."""

    strategy_id: str
    name: str
    description: str | None = None
    type: StrategyType
    override: Override | None = None  # CUSTOM: the built-in strategy whose steps it overrides
    namespaces: list[str]
    reflection_namespaces: list[str] = Field(default_factory=list)  # EPISODIC: cross-episode lessons
    extraction_prompt: str | None = None  # CUSTOM: the operator's instructions, appended
    consolidation_prompt: str | None = None
    model_id: str | None = None  # CUSTOM: another model than the memory service's own
    record_expiry_days: int | None = None
    status: str = "ACTIVE"
    created_at: float
    updated_at: float

    @property
    def kind(self) -> StrategyType:
        """What it extracts: a custom strategy does what the built-in it overrides does."""
        return self.type if self.override is None else OVERRIDDEN[self.override]


class MemoryView(Shape):
    """A memory resource."""

    id: str
    tenant: str
    name: str
    description: str | None = None
    event_expiry_days: int
    strategies: list[Strategy]
    status: str = "ACTIVE"
    created_at: float
    updated_at: float

    def strategy(self, strategy_id: str) -> Strategy:
        for found in self.strategies:
            if found.strategy_id == strategy_id:
                return found
        raise NotFound(f"memory {self.id} has no strategy {strategy_id!r}")


class Branch(Shape):
    name: str
    root_event_id: str | None = None


class Event(Shape):
    """One short-term event: what an actor's session said or did, in order."""

    memory_id: str
    actor_id: str
    session_id: str
    event_id: str
    event_timestamp: float
    payload: list[dict[str, Any]]
    branch: Branch | None = None
    metadata: dict[str, dict[str, str]] | None = None


class Record(Shape):
    """One long-term record, with where it came from (``sources``: events and the job)."""

    memory_record_id: str
    content: dict[str, str]  # {"text": ...}
    memory_strategy_id: str
    namespaces: list[str]
    created_at: float
    timestamp: float | None = None
    metadata: dict[str, dict[str, Any]] | None = None
    expires_at: float | None = None
    score: float | None = None
    actor_id: str | None = Field(default=None, exclude=True)
    session_id: str | None = Field(default=None, exclude=True)
    sources: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @property
    def text(self) -> str:
        return self.content.get("text", "")


class Job(Shape):
    """An extraction job: the events of one session, run through the memory's strategies."""

    job_id: str
    memory_id: str
    actor_id: str
    session_id: str
    strategy_id: str | None = None
    status: Literal["PENDING", "RUNNING", "COMPLETED", "FAILED"]
    event_ids: list[str]
    attempts: int
    failure_reason: str | None = None
    created_at: float
    updated_at: float


class Page(BaseModel):
    """One page of a listing, and the token for the next (None: the last page)."""

    items: list[Any]
    next_token: str | None = None
