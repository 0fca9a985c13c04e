"""Memory (ADR 0045) through `switchboard serve`, driven with boto3 as AgentCore's clients are.

Prints, with the baseline measured in the same run (GetMemory: a signed call through the same
front that reads one row and does nothing else):

  ingestion         CreateEvent calls per second (one client, in turns)
      baseline:     GetMemory calls per second
  retrieval 10k     RetrieveMemoryRecords p50 / p99 over 10,000 records   [p50 <= 20 ms at 100k]
  retrieval 100k    the same over 100,000 records
      baseline:     GetMemory p50 / p99
  extraction        from CreateEvent to the record found by RetrieveMemoryRecords, p50 / p99,
                    with a scripted model on loopback that answers at once  [p50 <= 5 s]
  also:             the local embedder's texts per second, and the first search's index load

The records are distinct sentences made from templates; their vectors are computed with the local
model once and kept in bench/.cache (the first run spends minutes on that), then written to the
database before the gateway starts, the way a restart finds them.

    python bench/memory.py [--records 10000,100000] [--queries 200] [--extractions 20]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import boto3
import httpx2
import numpy as np
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.context import query_encoder  # noqa: E402
from memory import LocalEmbedder  # noqa: E402
from tests.e2e.harness import Served, serve  # noqa: E402
from tests.support.memory_model import MemoryModel  # noqa: E402
from tests.support.model_server import serve_model  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
UNTHROTTLED = {"SWITCHBOARD_AGENTCORE_RATE": "1000000/minute"}  # (the default would throttle the bench)
REGION = "us-west-2"
SUBJECTS = [
    "The user",
    "Their manager",
    "The user's sister",
    "The support team",
    "Their landlord",
    "The new client",
]
VERBS = [
    "prefers",
    "asked about",
    "booked",
    "cancelled",
    "complained about",
    "recommended",
    "paid for",
    "forgot",
]
OBJECTS = [
    "a window seat",
    "green tea",
    "the quarterly report",
    "a dentist appointment",
    "the Lisbon trip",
    "a vegetarian menu",
    "the VPN outage",
    "a new laptop",
    "the rent increase",
    "piano lessons",
    "the Python migration",
    "a hotel near the station",
    "the insurance claim",
    "weekly standups",
]
WHEN = ["on Monday", "last week", "in March", "every morning", "after the meeting", "twice", "again", "today"]


def _sentences(n: int) -> list[str]:
    rng = random.Random(7)
    combos = list(itertools.product(SUBJECTS, VERBS, OBJECTS, WHEN))
    rng.shuffle(combos)
    out = []
    for i in range(n):
        s, v, o, w = combos[i % len(combos)]
        out.append(f"{s} {v} {o} {w} (note {i}).")
    return out


def _vectors(texts: list[str]) -> tuple[np.ndarray, float]:
    """The texts' vectors (cached), and the embedder's texts per second when it had to compute."""
    embedder = LocalEmbedder()
    key = hashlib.sha256((embedder.name + "\n".join(texts)).encode()).hexdigest()[:16]
    path = CACHE / f"memory-{len(texts)}-{key}.npy"
    if path.exists():
        return np.load(path), 0.0
    CACHE.mkdir(exist_ok=True)
    began = time.perf_counter()
    vectors = anyio.run(embedder.embed, texts)
    rate = len(texts) / (time.perf_counter() - began)
    np.save(path, vectors)
    return vectors, rate


def _seed(url: str, memory_id: str, texts: list[str], vectors: np.ndarray) -> None:
    """Write records the way the service stores them (rows and the change log)."""
    import sqlalchemy as sa
    from sqlalchemy import create_engine

    from memory._schema import changes, records

    engine = create_engine(url.replace("+aiosqlite", ""))
    now = time.time()
    name = LocalEmbedder().name
    with engine.begin() as conn:
        for start in range(0, len(texts), 5000):
            rows = [
                {
                    "id": f"mem-{uuid.uuid4()}",
                    "memory_id": memory_id,
                    "strategy_id": "self-managed",
                    "namespace": "/bench/",
                    "actor_id": None,
                    "session_id": None,
                    "content": texts[i],
                    "metadata": "{}",
                    "sources": "{}",
                    "vector": vectors[i].astype(np.float32).tobytes(),
                    "embedder": name,
                    "created": now,
                    "updated": now,
                    "expires": None,
                }
                for i in range(start, min(start + 5000, len(texts)))
            ]
            conn.execute(sa.insert(records), rows)
            conn.execute(sa.insert(changes), [{"memory_id": memory_id, "record_id": r["id"]} for r in rows])
    engine.dispose()


def _key(served: Served) -> dict[str, str]:
    made = httpx2.post(
        f"{served.base}/admin/v1/aws-keys", json={"subject": "bench"}, headers=served.admin_headers
    )
    made.raise_for_status()
    return dict(made.json())


def _clients(base: str, key: dict[str, str]) -> tuple[Any, Any]:
    session = boto3.Session(
        region_name=REGION,
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret_access_key"],
    )
    config = Config(retries={"max_attempts": 1}, max_pool_connections=4)
    control = session.client(
        "bedrock-agentcore-control", endpoint_url=f"{base}/aws/agentcore-control", config=config
    )
    data = session.client("bedrock-agentcore", endpoint_url=f"{base}/aws/agentcore", config=config)
    return control, data


def _ms(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values) * 1000, values[min(len(values) - 1, int(len(values) * 0.99))] * 1000


def _timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return out


def _retrieval(sizes: list[int], queries: int) -> None:
    for size in sizes:
        texts = _sentences(size)
        vectors, rate = _vectors(texts)
        if rate:
            print(f"  local embedder     {rate:8.0f} texts/s (computing {size:,} vectors for the cache)")
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            with serve(data, env=UNTHROTTLED) as served:  # first start: makes the database and tables
                key = _key(served)
                control, _ = _clients(served.base, key)
                memory_id = control.create_memory(name=f"bench{size}", eventExpiryDuration=30)["memory"]["id"]
            _seed(f"sqlite:///{data / 'switchboard.db'}", memory_id, texts, vectors)
            with serve(data, env=UNTHROTTLED) as served:  # a restart finds them, as after a deploy
                control, client = _clients(served.base, key)
                ask = [
                    "what did the user book?",
                    "green tea",
                    "problems with the VPN",
                    "the rent",
                    "a trip to Portugal",
                ]
                began = time.perf_counter()
                client.retrieve_memory_records(
                    memoryId=memory_id, namespace="/bench/", searchCriteria={"searchQuery": "first"}
                )
                load = time.perf_counter() - began
                encoder = query_encoder(served)
                times = _timed(
                    lambda client=client, memory_id=memory_id, ask=ask: client.retrieve_memory_records(
                        memoryId=memory_id,
                        namespace="/bench/",
                        searchCriteria={"searchQuery": random.choice(ask), "topK": 10},
                    ),
                    queries,
                )
                base = _timed(lambda c=control, m=memory_id: c.get_memory(memoryId=m), queries)
                p50, p99 = _ms(times)
                b50, b99 = _ms(base)
                print(
                    f"  retrieval {size // 1000:>3}k     p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
                    f"   ({p50 / b50:4.1f}x GetMemory)   first search (index load) {load:5.2f} s"
                    f"   queries in {encoder}"
                )
                print(f"      baseline       p50 {b50:6.1f} ms  p99 {b99:6.1f} ms   GetMemory")


def _ingestion_and_extraction(events: int, extractions: int) -> None:
    brain = MemoryModel(facts={"note": ["The user keeps notes."]})
    with serve_model(brain.script()) as model, tempfile.TemporaryDirectory() as tmp:
        env = {
            **UNTHROTTLED,
            "SWITCHBOARD_MEMORY_MODEL": "openai:scripted",
            "SWITCHBOARD_MEMORY_MODEL_URL": model.url + "/v1",
        }
        with serve(Path(tmp) / "data", env=env) as served:
            control, client = _clients(served.base, _key(served))
            plain = control.create_memory(name="ingest", eventExpiryDuration=30)["memory"]["id"]
            payload = [
                {"conversational": {"content": {"text": "hello there, this is a turn"}, "role": "USER"}}
            ]
            stamp = time.time()
            took = _timed(
                lambda: client.create_event(
                    memoryId=plain, actorId="a", sessionId="s", eventTimestamp=stamp, payload=payload
                ),
                events,
            )
            base = _timed(lambda: control.get_memory(memoryId=plain), events)
            rate, base_rate = events / sum(took), events / sum(base)
            print(
                f"  ingestion          {rate:8.0f} events/s"
                f"   ({rate / base_rate:4.2f}x GetMemory's {base_rate:.0f} calls/s)"
            )

            strategy = [
                {"semanticMemoryStrategy": {"name": "facts", "namespaces": ["/facts/{actorId}/{sessionId}/"]}}
            ]
            mid = control.create_memory(name="extract", eventExpiryDuration=30, memoryStrategies=strategy)[
                "memory"
            ]["id"]
            lags = []
            for i in range(extractions):
                session = f"s{i}"
                began = time.perf_counter()
                text = [
                    {"conversational": {"content": {"text": f"I keep a note number {i}."}, "role": "USER"}}
                ]
                client.create_event(
                    memoryId=mid, actorId="a", sessionId=session, eventTimestamp=time.time(), payload=text
                )
                while not client.retrieve_memory_records(
                    memoryId=mid, namespace=f"/facts/a/{session}/", searchCriteria={"searchQuery": "notes"}
                )["memoryRecordSummaries"]:
                    time.sleep(0.01)
                lags.append(time.perf_counter() - began)
            p50, p99 = _ms(lags)
            print(
                f"  extraction         p50 {p50 / 1000:6.2f} s   p99 {p99 / 1000:6.2f} s"
                "   (event to retrievable record; the 0.5 s batch window included, the model answers at once)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--extractions", type=int, default=20)
    args = parser.parse_args()
    print("memory through switchboard serve (boto3, SigV4)")
    _ingestion_and_extraction(args.events, args.extractions)
    _retrieval([int(s) for s in args.records.split(",") if s], args.queries)
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
