"""The service database on SQLite and PostgreSQL: migrations, keys, atomic shortlists, reviews
without lost updates under concurrency, outcome stages, no NUL characters written, ranked lists
stored as far down as served, no SQLite database made in a missing directory."""

from __future__ import annotations

import threading
from datetime import date

import pytest
import sqlalchemy as sa

from matcher.errors import UnknownEntityError
from matcher.store import Store, current_revision, head_revision, repo, upgrade
from matcher.store.errors import ConflictError, InvalidInputError, StaleWriteError
from matcher.store.models import ApiKey, AuditEntry, Shortlist, ShortlistItem
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


# --- NUL characters never reach the database (issue 11) ------------------------------------------

def test_texts_with_nul_are_stored_without_it(store):
    """Source data may carry NUL inside enterprise names; PostgreSQL refuses it in text ("text
    fields cannot contain NUL"). Names, titles, comments and the texts inside JSON are stored
    without it, on every backend."""
    names = {"N\x00-1": "Acme\x00 Robotics", "N-2": "\x00Beta\x00 Sensors\x00"}
    explanation = {"summary": "Acme\x00 Robotics fits", "evidence": ["made in\x00 Suzhou"], "score": 0.5}
    ranked_list = {**ranked("list-nul"), "query_text": "chips\x00", "n_items": 2,
                   "items": [{"enterprise_id": e, "rank": i + 1, "score": 0.5, "features": [1.0]}
                             for i, e in enumerate(names)]}
    shortlist_id = repo.create_shortlist(
        store, ACTOR, gap_id="chain.segment", chain_id="chain", title="AI\x00 chips — top 2", filters={"country": ["C\x00N"]},
        top=2, data_version="v1", model_version="cold-start", snapshot_id="s1", ranked_list=ranked_list,
        items=[{"rank": i + 1, "enterprise_id": e, "name": n, "score": 0.5, "features": {"f": 1.0},
                "explanation_en": explanation, "explanation_zh": {"summary": "契合\x00"}} for i, (e, n) in enumerate(names.items())])

    detail = repo.get_shortlist(store, shortlist_id)
    assert detail["title"] == "AI chips — top 2" and detail["filters"] == {"country": ["CN"]}
    assert [(i["enterprise_id"], i["name"]) for i in detail["items"]] == [("N-1", "Acme Robotics"), ("N-2", "Beta Sensors")]
    assert detail["items"][0]["explanation_en"] == {"summary": "Acme Robotics fits", "evidence": ["made in Suzhou"], "score": 0.5}
    assert detail["items"][0]["explanation_zh"] == {"summary": "契合"}
    stored = repo.get_ranked_list(store, "list-nul")
    assert stored["query_text"] == "chips" and [i["enterprise_id"] for i in stored["items"]] == ["N-1", "N-2"]

    item = detail["items"][0]
    result = repo.review_item(store, ACTOR, shortlist_id, item["item_id"], "reject", "not_chain_fit", comment="no\x00 fit")
    assert result["review"]["comment"] == "no fit" and result["item"]["comment"] == "no fit"
    assert "N-1" in repo.active_exclusions(store)[1]["chain.segment"]
    outcome = repo.record_outcome(store, ACTOR, "N-2", "chain.segment\x00", "contacted", date(2026, 1, 5), note="call\x00ed")
    assert (outcome["gap_id"], outcome["note"]) == ("chain.segment", "called")
    with store.read() as s:
        assert "\x00" not in "".join(s.scalars(sa.select(AuditEntry.target)))


def test_json_with_an_escaped_backslash_u0000_is_kept_as_written(store):
    """Only real NUL characters are removed: a text holding the six characters \\u0000 is data."""
    sid = make_shortlist(store, n=1, enterprise_ids=["E-bs"])
    item = repo.get_shortlist(store, sid)["items"][0]
    repo.review_item(store, ACTOR, sid, item["item_id"], "defer", None, comment="path C:\\u0000\\x")
    assert repo.get_shortlist(store, sid)["items"][0]["comment"] == "path C:\\u0000\\x"


# --- ranked lists: stored as far down as they were served (issue 11) ------------------------------

def _ranked_items(n: int) -> list[dict]:
    return [{"enterprise_id": f"R{i}", "rank": i + 1, "score": 1 - i / 100, "features": [float(i)]} for i in range(n)]


def test_a_stored_list_grows_to_the_deepest_part_served_and_never_shrinks(store):
    whole = _ranked_items(50)
    record = {**ranked("list-prefix"), "n_items": 50}
    repo.log_served(store, [{**record, "items": whole[:20]}], [])
    first = repo.get_ranked_list(store, "list-prefix")
    assert (first["n_items"], first["n_stored"], len(first["items"])) == (50, 20, 20)

    repo.log_served(store, [{**record, "items": whole[:40]}, {**record, "items": whole[:30]}], [])  # one batch, twice
    repo.log_served(store, [{**record, "items": whole[:10]}], [])  # another worker's shorter part
    stored = repo.get_ranked_list(store, "list-prefix")
    assert stored["n_stored"] == 40 and stored["items"] == whole[:40]
    assert stored["created_at"] == first["created_at"]  # first stored: when training looks for it

    make_shortlist_from = repo.create_shortlist(
        store, ACTOR, gap_id="chain.segment", chain_id="chain", title="t", filters={}, top=1, data_version="v1",
        model_version="cold-start", snapshot_id="s1", ranked_list={**record, "items": whole},
        items=[{"rank": 1, "enterprise_id": "R0", "name": "R0", "score": 1.0, "features": {"f": 0.0},
                "explanation_en": {}, "explanation_zh": {}}])
    assert make_shortlist_from and repo.get_ranked_list(store, "list-prefix")["items"] == whole


# --- SQLite: a missing directory is refused, not created (issue 11) --------------------------------

def test_a_sqlite_url_in_a_missing_directory_is_refused(tmp_path):
    from matcher.errors import ConfigError

    missing = tmp_path / "nonexistent" / "dir"
    with pytest.raises(ConfigError, match=f"directory {missing} does not exist"):
        upgrade(f"sqlite:///{missing / 'x.db'}")
    assert not missing.parent.exists()
