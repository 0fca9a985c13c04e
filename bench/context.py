"""Context economy (ADR 0047): tool search and code mode, through `switchboard serve`.

Catalogs are GitHub's REST API (npm @octokit/openapi, 1,223 tools) once, and eight times over
under eight target names (9,784 tools), each gateway with a function tool beside it. Prints:

  search p50/p99     switchboard_search through serve and an MCP client, at 1k and 10k tools
                     [p50 <= 5 ms at 10k]; baseline: the same gateway's function tool called
                     the same way, in turns of ten with the searches; and the same calls as
                     serve's spans timed them (a search answers 8-170 KB of definitions, which
                     the client reads and validates: a share of the first figure)
  index              the whole index built from a catalog (words; then vectors computed, and
                     read back from the data directory as a restart does), one tool added, and
                     where a search's time goes: ranking in process, and embedding the query
                     (float32, as texts are; int8, as serve embeds queries: ADR 0048) (the
                     eight copies share their texts, so the 10k build computes few vectors)
  tool context       tokens of tools/list a session is sent: full, and progressive (the search
                     tool and nothing pinned) [<= 5k tokens progressive, whatever the catalog]
  code mode          tokens a model reads and writes for one task (open bugs counted across three
                     repositories): four direct calls, against one program; each with the tool
                     definitions it is sent

Tokens are estimated as characters / 4 (no model's tokenizer can be fetched here).

    python bench/context.py [--searches 300]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import GatewaySpec  # noqa: E402
from gateway.hub import Hub  # noqa: E402
from gateway.search import TARGET, ToolIndex, Vectors, listed  # noqa: E402
from memory import LocalEmbedder  # noqa: E402
from tests.e2e.harness import Served, serve  # noqa: E402
from tests.search.recall import GITHUB, queries  # noqa: E402

COPIES = {"1k": 1, "10k": 8}
READY = "the int8 encoder is built"  # (serve's log line: queries are embedded in int8 from then on)
FX = {"name": "fx", "kind": "function", "functions": ["tests.fixtures.functions:add"]}
TRACKER = ["list_repositories", "list_issues", "delete_repository"]
PROGRAM = """counts = {}
for repo in (await tools.tracker___list_repositories(org="acme"))["result"]:
    issues = (await tools.tracker___list_issues(repo=repo, state="open"))["result"]
    counts[repo] = sum("bug" in i["labels"] for i in issues)
counts"""


def query_encoder(served: Served) -> str:
    """Wait until ``served`` embeds queries with its int8 encoder (ADR 0048: built, or read from
    its cache, seconds after the start or the first query), as it does from then on; the encoder
    its queries use now ("float32" when no int8 one comes within a minute)."""
    if any(READY in line for line in served.output):
        return "int8"
    try:
        served.reader.until(re.compile(READY), time.monotonic() + 60)
    except (TimeoutError, RuntimeError):
        return "float32"
    return "int8"


def tokens(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return len(text) // 4


def _targets(copies: int) -> list[dict[str, Any]]:
    return [
        {"name": f"gh{i}", "kind": "openapi", "spec": str(GITHUB), "base_url": "http://127.0.0.1:9"}
        for i in range(copies)
    ]


def _yaml(copies: int, name: str, search: str) -> str:
    """One gateway of the configuration: the function tool (the baseline) and the catalog."""
    targets = [FX, *_targets(copies)]
    return f"  - name: {name}\n    search: {search}\n    targets: {json.dumps(targets)}\n"


async def _all_tools(client: Client) -> list[dict[str, Any]]:
    """Every page of tools/list, as the client is sent them."""
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += [t.model_dump(by_alias=True, exclude_none=True) for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return tools


def _stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def index_rows(data: Path) -> dict[str, float]:
    """Index build and update times, in process, on the data directory serve will use."""
    rows: dict[str, float] = {}
    embedder = LocalEmbedder()
    for size, copies in COPIES.items():
        spec = GatewaySpec.model_validate(
            {"name": "g", "search": {"enabled": True}, "targets": _targets(copies)}
        )
        async with Hub() as hub:
            await hub.apply("default", [spec])
            gateway = hub.get("default", "g")
            assert gateway is not None
            tools = list(listed(gateway.snapshot, (TARGET,)))
            for run, path in (
                ("computed", data / "tool-vectors.db"),
                ("read back", data / "tool-vectors.db"),
            ):
                index = ToolIndex(Vectors(embedder, path))
                began = time.perf_counter()
                pending = index.sync(gateway.snapshot, tools)
                words = time.perf_counter() - began
                await index.fill(pending)
                rows[f"build {size}: words (s)"] = words
                rows[f"build {size}: vectors {run} (s)"] = time.perf_counter() - began - words
            asked = [q.text for q in queries()][:100]
            vectors = await embedder.embed(asked)
            ranked = []
            for query, vector in zip(asked, vectors, strict=True):
                began = time.perf_counter()
                index.search(query, vector, 5)
                ranked.append((time.perf_counter() - began) * 1000)
            rows[f"rank {size}: p50 in process (ms)"] = statistics.median(ranked)
            if size == "1k":
                embedder.prepare_queries()
                for encoder in ("float32", "int8"):
                    embedded = []
                    for query in asked:
                        began = time.perf_counter()
                        if encoder == "int8":
                            await embedder.embed_query(query)
                        else:
                            await embedder.embed([query])
                        embedded.append((time.perf_counter() - began) * 1000)
                    rows[f"embed one query, {encoder}: p50 (ms)"] = statistics.median(embedded)
            one = {"name": "desk___ticket", "description": "Open a support ticket for a customer"}
            began = time.perf_counter()
            added = ("desk___ticket", one, "desk", functools.partial(dict, one))
            await index.fill(index.sync(object(), [*tools, added]))
            rows[f"update {size}: one tool added (ms)"] = (time.perf_counter() - began) * 1000
    return rows


async def serve_rows(data: Path, searches: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    config = data.parent / "switchboard.yaml"
    text = "gateways:\n" + "".join(_yaml(c, f"full{s}", "{enabled: true}") for s, c in COPIES.items())
    text += "".join(_yaml(c, f"slim{s}", "{progressive: true}") for s, c in COPIES.items())
    functions = ", ".join(f"tests.fixtures.issue_tracker:{t}" for t in TRACKER)
    text += "  - name: tracker\n    code_mode: {enabled: true}\n    targets:\n"
    text += f"      - {{name: tracker, kind: function, functions: [{functions}]}}\n"
    config.write_text(text)
    asked = [q.text for q in queries()]
    with serve(data, config) as served:
        # (the first searches would embed in float32 until it is built)
        rows["query encoder"] = await anyio.to_thread.run_sync(query_encoder, served)
        for size in COPIES:
            async with Client(served.gateway(f"full{size}"), mode="legacy") as client:
                rows[f"tool context {size}: full"] = tokens(await _all_tools(client))
                for query in asked[:20]:
                    await client.call_tool("switchboard_search", {"query": query})
                found, baseline = [], []
                for turn in range(searches // 10):
                    for query in asked[turn * 10 % len(asked) :][:10]:
                        began = time.perf_counter()
                        await client.call_tool("switchboard_search", {"query": query})
                        found.append((time.perf_counter() - began) * 1000)
                    for _ in range(10):
                        began = time.perf_counter()
                        await client.call_tool("fx___add", {"a": 1})
                        baseline.append((time.perf_counter() - began) * 1000)
                rows[f"search {size}"], rows[f"call {size}"] = _stats(found), _stats(baseline)
            async with Client(served.gateway(f"slim{size}"), mode="legacy") as client:
                rows[f"tool context {size}: progressive"] = tokens(await _all_tools(client))
        async with Client(served.gateway("tracker"), mode="legacy") as client:
            definitions = await _all_tools(client)
            direct_tools = [d for d in definitions if d["name"].startswith("tracker___")]
            spent = tokens(direct_tools)
            calls: list[tuple[str, dict[str, Any]]] = [("tracker___list_repositories", {"org": "acme"})]
            calls += [
                ("tracker___list_issues", {"repo": r, "state": "open"})
                for r in ("acme/api", "acme/web", "acme/cli")
            ]
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                spent += tokens({"name": name, "arguments": arguments}) + tokens(
                    [c.model_dump() for c in result.content]
                )
            rows["code mode: direct calls"] = spent
            run = [d for d in definitions if d["name"] == "switchboard_run_program"]
            result = await client.call_tool("switchboard_run_program", {"code": PROGRAM})
            assert not result.is_error, result
            rows["code mode: one program"] = (
                tokens(run) + tokens(PROGRAM) + tokens([c.model_dump() for c in result.content])
            )
    rows.update(served_rows(data, searches))
    return rows


def served_rows(data: Path, searches: int) -> dict[str, tuple[float, float]]:
    """The same searches and calls as serve's own spans timed them (from the request read to
    its answer: without the client's work or the HTTP exchange), the last ``searches`` of each."""
    rows: dict[str, tuple[float, float]] = {}
    with contextlib.closing(sqlite3.connect(data / "switchboard.db")) as db:
        for size in COPIES:
            for tool, row in (("switchboard_search", "served search"), ("fx___add", "served call")):
                found = db.execute(
                    "SELECT end_ns - start_ns FROM sb_spans WHERE gateway = ? AND tool = ? AND "
                    "parent_id IS NULL ORDER BY start_ns",
                    (f"full{size}", tool),
                ).fetchall()
                rows[f"{row} {size}"] = _stats([ns / 1e6 for (ns,) in found[-searches:]])
    return rows


def latency(rows: dict[str, Any], title: str, prefix: str) -> None:
    """Search p50/p99 at each size, against the function tool's call (``prefix``: whose timing)."""
    print(f"{title:38} {'p50 ms':>8} {'p99 ms':>8} {'x call':>7}")
    for size in COPIES:
        (p50, p99), (b50, _) = rows[f"{prefix}search {size}"], rows[f"{prefix}call {size}"]
        print(f"{'search ' + size + ' tools':38} {p50:8.2f} {p99:8.2f} {p50 / b50:7.2f}")
        print(f"{'  baseline: function tool call':38} {b50:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=300)
    args = parser.parse_args()
    if not GITHUB.exists():
        raise SystemExit("GitHub's REST document is missing: make tools")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        index = anyio.run(index_rows, data)
        rows = anyio.run(serve_rows, data, args.searches)
    print(f"\ncontext economy: search and code mode through serve (2 cores; queries {rows['query encoder']})")
    latency(rows, "row", "")
    print(f"\n{'index':38} {'value':>8}")
    for name, value in index.items():
        print(f"{name:38} {value:8.2f}")
    print(f"\n{'tool context (tokens, chars/4)':38} {'tokens':>8}")
    for size in COPIES:
        full, slim = rows[f"tool context {size}: full"], rows[f"tool context {size}: progressive"]
        print(f"{size + ' tools: full':38} {full:8d}")
        print(f"{size + ' tools: progressive':38} {slim:8d}  ({slim / full:.4f} of full)")
    print()
    latency(rows, "search, as serve timed it (its spans)", "served ")
    direct, program = rows["code mode: direct calls"], rows["code mode: one program"]
    print(f"\n{'code mode task (tokens, chars/4)':38} {'tokens':>8}")
    print(f"{'four direct calls':38} {direct:8d}")
    print(f"{'one program':38} {program:8d}  ({program / direct:.2f} of direct)")


if __name__ == "__main__":
    main()
