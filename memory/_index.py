"""The hybrid in-memory index over long-term records: cosine similarity and BM25, fused.

Records live in the database; every process keeps one :class:`Index` per memory, rebuilt from
the rows at start and then changed one record at a time (:meth:`Index.put`,
:meth:`Index.remove`), so both halves are built to change cheaply:

- **Vectors**: per namespace a float32 matrix stored dimension-major, ``(dim, capacity)``; the
  capacity doubles when full, a removed record's column is marked free and reused. A search is one
  ``query @ matrix`` (BLAS gemv) over the used columns, then ``argpartition`` for the top ones.
  Dimension-major because gemv over it measured about twice as fast here as over record-major rows.
- **BM25** (k1=1.2, b=0.75): per namespace an inverted index, term -> parallel numpy arrays
  (rows, term frequencies) grown by doubling, deleted by moving the last entry into the hole.
  Scoring touches only the postings of the query's terms, vectorised per term. bm25s was not
  used because it builds a static sparse matrix: adding or removing one record means rebuilding
  it, and records change one at a time here.

The two rankings are fused by reciprocal rank fusion (k=60) over the top ``max(50, 5k)`` of
each, so a record found by only one side still ranks. In fused search BM25 lists only records
that match at least half of the query's idf weight (see ``MIN_COVERAGE``): a lone common word is
no evidence, and would otherwise outvote the nearest vector. The score a :class:`Hit` carries is
its cosine similarity clipped to [0, 1], the number callers show.

Filters run before top-k: the caller's ``allow`` is asked about candidates in rank order until
enough pass, so ``k`` results come back whenever ``k`` allowed records exist, and ``allow`` is
called on few records, not on all.

Not thread-safe: :meth:`Index.put`, :meth:`Index.remove` and :meth:`Index.search` must all be
called from one thread (the event loop's); nothing here awaits, so no lock is needed there.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Hit", "Index", "terms"]

K1 = 1.2
B = 0.75
RRF_K = 60
# In fused search, BM25 ranks only records matching query terms that carry at least this share of
# the query's idf weight (Lucene's minimum_should_match, weighted by idf). Without it, on questions
# phrased unlike the record that answers them, a record sharing one common word ("usually",
# "first") takes BM25's first rank and with it as much fused credit as the nearest vector: on the
# recall set in tests/memory, recall@1 fell from 0.84 (vectors alone) to 0.55; with it, 0.82.
MIN_COVERAGE = 0.5

_Floats = npt.NDArray[np.float32]
_Ints = npt.NDArray[np.int32]
_Positions = npt.NDArray[np.intp]

# --- the tokeniser -------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_STOPWORDS = """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves
    anything everything something ever know remember please tell"""
STOPWORDS = frozenset(_STOPWORDS.split())
_VOWELS = frozenset("aeiouy")
_NO_UNDOUBLE = frozenset("lsz")  # "falling" -> "fall", "missed" -> "miss", "buzzing" -> "buzz"


@functools.lru_cache(maxsize=1 << 16)  # (a vocabulary is small next to the words indexed)
def _stem(word: str) -> str:
    """A light suffix stemmer: plurals, -ing, -ed, then a final -e.

    Deliberately crude (no Porter/Snowball dependency, and both a record and its query go through
    the same function, so only consistency matters): "hiking", "hikes", "hiked" and "hike" all
    become "hik"; "policies" and "policy" become "policy"; "running" becomes "run".
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "ches", "shes", "zes")) or (word.endswith("ses") and len(word) > 4):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ied") and len(word) > 4:
        word = word[:-3] + "y"
    else:
        for suffix in ("ing", "ed"):
            stem = word[: -len(suffix)]
            if word.endswith(suffix) and len(stem) >= 3 and _VOWELS.intersection(stem):
                word = stem
                if len(word) > 3 and word[-1] == word[-2] and word[-1] not in _VOWELS | _NO_UNDOUBLE:
                    word = word[:-1]
                break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Split ``text`` into BM25 terms: case-folded Unicode words, minus stopwords, lightly stemmed.

    Single letters are dropped ("user's" -> "user", "don't" -> "don"); single digits are kept.

    Args:
        text: Any text.

    Returns:
        The terms in order, repeats included (interned strings, cheap to keep in many records).
    """
    out: list[str] = []
    for word in _WORD.findall(text.casefold()):
        if word in STOPWORDS or (len(word) == 1 and not word.isdigit()):
            continue
        out.append(sys.intern(_stem(word)))
    return out


# --- the index ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result.

    Attributes:
        record_id: The record's id.
        score: Its cosine similarity to the query, clipped to [0, 1]. Results are ordered by the
            fused rank, so scores need not decrease down the list.
    """

    record_id: str
    score: float


class _Postings:
    """One term's postings in one partition: rows and term frequencies, unordered."""

    __slots__ = ("n", "rows", "tfs")

    def __init__(self) -> None:
        self.rows: _Ints = np.empty(4, dtype=np.int32)
        self.tfs: _Floats = np.empty(4, dtype=np.float32)
        self.n = 0

    def add(self, row: int, tf: int) -> None:
        if self.n == self.rows.shape[0]:
            self.rows = np.resize(self.rows, 2 * self.n)
            self.tfs = np.resize(self.tfs, 2 * self.n)
        self.rows[self.n] = row
        self.tfs[self.n] = tf
        self.n += 1

    def discard(self, row: int) -> None:
        at = int(np.flatnonzero(self.rows[: self.n] == row)[0])
        self.n -= 1
        self.rows[at] = self.rows[self.n]
        self.tfs[at] = self.tfs[self.n]
        if 16 < 4 * self.n < self.rows.shape[0]:  # shrink after mass deletes
            self.rows = self.rows[: 2 * self.n].copy()
            self.tfs = self.tfs[: 2 * self.n].copy()


@dataclass(slots=True)
class _Partition:
    """Everything about one namespace's records, addressed by row."""

    vectors: _Floats  # (dim, capacity), dimension-major
    lengths: _Floats  # (capacity,) document lengths in terms
    ids: list[str | None] = field(default_factory=list)  # row -> record id, None where free
    row_terms: list[tuple[str, ...]] = field(default_factory=list)  # row -> its distinct terms
    free: list[int] = field(default_factory=list)
    postings: dict[str, _Postings] = field(default_factory=dict)
    total_length: int = 0

    @property
    def live(self) -> int:
        return len(self.ids) - len(self.free)

    def scores(self, query: _Floats) -> _Floats:
        """Cosine of every used row to ``query``; -inf for free rows."""
        used = len(self.ids)
        result = np.asarray(query @ self.vectors[:, :used], dtype=np.float32)
        if self.free:
            result[np.asarray(self.free, dtype=np.intp)] = -np.inf
        return result


class Index:
    """Records' vectors and terms, partitioned by namespace, searched by fused rank.

    Args:
        dim: The vectors' length.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._parts: dict[str, _Partition] = {}
        self._where: dict[str, tuple[str, int]] = {}  # record id -> (namespace, row)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._where

    def put(self, record_id: str, namespace: str, text: str, vector: npt.ArrayLike) -> None:
        """Add a record, or replace the one with the same id (its namespace may change).

        Args:
            record_id: The record's id, unique across namespaces.
            namespace: The record's namespace; each distinct one is a partition.
            text: The text BM25 indexes.
            vector: Its embedding, ``(dim,)``; normalised here, so any non-zero length works.

        Raises:
            ValueError: The vector has the wrong shape or is not finite.
        """
        v = self._unit(vector, f"vector for {record_id!r}")
        where = self._where.get(record_id)
        if where is not None and where[0] == namespace:
            part, row = self._parts[namespace], where[1]
            self._unindex_terms(part, row)
        else:
            if where is not None:
                self.remove(record_id)
            part = self._parts.get(namespace) or self._new_partition(namespace)
            row = self._take_row(part)
            part.ids[row] = record_id
            self._where[record_id] = (namespace, row)
        part.vectors[:, row] = v
        self._index_terms(part, row, terms(text))

    def remove(self, record_id: str) -> None:
        """Forget a record (from both rankings); an unknown id is ignored.

        Args:
            record_id: The record's id.
        """
        where = self._where.pop(record_id, None)
        if where is None:
            return
        namespace, row = where
        part = self._parts[namespace]
        self._unindex_terms(part, row)
        part.ids[row] = None
        part.vectors[:, row] = 0.0
        part.free.append(row)
        if part.live == 0:
            del self._parts[namespace]

    def search(
        self,
        query: str,
        vector: npt.ArrayLike,
        *,
        k: int,
        namespaces: Callable[[str], bool] | None = None,
        allow: Callable[[str], bool] | None = None,
        mode: Literal["fused", "vector", "bm25"] = "fused",
        coverage: float = MIN_COVERAGE,
        unseen_count: bool = True,
    ) -> list[Hit]:
        """The ``k`` best records for a query, by reciprocal rank fusion of cosine and BM25.

        Args:
            query: The query's text, for BM25.
            vector: The query's embedding, ``(dim,)``.
            k: How many hits at most.
            namespaces: Which partitions to search, by namespace (all when None).
            allow: Which records may be returned, by id (all when None); applied before the
                top-k cut.
            mode: ``"fused"`` (the default); ``"vector"`` or ``"bm25"`` rank by one side alone,
                for evaluation (BM25 alone is not coverage-gated, and returns only records that
                share a term with the query).
            coverage: In fused search, the share of the query's idf weight a record's matched
                terms must carry for BM25 to rank it (``MIN_COVERAGE``).
            unseen_count: Whether query terms no record holds count in that weight (they do for
                questions about records; a tool search leaves out the names and values a request
                carries, which no tool's text holds).

        Returns:
            Up to ``k`` hits, best first.

        Raises:
            ValueError: The vector has the wrong shape or is not finite.
        """
        if k <= 0:
            return []
        parts = [p for ns, p in self._parts.items() if namespaces is None or namespaces(ns)]
        if not parts:
            return []
        q = self._unit(vector, "query vector")
        depth = max(50, 5 * k)

        # One flat view over the selected partitions: global position = offset + row.
        offsets = [0]
        for p in parts:
            offsets.append(offsets[-1] + len(p.ids))

        ids = parts[0].ids if len(parts) == 1 else list(chain.from_iterable(p.ids for p in parts))

        verdicts: dict[int, bool] = {}  # position -> allowed, shared by both rankings

        def keep(position: int) -> bool:
            verdict = verdicts.get(position)
            if verdict is None:
                rid = ids[position]
                verdict = verdicts[position] = rid is not None and (allow is None or allow(rid))
            return verdict

        cosines = np.concatenate([p.scores(q) for p in parts]) if len(parts) > 1 else parts[0].scores(q)
        live = sum(p.live for p in parts)
        rankings: list[list[int]] = []
        if mode != "bm25":
            rankings.append(_top(cosines, None, depth, keep, live))
        if mode != "vector":
            gate = coverage if mode == "fused" else 0.0
            positions, bm25 = self._bm25(parts, offsets, terms(query), gate, unseen_count)
            rankings.append(_top(bm25, positions, depth, keep, bm25.shape[0]))

        fused: dict[int, float] = {}
        for ranking in rankings:
            for rank, position in enumerate(ranking, start=1):
                fused[position] = fused.get(position, 0.0) + 1.0 / (RRF_K + rank)
        # Ties (a record first in one ranking, another first in the other) go to the closer vector.
        best = sorted(fused, key=lambda pos: (-fused[pos], -float(cosines[pos])))[:k]
        return [Hit(str(ids[pos]), min(1.0, max(0.0, float(cosines[pos])))) for pos in best]

    # --- internals

    def _unit(self, vector: npt.ArrayLike, what: str) -> _Floats:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape != (self.dim,):
            raise ValueError(f"{what} has {v.shape[0]} dimensions, the index {self.dim}")
        norm = float(np.linalg.norm(v))
        if not math.isfinite(norm):
            raise ValueError(f"{what} holds a NaN or infinity")
        return v / np.float32(norm) if norm > 0 else v

    def _new_partition(self, namespace: str) -> _Partition:
        part = _Partition(np.zeros((self.dim, 8), dtype=np.float32), np.zeros(8, dtype=np.float32))
        self._parts[namespace] = part
        return part

    @staticmethod
    def _take_row(part: _Partition) -> int:
        if part.free:
            return part.free.pop()
        row = len(part.ids)
        capacity = part.vectors.shape[1]
        if row == capacity:
            grown = np.zeros((part.vectors.shape[0], 2 * capacity), dtype=np.float32)
            grown[:, :capacity] = part.vectors
            part.vectors = grown
            part.lengths = np.concatenate([part.lengths, np.zeros(capacity, dtype=np.float32)])
        part.ids.append(None)
        part.row_terms.append(())
        return row

    @staticmethod
    def _index_terms(part: _Partition, row: int, words: list[str]) -> None:
        counts = Counter(words)
        for term, tf in counts.items():
            postings = part.postings.get(term)
            if postings is None:
                postings = part.postings[term] = _Postings()
            postings.add(row, tf)
        part.row_terms[row] = tuple(counts)
        part.lengths[row] = len(words)
        part.total_length += len(words)

    @staticmethod
    def _unindex_terms(part: _Partition, row: int) -> None:
        for term in part.row_terms[row]:
            postings = part.postings[term]
            postings.discard(row)
            if postings.n == 0:
                del part.postings[term]
        part.row_terms[row] = ()
        part.total_length -= int(part.lengths[row])
        part.lengths[row] = 0

    @staticmethod
    def _bm25(
        parts: list[_Partition], offsets: list[int], words: list[str], coverage: float, unseen: bool = True
    ) -> tuple[_Positions, _Floats]:
        """BM25 over the selected partitions as one corpus: (positions, scores) of the matches
        whose terms carry at least ``coverage`` of the query's idf weight.

        Statistics (document count, average length, document frequencies) are summed over the
        selected partitions, so a namespace-prefix search scores as if its records stood alone.
        A query term no record contains still counts in the query's weight, with the largest idf
        (unless ``unseen`` is False).
        """
        unique = list(dict.fromkeys(words))
        count = sum(p.live for p in parts)
        scores = np.zeros(offsets[-1], dtype=np.float32)
        if not unique or count == 0:
            return np.zeros(0, dtype=np.intp), scores[:0]
        covered = np.zeros(offsets[-1], dtype=np.float32)  # idf weight of the matched terms
        weight = 0.0
        average = max(sum(p.total_length for p in parts) / count, 1.0)
        for term in unique:
            found = [(i, p.postings[term]) for i, p in enumerate(parts) if term in p.postings]
            df = sum(postings.n for _, postings in found)
            idf = math.log(1.0 + (count - df + 0.5) / (df + 0.5))
            weight += idf if df or unseen else 0.0
            for i, postings in found:
                rows = postings.rows[: postings.n]
                tf = postings.tfs[: postings.n]
                norm = np.float32(K1 * (1 - B)) + np.float32(K1 * B / average) * parts[i].lengths[rows]
                at = rows + offsets[i] if offsets[i] else rows
                # A row occurs once in a term's postings, so fancy-index += adds correctly.
                scores[at] += np.float32(idf * (K1 + 1)) * tf / (tf + norm)
                covered[at] += np.float32(idf)
        # (float32 sums of the same idfs may differ from the float64 weight in the last bit)
        matched = covered >= np.float32(max(coverage * weight * (1 - 1e-6), 1e-9))
        positions = np.flatnonzero(matched)
        return positions, scores[positions]


def _top(
    scores: _Floats, positions: _Positions | None, n: int, keep: Callable[[int], bool], valid: int
) -> list[int]:
    """The positions of the ``n`` best-scoring entries that ``keep`` accepts, best first.

    ``positions`` maps entries of ``scores`` to global positions (None: the identity). At most
    ``valid`` entries are finite (the rest are -inf). Candidates are drawn in slices growing
    fourfold, so ``keep`` is asked about little more than what is returned.
    """
    total = scores.shape[0]
    valid = min(valid, total)
    taken: list[int] = []
    seen: set[int] = set()  # ties may reorder between slices: never look at an entry twice
    neg = -scores
    size = n
    while valid > 0:
        size = min(size, valid)
        head = np.argpartition(neg, size - 1)[:size] if size < total else np.arange(total)
        head = head[np.argsort(neg[head], kind="stable")]
        head = head[neg[head] != np.inf]
        for position in (head if positions is None else positions[head]).tolist():
            if position in seen:
                continue
            seen.add(position)
            if keep(position):
                taken.append(position)
                if len(taken) == n:
                    return taken
        if size == valid:
            break
        size *= 4
    return taken
