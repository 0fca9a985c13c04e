"""Tool search (ADR 0047): a gateway's tools found by a natural-language query, so a client
is sent the few it needs instead of all of them.

- ``SearchProvider``: the search tool, a provider in the gateway's own catalog.
- ``ToolIndex``: one gateway's tools in memory's hybrid index (BM25 and embeddings, fused).
- ``Vectors``: tool texts' embeddings, shared by the process's gateways and kept on disk.
- ``CodeModeProvider``: code mode, a program over the gateway's tools run in a sandbox.
"""

from gateway.search._index import ToolIndex, listed, texts, words
from gateway.search._program import RUN, STUBS, CodeModeProvider, identifier, stub
from gateway.search._provider import CODE_TARGET, TARGET, SearchProvider, listed_always
from gateway.search._trim import CURSOR, Trimmed
from gateway.search._vectors import Vectors, keep_daily

__all__ = [
    "CODE_TARGET",
    "CURSOR",
    "RUN",
    "STUBS",
    "TARGET",
    "CodeModeProvider",
    "SearchProvider",
    "ToolIndex",
    "Trimmed",
    "Vectors",
    "identifier",
    "keep_daily",
    "listed",
    "listed_always",
    "stub",
    "texts",
    "words",
]
