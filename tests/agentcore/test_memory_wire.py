"""AgentCore Memory through a real ``switchboard serve`` (gateway/agentcore/_memory.py): boto3's
bedrock-agentcore-control and bedrock-agentcore clients and the SDK's ``MemoryClient``, unchanged,
signed with a real access key. No extraction model is configured here: memories without
strategies, short-term events, directly written records and their (local, real) retrieval work;
a strategy is refused, naming the setting that would allow it. A second process has a model
configured (never asked: no conversation is extracted there), to show strategies as the SDK reads
them back."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import boto3
import httpx2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.harness import Served, create_tenant, serve

REGION = "us-west-2"
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("memory")
    with serve(root / "data", env={"SWITCHBOARD_MEMORY_MODEL": ""}) as served:
        yield served


def _key(live: Served, headers: dict[str, str] | None = None) -> dict[str, str]:
    made = httpx2.post(
        f"{live.base}/admin/v1/aws-keys", json={"subject": "ci"}, headers=headers or live.admin_headers
    )
    assert made.status_code == 201, made.text
    body = made.json()
    return {"aws_access_key_id": body["access_key_id"], "aws_secret_access_key": body["secret_access_key"]}


class Clients:
    """One tenant's boto3 clients of both planes."""

    def __init__(self, live: Served, key: dict[str, str]) -> None:
        self.session = boto3.Session(
            aws_access_key_id=key["aws_access_key_id"],
            aws_secret_access_key=key["aws_secret_access_key"],
            region_name=REGION,
        )
        self.control = self.session.client(
            "bedrock-agentcore-control", endpoint_url=f"{live.base}/aws/agentcore-control", config=NO_RETRY
        )
        self.data = self.session.client(
            "bedrock-agentcore", endpoint_url=f"{live.base}/aws/agentcore", config=NO_RETRY
        )

    def sdk(self) -> Any:
        """The SDK's ``MemoryClient``, its boto3 clients pointed at this process."""
        with warnings.catch_warnings():  # (the SDK declares a pydantic model the old way)
            warnings.simplefilter("ignore", DeprecationWarning)
            from bedrock_agentcore.memory import MemoryClient

        client = MemoryClient(region_name=REGION, boto3_session=self.session)
        client.gmcp_client = self.control
        client.gmdp_client = self.data
        return client


@pytest.fixture(scope="module")
def aws(live: Served) -> Clients:
    return Clients(live, _key(live))


@pytest.fixture(scope="module")
def memory_id(aws: Clients) -> str:
    made = aws.control.create_memory(name="shared", eventExpiryDuration=30, description="for the data plane")
    return str(made["memory"]["id"])


def _refused(call: Callable[[], Any]) -> tuple[str, int, str]:
    try:
        call()
    except ClientError as exc:
        error = exc.response["Error"]
        return error["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"], error.get("Message", "")
    raise AssertionError("the call was not refused")


def _said(*turns: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"conversational": {"content": {"text": text}, "role": role}} for text, role in turns]


# -- the control plane -----------------------------------------------------------------------------


def test_a_memory_without_strategies_is_made_read_listed_updated_and_deleted(aws: Clients) -> None:
    made = aws.control.create_memory(
        name="notes", eventExpiryDuration=7, description="first", clientToken="t1"
    )
    memory = made["memory"]
    assert memory["status"] == "ACTIVE" and memory["strategies"] == []
    assert memory["id"].startswith("notes-") and memory["name"] == "notes"
    assert memory["arn"].startswith(f"arn:aws:bedrock-agentcore:{REGION}:")
    assert memory["arn"].endswith(f":memory/{memory['id']}")
    assert isinstance(memory["createdAt"], datetime) and memory["eventExpiryDuration"] == 7
    again = aws.control.create_memory(name="notes", eventExpiryDuration=7, clientToken="t1")
    assert again["memory"]["id"] == memory["id"]  # (the same request again: the same memory)
    code, status, message = _refused(lambda: aws.control.create_memory(name="notes", eventExpiryDuration=7))
    assert (code, status) == ("ValidationException", 400) and "'notes' already exists" in message

    got = aws.control.get_memory(memoryId=memory["id"])["memory"]
    assert (got["description"], got["status"]) == ("first", "ACTIVE")
    listed = aws.control.list_memories()["memories"]
    assert {"id": memory["id"], "arn": memory["arn"], "status": "ACTIVE"}.items() <= next(
        m for m in listed if m["id"] == memory["id"]
    ).items()

    changed = aws.control.update_memory(memoryId=memory["id"], description="second", eventExpiryDuration=30)
    assert (changed["memory"]["description"], changed["memory"]["eventExpiryDuration"]) == ("second", 30)
    assert aws.control.get_memory(memoryId=memory["id"])["memory"]["description"] == "second"

    gone = aws.control.delete_memory(memoryId=memory["id"])
    assert (gone["memoryId"], gone["status"]) == (memory["id"], "DELETING")
    code, status, _ = _refused(lambda: aws.control.get_memory(memoryId=memory["id"]))
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert memory["id"] not in [m["id"] for m in aws.control.list_memories()["memories"]]


def test_memories_are_listed_a_page_at_a_time(aws: Clients) -> None:
    ids = {
        aws.control.create_memory(name=f"paged{i}", eventExpiryDuration=3)["memory"]["id"] for i in range(3)
    }
    seen: list[str] = []
    token: str | None = None
    while True:
        page = aws.control.list_memories(maxResults=2, **({"nextToken": token} if token else {}))
        assert len(page["memories"]) <= 2
        seen += [m["id"] for m in page["memories"]]
        token = page.get("nextToken")
        if not token:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen))


def test_a_strategy_needs_a_model_and_says_which_setting_gives_one(aws: Clients) -> None:
    semantic = [{"semanticMemoryStrategy": {"name": "facts"}}]
    code, status, message = _refused(
        lambda: aws.control.create_memory(name="smart", eventExpiryDuration=30, memoryStrategies=semantic)
    )
    assert (code, status) == ("ServiceUnavailableException", 503)
    assert "SWITCHBOARD_MEMORY_MODEL" in message and "facts" in message
    assert "smart" not in [m["id"].rsplit("-", 1)[0] for m in aws.control.list_memories()["memories"]]

    plain = aws.control.create_memory(name="plain", eventExpiryDuration=30)["memory"]["id"]
    code, _, message = _refused(
        lambda: aws.control.update_memory(memoryId=plain, memoryStrategies={"addMemoryStrategies": semantic})
    )
    assert code == "ServiceUnavailableException" and "SWITCHBOARD_MEMORY_MODEL" in message
    assert aws.control.get_memory(memoryId=plain)["memory"]["strategies"] == []


def test_bad_memory_input_is_a_validation_error_that_names_it(aws: Clients) -> None:
    bad = [{"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/x/{userId}/"]}}]
    code, status, message = _refused(
        lambda: aws.control.create_memory(name="templated", eventExpiryDuration=30, memoryStrategies=bad)
    )
    assert (code, status) == ("ValidationException", 400)
    assert "{userId}" in message and "namespaceTemplates" in message
    code, _, message = _refused(lambda: aws.control.create_memory(name="long", eventExpiryDuration=1000))
    assert code == "ValidationException" and "eventExpiryDuration" in message
    code, _, message = _refused(
        lambda: aws.control.create_memory(
            name="keyed", eventExpiryDuration=30, encryptionKeyArn="arn:aws:kms:us-west-2:123456789012:key/k"
        )
    )
    assert code == "ValidationException" and "encryptionKeyArn" in message
    for call in (
        lambda: aws.control.get_memory(memoryId="nosuch-ABCDEFGHIJ"),
        lambda: aws.control.update_memory(memoryId="nosuch-ABCDEFGHIJ", description="x"),
        lambda: aws.control.delete_memory(memoryId="nosuch-ABCDEFGHIJ"),
    ):
        code, status, _ = _refused(call)
        assert (code, status) == ("ResourceNotFoundException", 404)


# -- events ----------------------------------------------------------------------------------------


def test_events_are_kept_read_listed_and_deleted(aws: Clients, memory_id: str) -> None:
    first = aws.data.create_event(
        memoryId=memory_id,
        actorId="alice",
        sessionId="s1",
        eventTimestamp=T0,
        payload=_said(("I like green tea", "USER"), ("Noted!", "ASSISTANT")),
        metadata={"topic": {"stringValue": "drinks"}},
    )["event"]
    assert first["eventTimestamp"] == T0 and first["metadata"] == {"topic": {"stringValue": "drinks"}}
    blob = aws.data.create_event(
        memoryId=memory_id,
        actorId="alice",
        sessionId="s1",
        eventTimestamp=T0 + timedelta(seconds=1),
        payload=[{"blob": {"file": "notes.txt", "size": 12}}],
        extractionMode="SKIP",
    )["event"]
    assert blob["payload"] == [{"blob": {"file": "notes.txt", "size": 12}}]

    got = aws.data.get_event(memoryId=memory_id, actorId="alice", sessionId="s1", eventId=first["eventId"])
    assert got["event"]["payload"] == first["payload"]
    listed = aws.data.list_events(memoryId=memory_id, actorId="alice", sessionId="s1")["events"]
    assert [e["eventId"] for e in listed] == [blob["eventId"], first["eventId"]]  # (newest first)
    bare = aws.data.list_events(memoryId=memory_id, actorId="alice", sessionId="s1", includePayloads=False)
    assert all(e["payload"] == [] for e in bare["events"])
    drinks = aws.data.list_events(
        memoryId=memory_id,
        actorId="alice",
        sessionId="s1",
        filter={
            "eventMetadata": [
                {
                    "left": {"metadataKey": "topic"},
                    "operator": "EQUALS_TO",
                    "right": {"metadataValue": {"stringValue": "drinks"}},
                }
            ]
        },
    )["events"]
    assert [e["eventId"] for e in drinks] == [first["eventId"]]

    gone = aws.data.delete_event(memoryId=memory_id, actorId="alice", sessionId="s1", eventId=blob["eventId"])
    assert gone["eventId"] == blob["eventId"]
    code, status, _ = _refused(
        lambda: aws.data.get_event(
            memoryId=memory_id, actorId="alice", sessionId="s1", eventId=blob["eventId"]
        )
    )
    assert (code, status) == ("ResourceNotFoundException", 404)


def test_events_are_listed_a_page_at_a_time_and_actors_and_sessions_too(aws: Clients, memory_id: str) -> None:
    for i in range(5):
        aws.data.create_event(
            memoryId=memory_id,
            actorId="pager",
            sessionId=f"day{i % 2}",
            eventTimestamp=T0 + timedelta(minutes=i),
            payload=_said((f"message {i}", "USER")),
        )
    seen: list[str] = []
    token: str | None = None
    while True:
        page = aws.data.list_events(
            memoryId=memory_id,
            actorId="pager",
            sessionId="day0",
            maxResults=2,
            **({"nextToken": token} if token else {}),
        )
        seen += [e["payload"][0]["conversational"]["content"]["text"] for e in page["events"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == ["message 4", "message 2", "message 0"]

    aws.data.create_event(
        memoryId=memory_id, actorId="other", sessionId="x", eventTimestamp=T0, payload=_said(("hi", "USER"))
    )
    actors = aws.data.list_actors(memoryId=memory_id)["actorSummaries"]
    assert {"pager", "other"} <= {a["actorId"] for a in actors}
    sessions = aws.data.list_sessions(memoryId=memory_id, actorId="pager")["sessionSummaries"]
    assert sorted(s["sessionId"] for s in sessions) == ["day0", "day1"]
    assert all(s["actorId"] == "pager" and isinstance(s["createdAt"], datetime) for s in sessions)
    one = aws.data.list_sessions(memoryId=memory_id, actorId="pager", maxResults=1)
    assert len(one["sessionSummaries"]) == 1 and one["nextToken"]


def test_a_branch_forks_from_an_event_and_lists_with_its_parent(aws: Clients, memory_id: str) -> None:
    def said(text: str, minute: int, **more: Any) -> str:
        made = aws.data.create_event(
            memoryId=memory_id,
            actorId="bob",
            sessionId="trip",
            eventTimestamp=T0 + timedelta(minutes=minute),
            payload=_said((text, "USER")),
            **more,
        )
        return str(made["event"]["eventId"])

    root = said("let's go to Rome", 0)
    said("or maybe Paris", 1)
    forked = said("actually Lisbon", 2, branch={"name": "lisbon", "rootEventId": root})
    said("book the flight", 3, branch={"name": "lisbon"})

    def texts(**filters: Any) -> list[str]:
        events = aws.data.list_events(memoryId=memory_id, actorId="bob", sessionId="trip", **filters)[
            "events"
        ]
        return [e["payload"][0]["conversational"]["content"]["text"] for e in events]

    assert texts(filter={"branch": {"name": "lisbon"}}) == ["book the flight", "actually Lisbon"]
    assert texts(filter={"branch": {"name": "lisbon", "includeParentBranches": True}}) == [
        "book the flight",
        "actually Lisbon",
        "let's go to Rome",
    ]
    got = aws.data.get_event(memoryId=memory_id, actorId="bob", sessionId="trip", eventId=forked)["event"]
    assert got["branch"] == {"name": "lisbon", "rootEventId": root}

    code, status, message = _refused(
        lambda: said("nowhere", 4, branch={"name": "ghost", "rootEventId": "1#abcdef"})
    )
    assert (code, status) == ("ValidationException", 400) and "rootEventId" in message


def test_bad_event_input_is_refused_with_the_reason(aws: Clients, memory_id: str) -> None:
    big = [{"conversational": {"content": {"text": "x" * 100_000}, "role": "USER"}} for _ in range(11)]
    code, status, message = _refused(
        lambda: aws.data.create_event(
            memoryId=memory_id, actorId="alice", sessionId="big", eventTimestamp=T0, payload=big
        )
    )
    assert (code, status) == ("ValidationException", 400) and "bytes" in message
    code, status, _ = _refused(
        lambda: aws.data.create_event(
            memoryId="nosuch-ABCDEFGHIJ",
            actorId="a",
            sessionId="s",
            eventTimestamp=T0,
            payload=_said(("x", "USER")),
        )
    )
    assert (code, status) == ("ResourceNotFoundException", 404)
    code, _, _ = _refused(
        lambda: aws.data.list_events(memoryId=memory_id, actorId="a", sessionId="s", nextToken="junk")
    )
    assert code == "ValidationException"
    unmatched = {"eventMetadata": [{"left": {"metadataKey": "topic"}, "operator": "EQUALS_TO"}]}
    code, _, message = _refused(
        lambda: aws.data.list_events(memoryId=memory_id, actorId="alice", sessionId="s1", filter=unmatched)
    )
    assert code == "ValidationException" and "right.metadataValue" in message


def test_a_memory_arn_names_the_memory_on_the_data_plane(aws: Clients, memory_id: str) -> None:
    arn = aws.control.get_memory(memoryId=memory_id)["memory"]["arn"]
    made = aws.data.create_event(
        memoryId=arn, actorId="arn-user", sessionId="s", eventTimestamp=T0, payload=_said(("hello", "USER"))
    )
    assert made["event"]["memoryId"] == memory_id


# -- records ---------------------------------------------------------------------------------------

FACTS = {
    "tea": "Alice drinks green tea every morning before work",
    "dog": "Alice has a golden retriever called Biscuit",
    "job": "Alice works as a structural engineer designing bridges",
}


def _retrieve(aws: Clients, memory_id: str, query: str, namespace: str = "/facts/") -> list[dict[str, Any]]:
    found = aws.data.retrieve_memory_records(
        memoryId=memory_id, namespace=namespace, searchCriteria={"searchQuery": query, "topK": 3}
    )
    return list(found["memoryRecordSummaries"])


def test_records_are_written_found_changed_and_deleted(aws: Clients) -> None:
    memory_id = aws.control.create_memory(name="records", eventExpiryDuration=30)["memory"]["id"]
    made = aws.data.batch_create_memory_records(
        memoryId=memory_id,
        records=[
            {
                "requestIdentifier": name,
                "namespaces": [f"/facts/alice/{name}/" if name != "job" else "/work/alice/"],
                "content": {"text": text},
                "timestamp": T0,
                "metadata": {"kind": {"stringValue": name}},
            }
            for name, text in FACTS.items()
        ],
    )
    assert made["failedRecords"] == []
    ids = {r["requestIdentifier"]: r["memoryRecordId"] for r in made["successfulRecords"]}
    assert set(ids) == set(FACTS) and all(r["status"] == "SUCCEEDED" for r in made["successfulRecords"])

    hits = _retrieve(aws, memory_id, "what does she like to drink in the morning?")
    assert hits[0]["memoryRecordId"] == ids["tea"] and hits[0]["content"]["text"] == FACTS["tea"]
    assert "score" in hits[0] and ids["job"] not in [h["memoryRecordId"] for h in hits]  # (another namespace)
    pet = _retrieve(aws, memory_id, "her pet dog's name")
    assert pet[0]["memoryRecordId"] == ids["dog"]
    kinds = aws.data.retrieve_memory_records(
        memoryId=memory_id,
        namespacePath="/",
        searchCriteria={
            "searchQuery": "Alice",
            "metadataFilters": [
                {
                    "left": {"metadataKey": "kind"},
                    "operator": "EQUALS_TO",
                    "right": {"metadataValue": {"stringValue": "job"}},
                }
            ],
        },
    )["memoryRecordSummaries"]
    assert [r["memoryRecordId"] for r in kinds] == [ids["job"]]

    facts = aws.data.list_memory_records(memoryId=memory_id, namespace="/facts/alice/")[
        "memoryRecordSummaries"
    ]
    assert {r["memoryRecordId"] for r in facts} == {ids["tea"], ids["dog"]}
    page = aws.data.list_memory_records(memoryId=memory_id, maxResults=2)
    rest = aws.data.list_memory_records(memoryId=memory_id, maxResults=2, nextToken=page["nextToken"])
    assert len(page["memoryRecordSummaries"]) == 2 and len(rest["memoryRecordSummaries"]) == 1
    record = aws.data.get_memory_record(memoryId=memory_id, memoryRecordId=ids["dog"])["memoryRecord"]
    assert record["content"]["text"] == FACTS["dog"] and record["namespaces"] == ["/facts/alice/dog/"]
    assert record["metadata"] == {"kind": {"stringValue": "dog"}} and record["memoryStrategyId"]

    cat = "Alice adopted a black cat named Pepper"
    changed = aws.data.batch_update_memory_records(
        memoryId=memory_id,
        records=[
            {"memoryRecordId": ids["dog"], "timestamp": T0 + timedelta(days=1), "content": {"text": cat}},
            {"memoryRecordId": "mem-00000000-0000-0000-0000-000000000000", "timestamp": T0},
        ],
    )
    assert [r["memoryRecordId"] for r in changed["successfulRecords"]] == [ids["dog"]]
    assert len(changed["failedRecords"]) == 1
    assert _retrieve(aws, memory_id, "what is the name of her cat?")[0]["content"]["text"] == cat
    assert aws.data.get_memory_record(memoryId=memory_id, memoryRecordId=ids["dog"])["memoryRecord"][
        "content"
    ] == {"text": cat}

    assert (
        aws.data.delete_memory_record(memoryId=memory_id, memoryRecordId=ids["tea"])["memoryRecordId"]
        == ids["tea"]
    )
    assert ids["tea"] not in [
        h["memoryRecordId"] for h in _retrieve(aws, memory_id, "green tea in the morning")
    ]
    code, status, _ = _refused(
        lambda: aws.data.get_memory_record(memoryId=memory_id, memoryRecordId=ids["tea"])
    )
    assert (code, status) == ("ResourceNotFoundException", 404)

    deleted = aws.data.batch_delete_memory_records(
        memoryId=memory_id, records=[{"memoryRecordId": ids["dog"]}, {"memoryRecordId": ids["tea"]}]
    )
    assert [r["memoryRecordId"] for r in deleted["successfulRecords"]] == [ids["dog"]]
    assert [r["memoryRecordId"] for r in deleted["failedRecords"]] == [ids["tea"]]
    assert _retrieve(aws, memory_id, "her pet") == []


def test_bad_record_input_fails_per_record_or_as_a_whole(aws: Clients, memory_id: str) -> None:
    mixed = aws.data.batch_create_memory_records(
        memoryId=memory_id,
        records=[
            {"requestIdentifier": "ok", "namespaces": ["/n/"], "content": {"text": "fine"}, "timestamp": T0},
            {"requestIdentifier": "bad", "namespaces": [], "content": {"text": "nowhere"}, "timestamp": T0},
        ],
    )
    assert [r["requestIdentifier"] for r in mixed["successfulRecords"]] == ["ok"]
    failed = mixed["failedRecords"]
    assert [r["requestIdentifier"] for r in failed] == ["bad"] and "namespaces" in failed[0]["errorMessage"]
    code, status, _ = _refused(
        lambda: aws.data.retrieve_memory_records(
            memoryId="nosuch-ABCDEFGHIJ", searchCriteria={"searchQuery": "x"}
        )
    )
    assert (code, status) == ("ResourceNotFoundException", 404)


def test_extraction_jobs_are_listed_and_an_unknown_one_is_not_found(aws: Clients, memory_id: str) -> None:
    assert aws.data.list_memory_extraction_jobs(memoryId=memory_id)["jobs"] == []
    code, status, _ = _refused(
        lambda: aws.data.start_memory_extraction_job(
            memoryId=memory_id, extractionJob={"jobId": "job-nosuch"}
        )
    )
    assert (code, status) == ("ResourceNotFoundException", 404)


# -- the SDK and tenants ---------------------------------------------------------------------------


def test_the_sdk_memory_client_works_unchanged(aws: Clients) -> None:
    client = aws.sdk()
    memory = client.create_memory_and_wait(name="sdk", strategies=[], description="through the SDK")
    memory_id = memory["memoryId"]
    assert memory["status"] == "ACTIVE" and memory["id"] == memory_id
    assert client.get_memory_strategies(memory_id) == []

    first = client.create_event(
        memory_id, "carol", "chat", [("Hi, I'm Carol", "USER"), ("Hello Carol!", "ASSISTANT")]
    )
    client.create_event(memory_id, "carol", "chat", [("I live in Oslo", "USER"), ("Nice city.", "ASSISTANT")])
    turns = client.get_last_k_turns(memory_id, "carol", "chat", k=2)
    assert len(turns) == 2 and {m["content"]["text"] for turn in turns for m in turn} >= {
        "Hi, I'm Carol",
        "I live in Oslo",
    }
    client.fork_conversation(
        memory_id, "carol", "chat", first["eventId"], "bergen", [("I moved to Bergen", "USER")]
    )
    branches = {b["name"]: b for b in client.list_branches(memory_id, "carol", "chat")}
    assert set(branches) == {"main", "bergen"} and branches["bergen"]["rootEventId"] == first["eventId"]
    on_branch = client.list_branch_events(
        memory_id, "carol", "chat", branch_name="bergen", include_parent_branches=True
    )
    assert len(on_branch) == 2

    code, _, message = _refused(
        lambda: client.create_memory_and_wait(
            name="sdkSmart", strategies=[{"semanticMemoryStrategy": {"name": "facts"}}]
        )
    )
    assert code == "ServiceUnavailableException" and "SWITCHBOARD_MEMORY_MODEL" in message
    assert client.delete_memory(memory_id)["status"] == "DELETING"
    assert memory_id not in [m["id"] for m in client.list_memories()]


def test_another_tenant_cannot_see_the_memory(live: Served, aws: Clients, memory_id: str) -> None:
    admin = anyio.run(create_tenant, live.data_dir, "acme")
    other = Clients(live, _key(live, admin))
    assert memory_id not in [m["id"] for m in other.control.list_memories()["memories"]]
    for call in (
        lambda: other.control.get_memory(memoryId=memory_id),
        lambda: other.control.delete_memory(memoryId=memory_id),
        lambda: other.data.list_events(memoryId=memory_id, actorId="alice", sessionId="s1"),
        lambda: other.data.create_event(
            memoryId=memory_id,
            actorId="alice",
            sessionId="s1",
            eventTimestamp=T0,
            payload=_said(("x", "USER")),
        ),
        lambda: other.data.retrieve_memory_records(memoryId=memory_id, searchCriteria={"searchQuery": "tea"}),
    ):
        code, status, _ = _refused(call)
        assert (code, status) == ("ResourceNotFoundException", 404)
    assert aws.control.get_memory(memoryId=memory_id)["memory"]["status"] == "ACTIVE"


# -- strategies, with a model configured (never asked: no conversation reaches it here) -------------


@pytest.fixture(scope="module")
def modelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("modelled")
    env = {
        "SWITCHBOARD_MEMORY_MODEL": "openai:house-model",
        "SWITCHBOARD_MEMORY_MODEL_URL": "http://127.0.0.1:9/v1",
        "SWITCHBOARD_MEMORY_MODEL_CHOICES": '["small-model"]',
    }
    with serve(root / "data", env=env) as served:
        yield served


def test_strategies_are_answered_as_the_sdk_reads_them(modelled: Served) -> None:
    aws = Clients(modelled, _key(modelled))
    client = aws.sdk()
    custom = {
        "customMemoryStrategy": {
            "name": "tone",
            "description": "how they like to be spoken to",
            "configuration": {
                "semanticOverride": {"extraction": {"appendToPrompt": "Only tone.", "modelId": "small-model"}}
            },
        }
    }
    memory = client.create_memory_and_wait(
        name="strategic", strategies=[{"semanticMemoryStrategy": {"name": "facts"}}, custom]
    )
    strategies = {s["name"]: s for s in client.get_memory_strategies(memory["memoryId"])}
    facts, tone = strategies["facts"], strategies["tone"]
    assert facts["type"] == facts["memoryStrategyType"] == "SEMANTIC" and facts["status"] == "ACTIVE"
    assert facts["namespaceTemplates"] == ["/strategies/{memoryStrategyId}/actors/{actorId}/"]
    assert facts["strategyId"] == facts["memoryStrategyId"] and facts["strategyId"].startswith("facts-")
    assert tone["type"] == "CUSTOM" and tone["description"] == "how they like to be spoken to"
    assert tone["configuration"] == {
        "type": "SEMANTIC_OVERRIDE",
        "extraction": {
            "customExtractionConfiguration": {
                "semanticExtractionOverride": {"appendToPrompt": "Only tone.", "modelId": "small-model"}
            }
        },
    }

    added = client.add_summary_strategy_and_wait(memory["memoryId"], "recap", poll_interval=0)
    recap = next(s for s in added["strategies"] if s["name"] == "recap")
    assert recap["type"] == "SUMMARIZATION" and "{sessionId}" in recap["namespaceTemplates"][0]
    client.modify_strategy(
        memory["memoryId"],
        tone["strategyId"],
        configuration={"extraction": {"appendToPrompt": "Tone and pace.", "modelId": "small-model"}},
    )
    client.delete_strategy(memory["memoryId"], facts["strategyId"])
    after = {s["name"]: s for s in client.get_memory_strategies(memory["memoryId"])}
    assert set(after) == {"tone", "recap"}
    step = after["tone"]["configuration"]["extraction"]["customExtractionConfiguration"]
    assert step["semanticExtractionOverride"]["appendToPrompt"] == "Tone and pace."

    episodic = aws.control.update_memory(
        memoryId=memory["memoryId"],
        memoryStrategies={"addMemoryStrategies": [{"episodicMemoryStrategy": {"name": "episodes"}}]},
    )["memory"]
    episodes = next(s for s in episodic["strategies"] if s["name"] == "episodes")
    reflection = episodes["configuration"]["reflection"]["episodicReflectionConfiguration"]
    assert reflection["namespaceTemplates"] == ["/strategies/{memoryStrategyId}/actors/{actorId}/"]
    code, _, message = _refused(
        lambda: aws.control.update_memory(
            memoryId=memory["memoryId"],
            memoryStrategies={"addMemoryStrategies": [{"semanticMemoryStrategy": {"name": "recap"}}]},
        )
    )
    assert code == "ValidationException" and "recap" in message
    # A model id the operator does not offer is refused (its key pays for every model named).
    other = {"semanticOverride": {"extraction": {"appendToPrompt": "x", "modelId": "big-expensive-model"}}}
    code, _, message = _refused(
        lambda: aws.control.update_memory(
            memoryId=memory["memoryId"],
            memoryStrategies={
                "addMemoryStrategies": [{"customMemoryStrategy": {"name": "pricey", "configuration": other}}]
            },
        )
    )
    assert code == "ValidationException" and "SWITCHBOARD_MEMORY_MODEL_CHOICES" in message
