"""The hybrid index: put/replace/remove, namespaces, filters before top-k, fusion, the tokeniser."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from memory._index import Hit, Index, terms

DIM = 8


def axis(i: int, lean: float = 0.0, towards: int = 0) -> npt.NDArray[np.float32]:
    """A unit vector along axis ``i``, optionally leaning by ``lean`` towards axis ``towards``."""
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    v[towards] += lean
    return v / np.linalg.norm(v)


def ids(hits: list[Hit]) -> list[str]:
    return [h.record_id for h in hits]


def test_put_then_search_finds_by_words_and_by_meaning() -> None:
    index = Index(DIM)
    index.put("a", "/n", "the user prefers aisle seats", axis(1))
    index.put("b", "/n", "peanut allergy", axis(2))
    assert len(index) == 2
    assert ids(index.search("aisle", axis(5), k=1)) == ["a"]
    hits = index.search("unrelated words", axis(2), k=1)
    assert ids(hits) == ["b"] and hits[0].score == pytest.approx(1.0)


def test_replace_changes_text_vector_and_namespace_in_place() -> None:
    index = Index(DIM)
    index.put("a", "/old", "violin lessons on saturday", axis(1))
    index.put("a", "/old", "swimming lessons on wednesday", axis(2))
    assert len(index) == 1
    assert index.search("violin", axis(7), k=5, mode="bm25") == []
    assert ids(index.search("swimming", axis(7), k=5, mode="bm25")) == ["a"]
    assert index.search("x", axis(2), k=1)[0].score == pytest.approx(1.0)
    index.put("a", "/new", "swimming lessons on wednesday", axis(2))
    assert len(index) == 1
    assert index.search("swimming", axis(2), k=5, namespaces=lambda ns: ns == "/old") == []
    assert ids(index.search("swimming", axis(2), k=5, namespaces=lambda ns: ns == "/new")) == ["a"]


def test_a_removed_record_is_never_found_by_either_ranking() -> None:
    index = Index(DIM)
    index.put("gone", "/n", "greyhound named biscuit", axis(3))
    index.put("kept", "/n", "a cat named tom", axis(4))
    index.remove("gone")
    index.remove("gone")  # twice, and unknown ids: no error
    index.remove("never-there")
    assert len(index) == 1
    for mode in ("fused", "vector", "bm25"):
        found = ids(index.search("greyhound biscuit", axis(3), k=10, mode=mode))
        assert "gone" not in found
    # Its row is reused, and the newcomer does not inherit its words.
    index.put("new", "/n", "a parrot", axis(5))
    assert index.search("greyhound", axis(6), k=10, mode="bm25") == []
    assert sorted(ids(index.search("anything", axis(6), k=10))) == ["kept", "new"]


def test_removing_every_record_leaves_an_empty_index() -> None:
    index = Index(DIM)
    for i in range(20):
        index.put(f"r{i}", f"/n{i % 3}", f"note number {i}", axis(i % DIM))
    for i in range(20):
        index.remove(f"r{i}")
    assert len(index) == 0
    assert index.search("note", axis(0), k=5) == []


def test_empty_index_and_k_zero() -> None:
    index = Index(DIM)
    assert len(index) == 0
    assert index.search("anything", axis(0), k=5) == []
    index.put("a", "/n", "text", axis(0))
    assert index.search("text", axis(0), k=0) == []


def test_k_larger_than_the_index_returns_every_record_once() -> None:
    index = Index(DIM)
    for i in range(7):
        index.put(f"r{i}", f"/ns/{i % 2}", f"common word {i}", axis(i % DIM, 0.3))
    hits = index.search("common word", axis(0), k=100)
    assert sorted(ids(hits)) == [f"r{i}" for i in range(7)]
    assert all(0.0 <= h.score <= 1.0 for h in hits)


def test_namespaces_select_partitions() -> None:
    index = Index(DIM)
    index.put("alice-1", "/users/alice/facts", "likes tea", axis(1))
    index.put("alice-2", "/users/alice/prefs", "likes coffee", axis(1, 0.1, 2))
    index.put("bob-1", "/users/bob/facts", "likes tea", axis(1))
    found = ids(
        index.search("likes tea", axis(1), k=10, namespaces=lambda ns: ns.startswith("/users/alice/"))
    )
    assert sorted(found) == ["alice-1", "alice-2"]
    assert ids(index.search("tea", axis(1), k=10, namespaces=lambda ns: ns == "/users/bob/facts")) == [
        "bob-1"
    ]
    assert index.search("tea", axis(1), k=10, namespaces=lambda ns: ns.startswith("/nobody")) == []


def test_allow_filters_before_the_top_k_cut() -> None:
    index = Index(DIM)
    # 300 records; the closest by vector and the only word matches are all disallowed.
    for i in range(300):
        index.put(f"r{i:03d}", "/n", "shared keyword" if i < 100 else f"filler {i}", axis(0, i / 300, 1))
    allowed = {"r150", "r200", "r250", "r299"}
    hits = index.search("shared keyword", axis(0), k=3, allow=allowed.__contains__)
    assert ids(hits) == ["r150", "r200", "r250"]  # k results, since k allowed records exist
    hits = index.search("shared keyword", axis(0), k=10, allow=allowed.__contains__)
    assert sorted(ids(hits)) == sorted(allowed)


def test_allow_is_asked_about_few_records() -> None:
    index = Index(DIM)
    for i in range(2000):
        index.put(f"r{i}", "/n", f"word{i % 50}", axis(i % DIM, (i % 97) / 97, (i + 1) % DIM))
    asked: list[str] = []

    def allow(record_id: str) -> bool:
        asked.append(record_id)
        return True

    assert len(index.search("word7", axis(3), k=5, allow=allow)) == 5
    assert len(asked) <= 150  # the candidates of both rankings (50 each), not all 2,000


def test_fusion_ranks_a_keyword_only_and_a_meaning_only_match() -> None:
    index = Index(DIM)
    query = axis(0)
    # Distractors: somewhat close in meaning, no shared words.
    for i in range(30):
        index.put(f"d{i}", "/n", f"unrelated filler text {i}", axis(2 + i % 6, 0.2 + i / 100, 0))
    index.put("meaning", "/n", "nothing in common", axis(0))  # the nearest vector, no shared word
    index.put("keyword", "/n", "the zebra crossing rules", axis(1))  # orthogonal, the only word match
    hits = index.search("zebra crossing", query, k=3)
    assert set(ids(hits)[:2]) == {"meaning", "keyword"}
    score = {h.record_id: h.score for h in hits}
    assert score["meaning"] == pytest.approx(1.0) and score["keyword"] == pytest.approx(0.0)
    # Alone, each side finds only its own.
    assert ids(index.search("zebra crossing", query, k=1, mode="vector")) == ["meaning"]
    assert ids(index.search("zebra crossing", query, k=5, mode="bm25")) == ["keyword"]
    # A record matching on both sides beats either.
    index.put("both", "/n", "zebra crossing near school", axis(0, 0.05, 1))
    assert ids(index.search("zebra crossing", query, k=1)) == ["both"]


def test_bm25_prefers_rare_terms_and_short_documents() -> None:
    index = Index(DIM)
    for i in range(20):
        index.put(f"c{i}", "/n", "meeting notes", axis(0))
    index.put("rare", "/n", "meeting about kubernetes", axis(0))
    index.put("long", "/n", "kubernetes " + " ".join(f"pad{i}" for i in range(40)), axis(0))
    assert ids(index.search("kubernetes meeting", axis(0), k=2, mode="bm25")) == ["rare", "long"]


def test_vectors_are_normalised_and_shapes_checked() -> None:
    index = Index(DIM)
    index.put("a", "/n", "x", axis(1) * 7.0)
    assert index.search("", axis(1) * 0.1, k=1)[0].score == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dimensions"):
        index.put("b", "/n", "x", np.zeros(DIM + 1, dtype=np.float32))
    with pytest.raises(ValueError, match="dimensions"):
        index.search("x", np.zeros(3, dtype=np.float32), k=1)
    with pytest.raises(ValueError, match="NaN"):
        index.put("c", "/n", "x", np.full(DIM, np.nan, dtype=np.float32))
    assert len(index) == 1


def test_growth_keeps_every_record() -> None:
    index = Index(DIM)
    for i in range(1000):
        index.put(f"r{i}", "/n", f"token{i}", axis(i % DIM))
    for i in range(0, 1000, 2):
        index.remove(f"r{i}")
    for i in range(1000, 1300):
        index.put(f"r{i}", "/n", f"token{i}", axis(i % DIM))
    assert len(index) == 800
    for i in (1, 501, 999, 1000, 1299):
        assert ids(index.search(f"token{i}", axis(i % DIM), k=1, mode="bm25")) == [f"r{i}"]
    assert index.search("token500", axis(0), k=1, mode="bm25") == []


def test_terms_fold_case_drop_stopwords_and_stem() -> None:
    assert terms("The Hiking trips, hiked and HIKES!") == ["hik", "trip", "hik", "hik"]
    assert terms("policies policy studied") == ["policy", "policy", "study"]
    assert terms("running boxes glasses status") == ["run", "box", "glass", "status"]
    assert terms("user's 5 km") == ["user", "5", "km"]
    assert terms("Straße") == terms("STRASSE")
    assert terms("Zürich café") == ["zürich", "café"]
    assert terms("") == [] and terms("it is what it is") == []
