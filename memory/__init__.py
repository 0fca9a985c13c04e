"""memory: a peer of the gateway (see ARCHITECTURE.md); it never imports `gateway`.

Short-term events and long-term records for agents, AgentCore Memory's model: memories with
strategies, events per actor and session (with branches), extraction by a model into records
that keep their sources, hybrid retrieval (BM25 and local embeddings, fused). ADR 0045.
"""

import os

# numpy's OpenBLAS threads and fork() deadlock: a process forked (a sandbox started, with
# start_new_session, so not vfork) while another thread multiplies matrices waits forever in
# OpenBLAS's fork handler. Embeddings run in worker threads beside the event loop that starts
# sandboxes, so the library's BLAS stays in the calling thread (set before numpy loads; a
# process that set it already keeps its own value). ADR 0047.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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
