"""The labelled query set (queries.json) over GitHub's REST API and the connectors, and recall@k
of the tool search over it; used by tests/search/test_recall.py and bench/context.py.

The gateway under evaluation is a real one: the hub builds it from GitHub's REST document
(npm @octokit/openapi, 1,223 tools) and every built-in connector (83 tools), and the index reads
the tools exactly as the gateway publishes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import GatewaySpec
from gateway.connectors import catalog
from gateway.core.catalog import public_name
from gateway.hub import Hub, LiveGateway
from gateway.search import TARGET, ToolIndex, Vectors, listed
from memory import LocalEmbedder

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".tools" / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
QUERIES = Path(__file__).with_name("queries.json")
UNREACHABLE = "http://127.0.0.1:9"  # (nothing is called: the tools are only listed)


@dataclass(frozen=True)
class Query:
    text: str
    answers: frozenset[str]  # published tool names


def gateway_spec(name: str = "catalog", search: dict[str, Any] | None = None) -> GatewaySpec:
    """GitHub's REST API as an OpenAPI target, and every built-in connector."""
    targets: list[dict[str, Any]] = [
        {"name": "github_api", "kind": "openapi", "spec": str(GITHUB), "base_url": UNREACHABLE}
    ]
    for connector in catalog().entries:
        targets.append(
            {"name": connector, "kind": "connector", "connector": connector, "base_url": UNREACHABLE}
        )
    return GatewaySpec.model_validate(
        {"name": name, "search": search or {"enabled": True}, "targets": targets}
    )


def queries() -> list[Query]:
    raw = json.loads(QUERIES.read_text())
    out = []
    for item in raw["queries"]:
        published = frozenset(public_name(*answer.split("/", 1)) for answer in item["answers"])
        out.append(Query(item["query"], published))
    return out


@asynccontextmanager
async def catalog_gateway(vectors: Vectors | None = None) -> Iterator[tuple[Hub, LiveGateway]]:  # type: ignore[misc]
    """The hub serving the evaluation gateway (tenant ``default``)."""
    async with Hub(vectors=vectors) as hub:
        await hub.apply("default", [gateway_spec()])
        gateway = hub.get("default", "catalog")
        assert gateway is not None
        yield hub, gateway


async def filled_index(gateway: LiveGateway, vectors: Vectors) -> ToolIndex:
    """A tool index of the gateway's tools, every vector computed."""
    index = ToolIndex(vectors)
    pending = index.sync(gateway.snapshot, listed(gateway.snapshot, (TARGET,)))
    await index.fill(pending)
    return index


async def recall(
    index: ToolIndex, embedder: LocalEmbedder, items: list[Query]
) -> dict[str, dict[int, float]]:
    """recall@1 and recall@5 for each ranking: a query counts when any of its answers is in the
    top k. The tools' vectors are float32, the queries' int8 where ONNX Runtime is installed."""
    embedder.prepare_queries()  # (queries as serve embeds them: the int8 encoder, ADR 0048)
    vectors = [await embedder.embed_query(q.text) for q in items]
    scores: dict[str, dict[int, float]] = {}
    for mode in ("bm25", "vector", "fused"):
        found = {1: 0, 5: 0}
        for query, vector in zip(items, vectors, strict=True):
            hits = [h.record_id for h in index.search(query.text, vector, 5, mode=mode)]  # type: ignore[arg-type]
            for k in found:
                found[k] += bool(query.answers & set(hits[:k]))
        scores[mode] = {k: n / len(items) for k, n in found.items()}
    return scores
