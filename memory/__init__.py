"""memory: a peer of the gateway (see ARCHITECTURE.md); it never imports `gateway`.

Short-term events and long-term records for agents, AgentCore Memory's model: memories with
strategies, events per actor and session (with branches), extraction by a model into records
that keep their sources, hybrid retrieval (BM25 and local embeddings, fused). ADR 0045.
"""

from memory._direct import SELF_MANAGED
from memory._embed import ApiEmbedder, Embedder, EmbedderError, LocalEmbedder, local_available
from memory._index import Hit, Index, terms
from memory._llm import ModelError, ModelSettings
from memory._service import MemoryService
from memory._types import (
    Conflict,
    Event,
    Invalid,
    Job,
    MemoryServiceError,
    MemoryView,
    NotFound,
    Page,
    Record,
    Strategy,
    Unavailable,
    iso,
)

__all__ = [
    "SELF_MANAGED",
    "ApiEmbedder",
    "Conflict",
    "Embedder",
    "EmbedderError",
    "Event",
    "Hit",
    "Index",
    "Invalid",
    "Job",
    "LocalEmbedder",
    "MemoryService",
    "MemoryServiceError",
    "MemoryView",
    "ModelError",
    "ModelSettings",
    "NotFound",
    "Page",
    "Record",
    "Strategy",
    "Unavailable",
    "iso",
    "local_available",
    "terms",
]
