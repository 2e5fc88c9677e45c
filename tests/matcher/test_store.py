"""The service database on SQLite and PostgreSQL: migrations, keys, atomic shortlists, reviews
without lost updates under concurrency, outcome stages."""

from __future__ import annotations

import threading
from datetime import date

import pytest
import sqlalchemy as sa

from matcher.errors import UnknownEntityError
from matcher.store import Store, current_revision, head_revision, repo, upgrade
from matcher.store.errors import ConflictError, InvalidInputError, StaleWriteError
from matcher.store.models import ApiKey, Shortlist, ShortlistItem
from tests.service.databases import BACKENDS, throwaway_database

ACTOR = repo.Actor(key_id=None, prefix="test", role="admin")


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    with throwaway_database(request.param, tmp_path_factory.mktemp(f"store-{request.param}")) as url:
        assert upgrade(url) == (None, head_revision())
        assert upgrade(url) == (head_revision(), head_revision())  # idempotent
        store = Store(url)
        store.check_schema()
        yield store
        store.dispose()


def ranked(version: str = "list-1") -> dict:
    return {"list_version": version, "artifact_version": "v1", "ranker": "cold-start", "gap_id": "chain.segment",
            "query_text": "need", "filters": {}, "excluded": [], "feature_names": ["f"], "n_items": 0, "items": []}


def make_shortlist(store, n: int = 3, enterprise_ids: list[str] | None = None) -> int:
    ids = enterprise_ids or [f"E{i}" for i in range(n)]
    return repo.create_shortlist(
        store, ACTOR, gap_id="chain.segment", chain_id="chain", title="t", filters={}, top=n, data_version="v1",
        model_version="cold-start", snapshot_id="s1", ranked_list=ranked(),
        items=[{"rank": i + 1, "enterprise_id": e, "name": e, "score": 0.5, "features": {"f": 1.0},
                "explanation_en": {"x": 1}, "explanation_zh": {"x": 2}} for i, e in enumerate(ids)])


def test_keys_are_stored_hashed(store):
    key, record = repo.create_key(store, "chain_leader", ["chain"], name="leader")
    with store.read() as s:
        row = s.get(ApiKey, record["key_id"])
        assert row.key_hash == repo.hash_key(key) and key not in repr(row.__dict__)
    assert repo.authenticate(store, key).chains == ("chain",)
    assert repo.authenticate(store, key + "x") is None
    repo.revoke_key(store, record["prefix"])
    assert repo.authenticate(store, key) is None
    with pytest.raises(InvalidInputError, match="at least one --chain"):
        repo.create_key(store, "chain_leader")


def test_a_failed_shortlist_leaves_nothing(store):
    with store.read() as s:
        before = (s.scalar(sa.select(sa.func.count(Shortlist.id))), s.scalar(sa.select(sa.func.count(ShortlistItem.id))))
    with pytest.raises(sa.exc.IntegrityError):
        make_shortlist(store, enterprise_ids=["A", "B", "A"])  # the third item breaks a constraint mid-write
    with store.read() as s:
        after = (s.scalar(sa.select(sa.func.count(Shortlist.id))), s.scalar(sa.select(sa.func.count(ShortlistItem.id))))
    assert after == before


def test_concurrent_reviews_are_serialised_and_none_is_lost(store):
    shortlist_id = make_shortlist(store, n=4)
    items = repo.get_shortlist(store, shortlist_id)["items"]
    errors = []

    def reviewer(item_id: int, verdicts: list[str]):
        for verdict in verdicts:
            try:
                repo.review_item(store, ACTOR, shortlist_id, item_id, verdict, "risk" if verdict == "reject" else None)
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)

    # Eight writers at once: two per item, each three verdicts, all on one shortlist.
    threads = [threading.Thread(target=reviewer, args=(item["item_id"], ["defer", "reject", "approve"]))
               for item in items for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    detail = repo.get_shortlist(store, shortlist_id)
    for item in detail["items"]:
        assert len(item["reviews"]) == 6 and item["version"] == 6
        assert [r["item_version"] for r in item["reviews"]] == [1, 2, 3, 4, 5, 6]
        assert item["status"] == {"approve": "approved", "reject": "rejected", "defer": "deferred"}[item["reviews"][-1]["verdict"]]
    expected = repo.shortlist_status({s: sum(1 for i in detail["items"] if i["status"] == s)
                                      for s in ("pending", "approved", "rejected", "deferred")})
    assert detail["status"] == expected


def test_stale_writes_and_idempotent_retries(store):
    shortlist_id = make_shortlist(store, n=1)
    item_id = repo.get_shortlist(store, shortlist_id)["items"][0]["item_id"]
    repo.review_item(store, ACTOR, shortlist_id, item_id, "approve", None, expected_version=0)
    with pytest.raises(StaleWriteError) as stale:
        repo.review_item(store, ACTOR, shortlist_id, item_id, "reject", "risk", expected_version=0)
    assert stale.value.current["status"] == "approved" and stale.value.current["version"] == 1
    first = repo.review_item(store, ACTOR, shortlist_id, item_id, "defer", None, idempotency_key=f"k-{shortlist_id}")
    again = repo.review_item(store, ACTOR, shortlist_id, item_id, "defer", None, idempotency_key=f"k-{shortlist_id}")
    assert again["replayed"] and again["review"]["review_id"] == first["review"]["review_id"]
    assert len(repo.get_shortlist(store, shortlist_id)["items"][0]["reviews"]) == 2
    with pytest.raises(UnknownEntityError):
        repo.review_item(store, ACTOR, shortlist_id, item_id + 10_000, "approve", None)


def test_exclusions_follow_the_latest_verdict(store):
    shortlist_id = make_shortlist(store, n=1, enterprise_ids=["X-excl"])
    item_id = repo.get_shortlist(store, shortlist_id)["items"][0]["item_id"]
    revision = repo.exclusion_revision(store)
    repo.review_item(store, ACTOR, shortlist_id, item_id, "reject", "not_chain_fit")
    assert "X-excl" in repo.active_exclusions(store)[1]["chain.segment"] and repo.exclusion_revision(store) > revision
    repo.review_item(store, ACTOR, shortlist_id, item_id, "approve", None)
    assert "X-excl" not in repo.active_exclusions(store)[1].get("chain.segment", set())


def test_outcome_stages(store):
    repo.record_outcome(store, ACTOR, "E9", "g", "contacted", date(2026, 1, 5))
    repo.record_outcome(store, ACTOR, "E9", "g", "signed", date(2026, 2, 5))
    with pytest.raises(ConflictError):
        repo.record_outcome(store, ACTOR, "E9", "g", "negotiating", date(2026, 3, 5))
    with pytest.raises(InvalidInputError, match="before"):
        repo.record_outcome(store, ACTOR, "E9", "g", "landed", date(2026, 1, 1))
    repo.record_outcome(store, ACTOR, "E9", "g", "landed", date(2026, 4, 5))
    assert repo.outcome_records(store)[-1] == {"enterprise_id": "E9", "gap_id": "g", "contacted_at": "2026-01-05", "outcome": "landed"}
    assert current_revision(store.url) == head_revision()
