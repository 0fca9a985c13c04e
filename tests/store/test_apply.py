from __future__ import annotations

from typing import Any

import pytest

from gateway.store import GatewayDocument, Store

pytestmark = pytest.mark.anyio

DOC: list[GatewayDocument] = [
    ("g", {"description": "x"}, [("t1", {"k": 1}), ("t2", {"k": 2})]),
    ("h", {}, []),
]


async def names(store: Store, gateway: str) -> list[tuple[str, int]]:
    return [(t.name, t.position) for t in await store.list_targets("default", gateway)]


async def test_apply_reports_every_item_and_is_idempotent(store: Store) -> None:
    assert await store.apply("default", DOC) == [
        ("gateway", "g", "created"),
        ("target", "g/t1", "created"),
        ("target", "g/t2", "created"),
        ("gateway", "h", "created"),
    ]
    revision = await store.revision()
    stored = await store.list_targets("default", "g")
    assert await store.apply("default", DOC) == [
        ("gateway", "g", "unchanged"),
        ("target", "g/t1", "unchanged"),
        ("target", "g/t2", "unchanged"),
        ("gateway", "h", "unchanged"),
    ]
    assert await store.revision() == revision
    assert await store.list_targets("default", "g") == stored  # not even a timestamp moved


async def test_apply_makes_each_listed_gateway_match(store: Store) -> None:
    await store.apply("default", DOC)
    await store.put_target("default", "g", "added-elsewhere", {})
    revision = await store.revision()
    changes = await store.apply(
        "default",
        [("g", {"description": "x"}, [("t3", {}), ("t2", {"k": 2}), ("t1", {"k": 1, "more": True})])],
    )
    assert changes == [
        ("gateway", "g", "unchanged"),
        ("target", "g/t3", "created"),
        ("target", "g/t2", "unchanged"),  # same spec, same position (1)
        ("target", "g/t1", "updated"),  # new spec and moved from 0 to 2
        ("target", "g/added-elsewhere", "deleted"),  # not in the list
    ]
    assert await names(store, "g") == [("t3", 0), ("t2", 1), ("t1", 2)]
    assert await store.revision() == revision + 1  # one transaction, one revision
    assert {t.revision for t in await store.list_targets("default", "g") if t.name != "t2"} == {revision + 1}
    assert [g.name for g in await store.list_gateways("default")] == ["g", "h"]  # h is not listed, stays
    reordered = [("t3", {}), ("t1", {"k": 1, "more": True}), ("t2", {"k": 2})]
    changes = await store.apply("default", [("g", {"description": "x"}, reordered)])
    assert [change for *_, change in changes] == ["unchanged", "unchanged", "updated", "updated"]
    assert await names(store, "g") == [("t3", 0), ("t1", 1), ("t2", 2)]


async def test_apply_with_prune_deletes_unlisted_gateways(store: Store) -> None:
    await store.apply("default", DOC)
    await store.apply("other", [("kept", {}, [])])
    assert await store.apply("default", [("h", {}, [])], prune=True) == [
        ("gateway", "h", "unchanged"),
        ("gateway", "g", "deleted"),
        ("target", "g/t1", "deleted"),
        ("target", "g/t2", "deleted"),
    ]
    assert [g.name for g in await store.list_gateways("default")] == ["h"]
    assert await store.list_targets("default", "g") == []
    assert [g.name for g in await store.list_gateways("other")] == ["kept"]  # another tenant's: untouched
    assert await store.apply("default", [], prune=True) == [("gateway", "h", "deleted")]
    assert await store.list_gateways("default") == []


async def test_apply_is_one_transaction(store: Store) -> None:
    await store.apply("default", DOC)
    revision = await store.revision()
    bad: list[GatewayDocument] = [("g", {"description": "changed"}, []), ("h", {}, [("t", {"x": object()})])]
    with pytest.raises(ValueError, match="the spec of target h/t is not a JSON document"):
        await store.apply("default", bad, prune=True)
    assert await store.revision() == revision
    stored = await store.get_gateway("default", "g")
    assert stored is not None and stored.spec == {"description": "x"}
    assert await names(store, "g") == [("t1", 0), ("t2", 1)]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([("g", {}, []), ("g", {}, [])], "gateway 'g' is listed twice"),
        ([("g", {}, [("t", {}), ("t", {})])], "target 't' is listed twice in gateway 'g'"),
    ],
)
async def test_apply_refuses_duplicate_names(store: Store, doc: list[GatewayDocument], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await store.apply("default", doc)
    assert await store.list_gateways("default") == []


async def test_apply_accepts_the_configs_shape(store: Store) -> None:
    # gateway.config.to_store gives (name, dict, list[(name, dict)]), lists and dicts all the way
    doc: list[tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]]]] = [("g", {}, [("t", {})])]
    assert [c for *_, c in await store.apply("default", doc)] == ["created", "created"]
