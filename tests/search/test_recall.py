"""recall@1 and recall@5 of the tool search over the labelled query set (queries.json: 205
natural requests over GitHub's REST API and the connectors, with the tools that answer them), for
BM25 alone, embeddings alone and both fused, as the gateway ranks them.

The figures are printed (``pytest -s``) and held to the floors measured when the set was written,
so a change that makes the search find less fails here. ADR 0047 records the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.search import Vectors
from memory import LocalEmbedder, local_available
from tests.search.recall import GITHUB, catalog_gateway, filled_index, queries, recall
from tests.support.tools import need

pytestmark = pytest.mark.anyio

# Measured on the set as written (ADR 0047); the goal, 0.9 at 5 fused, is not met yet.
FLOORS = {"bm25": (0.33, 0.62), "vector": (0.32, 0.59), "fused": (0.36, 0.67)}


async def test_recall_over_the_labelled_queries(tmp_path: Path) -> None:
    need(GITHUB.exists(), "GitHub's REST API document (npm @octokit/openapi)")
    problem = local_available()
    assert problem is None, problem
    items = queries()
    assert len(items) >= 150
    embedder = LocalEmbedder()
    vectors = Vectors(embedder, tmp_path / "vectors.db")
    async with catalog_gateway(vectors) as (_, gateway):
        assert len(gateway.snapshot.tools) == 1223 + 83 + 1  # (and the search tool)
        index = await filled_index(gateway, vectors)
        scores = await recall(index, embedder, items)
    assert embedder.query_encoder == "int8"  # (make install brings ONNX Runtime: as serve searches)
    print("\nrecall over", len(items), "queries:", scores)
    for mode, (at1, at5) in FLOORS.items():
        assert scores[mode][1] >= at1 and scores[mode][5] >= at5, (mode, scores[mode])
    assert (
        scores["fused"][5] >= max(scores["bm25"][5], scores["vector"][5]) - 0.02
    )  # (fusing never loses much)
