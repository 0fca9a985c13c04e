"""One gateway's tools, searchable: memory's hybrid index (BM25 and vectors, fused; ADR 0045)
over each tool's name, description, parameters and target.

The index follows the gateway's catalog one tool at a time: :meth:`ToolIndex.sync` puts the tools
that are new or changed and removes those that are gone, so a target added or a pin approved is
found by its words at once; its vector follows when the embedder has computed it (a tool without
one yet ranks by BM25 alone).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from gateway.core.catalog import CatalogSnapshot
from gateway.search._vectors import Vector, Vectors, digest
from memory import Hit, Index

NAMESPACE = "tools"
_SPLIT = re.compile(r"___|[_\-./:\s]+|(?<=[a-z0-9])(?=[A-Z])")
EMBEDDED_TEXT = 300  # characters of a description the embedding reads
_NOISE = re.compile(r"\]\([^)]*\)|https?://\S+|> \[!\w+\]|[`*>\[\]\"]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")

Mode = Literal["fused", "vector", "bm25"]
# One tool as the index reads it: (published name, what says it is unchanged, target, its MCP Tool).
Listed = tuple[str, object, str, Callable[[], Mapping[str, Any]]]
# BM25's share of a fused search: tools whose words carry a fifth of the request's idf weight,
# counting only words some tool holds (a request's names and values, "acme/api", match none).
# On tests/search/queries.json recall@5 fused: 0.649 with memory's gate (a half, every word
# counted), 0.693 counting known words only, 0.698 with a fifth of them.
COVERAGE = 0.2


def listed(snapshot: CatalogSnapshot, targets: Container[str] = ()) -> Iterator[Listed]:
    """A catalog's tools as the index reads them, but those of ``targets`` (the gateway's own)."""
    for name, entry in snapshot.tools.items():
        if entry.provider.id not in targets:
            yield name, entry.spec, entry.provider.id, entry.wire


def words(name: str) -> str:
    """A tool or parameter name as words: ``issues_list-for-repo`` -> ``issues list for repo``."""
    return " ".join(w.lower() for w in _SPLIT.split(name) if w)


def clean(description: str) -> str:
    """A description without what every tool's shares: links, notes' markup, code quotes."""
    return re.sub(r"\s+", " ", _NOISE.sub(" ", description)).strip()


def texts(tool: Mapping[str, Any], target: str) -> tuple[str, str]:
    """What BM25 reads of a tool (its name twice, title, first sentences, parameter names and
    target), and what the embedding reads (its title and first two sentences).

    Long API descriptions go on about tokens, scopes and pagination in words every tool shares;
    read whole, they drown what the tool is for (recall@5 on tests/search/queries.json: 0.62
    fused with whole descriptions, 0.65 with these)."""
    name = str(tool.get("name", ""))
    title = str(tool.get("title") or "")
    sentences = _SENTENCE.split(clean(str(tool.get("description") or "")))
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    parameters = [words(str(key)) for key in properties] if isinstance(properties, Mapping) else []
    meta = tool.get("_meta")
    tags = meta.get("tags") if isinstance(meta, Mapping) else None
    tag_words = [str(t) for t in tags] if isinstance(tags, list) else []
    named = words(name.split("___", 1)[-1])
    lexical = " ".join([named, named, title, *sentences[:3], *parameters, *tag_words, words(target)])
    semantic = f"{title or named}. {' '.join(sentences[:2])[:EMBEDDED_TEXT]}"
    return lexical, semantic


class ToolIndex:
    """The tools of one gateway (every tenant's gateway has its own)."""

    def __init__(self, vectors: Vectors) -> None:
        self.vectors = vectors
        self.index = Index(vectors.dim)
        self._zero: Vector = np.zeros(vectors.dim, dtype=np.float32)
        self._seen: dict[str, tuple[str, str]] = {}  # name -> (digest of the tool, its semantic text)
        self._lexical: dict[str, str] = {}
        self._vectored: set[str] = set()
        self._tokens: dict[str, object] = {}
        self.synced: object = None

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def has_vectors(self) -> bool:
        return bool(self._vectored)

    def live_keys(self) -> set[str]:
        """The digests of the texts whose vectors the index's tools have now (see Vectors.keep)."""
        seen, vectored = list(self._seen.items()), set(self._vectored)  # (copied whole: a sync may run)
        return {digest(semantic) for name, (_, semantic) in seen if name in vectored}

    def sync(self, snapshot: object, tools: Iterable[Listed]) -> list[str]:
        """Make the index hold exactly ``tools`` (as ``snapshot`` lists them: not read again for
        the snapshot last synced); returns the names whose vectors are still to compute.

        A tool whose ``token`` is the object it had last time (a provider's unchanged ToolSpec)
        is not read again; others are read (``make``) and indexed again only when their texts
        changed."""
        if snapshot is self.synced:
            return self.pending()
        wanted: set[str] = set()
        for name, token, target, make in tools:
            wanted.add(name)
            if self._tokens.get(name) is token:
                continue
            lexical, semantic = texts(make(), target)
            key = digest(lexical + "\0" + semantic)
            self._tokens[name] = token
            if self._seen.get(name, ("", ""))[0] == key:
                continue
            known = self.vectors.known(digest(semantic))
            self.index.put(name, NAMESPACE, lexical, known if known is not None else self._zero)
            self._seen[name], self._lexical[name] = (key, semantic), lexical
            if known is not None:
                self._vectored.add(name)
            else:
                self._vectored.discard(name)
        for name in [n for n in self._seen if n not in wanted]:
            self.index.remove(name)
            del self._seen[name], self._lexical[name], self._tokens[name]
            self._vectored.discard(name)
        self.synced = snapshot
        return self.pending()

    def pending(self) -> list[str]:
        """The tools still without a vector."""
        if len(self._vectored) == len(self._seen):  # (every tool has its vector: the usual case)
            return []
        return [n for n in self._seen if n not in self._vectored]

    def to_embed(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """Which of ``names`` still want a vector: (name, the text to embed)."""
        return [(n, self._seen[n][1]) for n in names if n in self._seen and n not in self._vectored]

    def vectored(self, wanted: list[tuple[str, str]], found: Sequence[Vector]) -> None:
        """Give the tools of ``wanted`` their vectors (those unchanged meanwhile)."""
        for (name, semantic), vector in zip(wanted, found, strict=True):
            if self._seen.get(name, ("", ""))[1] == semantic:
                self.index.put(name, NAMESPACE, self._lexical[name], vector)
                self._vectored.add(name)

    async def fill(self, names: Iterable[str]) -> None:
        """Compute the vectors of ``names`` (those still in the index when they are ready).

        Raises:
            EmbedderError: the embedder failed.
        """
        wanted = self.to_embed(names)
        if wanted:
            self.vectored(wanted, await self.vectors.embed([semantic for _, semantic in wanted]))

    def search(
        self,
        query: str,
        vector: Vector | None,
        k: int,
        allow: Callable[[str], bool] | None = None,
        mode: Mode = "fused",
    ) -> list[Hit]:
        """The ``k`` best tools for ``query`` that ``allow`` passes. Without a query vector, or
        before any tool has one, BM25 ranks alone."""
        if vector is None or not self._vectored:
            mode = "bm25"
        vector = self._zero if vector is None else vector
        return self.index.search(
            query, vector, k=k, allow=allow, mode=mode, coverage=COVERAGE, unseen_count=False
        )
