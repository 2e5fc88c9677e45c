"""Concurrent verdicts on one firm from two shortlists of a gap, on SQLite and PostgreSQL.

A chain leader rejects a firm as *not a chain fit* on one shortlist while another approves it on a
second shortlist of the same gap, at the same moment (two threads released by a barrier, each with
its own connection). Whatever order the database applies them in, the verdict recorded later (the
higher review id) must decide whether the firm is excluded from the gap's lists. A probe found the
exclusion left active after a later approval in 8 of 30 rounds on PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest

from matcher.store import Store, repo, upgrade
from tests.service.databases import BACKENDS, throwaway_database

GAP = "chain.race"
ROUNDS = 40
LEADER_A = repo.Actor(key_id=1, prefix="cmk_leadA", role="chain_leader", chains=("chain",))
LEADER_B = repo.Actor(key_id=2, prefix="cmk_leadB", role="chain_leader", chains=("chain",))


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with throwaway_database(request.param, tmp_path) as url:
        upgrade(url)
        store = Store(url)
        yield store
        store.dispose()


def shortlist_of(store: Store, enterprise_id: str, list_version: str) -> tuple[int, int]:
    """A shortlist of GAP holding ``enterprise_id``: (shortlist id, item id)."""
    ranked_list = {"list_version": list_version, "artifact_version": "v1", "ranker": "cold-start", "gap_id": GAP,
                   "query_text": "need", "filters": {}, "excluded": [], "feature_names": ["f"], "n_items": 1,
                   "items": [{"enterprise_id": enterprise_id, "rank": 1, "score": 0.5, "features": [0.5]}]}
    shortlist_id = repo.create_shortlist(
        store, repo.CLI_ACTOR, gap_id=GAP, chain_id="chain", title="race", filters={}, top=1, data_version="v1",
        model_version="cold-start", snapshot_id="s1", ranked_list=ranked_list,
        items=[{"rank": 1, "enterprise_id": enterprise_id, "name": enterprise_id, "score": 0.5, "features": {"f": 0.5},
                "explanation_en": {}, "explanation_zh": {}}])
    return shortlist_id, repo.get_shortlist(store, shortlist_id)["items"][0]["item_id"]


def excluded(store: Store, enterprise_id: str) -> bool:
    return enterprise_id in repo.active_exclusions(store)[1].get(GAP, frozenset())


def test_the_later_of_two_concurrent_verdicts_decides_the_exclusion(store):
    wrong = []
    for round_ in range(ROUNDS):
        enterprise_id = f"E{round_}"
        rejecting = shortlist_of(store, enterprise_id, f"a{round_}")
        approving = shortlist_of(store, enterprise_id, f"b{round_}")
        if round_ % 2:  # half the rounds start from an active exclusion (a reject on a third shortlist)
            earlier = shortlist_of(store, enterprise_id, f"c{round_}")
            repo.review_item(store, LEADER_A, *earlier, "reject", "not_chain_fit")
            assert excluded(store, enterprise_id)
        barrier = threading.Barrier(2)
        results, failures = {}, []

        def review(name, actor, ids, verdict, reason):
            try:
                barrier.wait(timeout=10)
                results[name] = repo.review_item(store, actor, *ids, verdict, reason)["review"]
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=review, args=("reject", LEADER_A, rejecting, "reject", "not_chain_fit")),
                   threading.Thread(target=review, args=("approve", LEADER_B, approving, "approve", None))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        later = max(results.values(), key=lambda r: r["review_id"])
        if excluded(store, enterprise_id) != (later["verdict"] == "reject"):
            wrong.append((round_, later["verdict"], excluded(store, enterprise_id)))
    assert wrong == [], f"{len(wrong)} of {ROUNDS} rounds: (round, later verdict, excluded) {wrong}"


def test_lifting_an_exclusion_and_a_verdict_at_once_follow_the_same_order(store):
    """``DELETE …/exclusions/{enterprise}`` takes the same lock: a lift that lands after a rejection
    leaves the firm included, one that lands before is followed by the rejection."""
    for round_ in range(10):
        enterprise_id = f"L{round_}"
        first = shortlist_of(store, enterprise_id, f"l{round_}")
        second = shortlist_of(store, enterprise_id, f"m{round_}")
        repo.review_item(store, LEADER_A, *first, "reject", "not_chain_fit")
        barrier = threading.Barrier(2)
        outcome = {}

        def lift():
            barrier.wait(timeout=10)
            outcome["lift"] = repo.lift_exclusion(store, LEADER_B, GAP, enterprise_id)

        def reject():
            barrier.wait(timeout=10)
            outcome["reject"] = repo.review_item(store, LEADER_A, *second, "reject", "not_chain_fit")["review"]

        threads = [threading.Thread(target=lift), threading.Thread(target=reject)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lifted_at, rejected_at = outcome["lift"]["lifted_at"], outcome["reject"]["created_at"]
        assert excluded(store, enterprise_id) == (rejected_at > lifted_at), (round_, lifted_at, rejected_at)
