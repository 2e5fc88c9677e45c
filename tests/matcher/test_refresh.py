"""Refresh library: snapshot diffs, row order, index policies and in-place updates, retrain policy,
causes of score moves and the change report."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd
import pytest

from matcher import schemas as S
from matcher.index import (
    APPROXIMATE_FACTORY, EXACT_FACTORY, VectorSearcher, build_index, live_mask, recall_at_k, tombstone_count, update_index,
)
from matcher.refresh import (
    ReportInputs, RefreshPolicy, change_report, diff_enterprises, field_causes, index_plan, refresh_order, retrain_plan,
)
from matcher.snapshot import add_hashes
from tests.factories import make_validated, unit_vectors


@pytest.fixture
def before():
    return add_hashes(make_validated(20, seed=0))


def changed(frame: pd.DataFrame, edit) -> pd.DataFrame:
    out = frame.copy()
    edit(out)
    return add_hashes(out.drop(columns=[S.PROFILE_HASH, S.CONTENT_HASH]))


def test_diff_tells_text_changes_from_other_changes(before):
    def edit(f):
        f.loc[1, S.DESCRIPTION] = "Now makes quantum sensors."
        f.loc[2, S.EMPLOYEES] = 999
        f.loc[3, S.UPDATED_AT] = pd.Timestamp("2027-01-01")  # not content: a new export date only

    after = changed(before, edit)
    after = pd.concat([after.drop(index=[4]), add_hashes(make_validated(1, seed=9).drop(columns=[]))], ignore_index=True)
    diff = diff_enterprises(before, after)
    assert diff.changed_text == [before.loc[1, S.ENTERPRISE_ID]]
    assert diff.changed_other == [before.loc[2, S.ENTERPRISE_ID]]
    assert diff.removed == [before.loc[4, S.ENTERPRISE_ID]]
    assert diff.added == ["E090000"]
    assert diff.unchanged == 20 - 3
    assert diff.counts()["after"] == 20 and diff.removed_share == pytest.approx(1 / 20)


def test_same_table_has_no_changes(before):
    diff = diff_enterprises(before, before.sample(frac=1.0, random_state=1))
    assert diff.changed == 0 and diff.unchanged == len(before)


def test_refresh_order_keeps_previous_order_and_appends_new_and_moved():
    previous = pd.Series(["a", "b", "c", "d"])
    new = pd.DataFrame({S.ENTERPRISE_ID: ["x", "d", "c", "a", "y"]})
    assert refresh_order(previous, new)[S.ENTERPRISE_ID].tolist() == ["a", "c", "d", "x", "y"]
    assert refresh_order(previous, new, {"c"})[S.ENTERPRISE_ID].tolist() == ["a", "d", "x", "c", "y"]


def diff_of(added=0, removed=0, text=0, other=0, n=1000):
    from matcher.refresh import SnapshotDiff

    return SnapshotDiff(added=[f"a{i}" for i in range(added)], removed=[f"r{i}" for i in range(removed)],
                        changed_text=[f"t{i}" for i in range(text)], changed_other=[f"o{i}" for i in range(other)],
                        unchanged=n - removed - text - other, before=n, after=n - removed + added)


def test_index_plan_updates_small_changes_in_place_and_rebuilds_large_ones():
    policy = RefreshPolicy(rebuild_change_share=0.2, max_tombstone_share=0.1)
    assert index_plan(diff_of(added=10, text=10), EXACT_FACTORY, EXACT_FACTORY, 1000, 0, policy)[0] == "in-place"
    mode, reason = index_plan(diff_of(added=150, text=100), EXACT_FACTORY, EXACT_FACTORY, 1000, 0, policy)
    assert mode == "rebuild" and "25.0%" in reason
    mode, reason = index_plan(diff_of(added=10), EXACT_FACTORY, APPROXIMATE_FACTORY, 1000, 0, policy)
    assert mode == "rebuild" and "index type" in reason
    # HNSW: tombstones already there plus the new ones decide.
    assert index_plan(diff_of(text=20), APPROXIMATE_FACTORY, APPROXIMATE_FACTORY, 1000, 0, policy)[0] == "in-place"
    mode, reason = index_plan(diff_of(text=20), APPROXIMATE_FACTORY, APPROXIMATE_FACTORY, 1000, 90, policy)
    assert mode == "rebuild" and "tombstones" in reason


def test_retrain_plan():
    card = {"data": {"snapshot_id": "s1", "outcomes_used": 300}}
    policy = RefreshPolicy(retrain_min_new_outcomes=50)
    assert retrain_plan(policy, None, "s2", None) == (False, "the published version was never trained and no outcomes were given")
    assert retrain_plan(policy, card, "s2", 300)[0] is True  # a new snapshot pair
    assert retrain_plan(policy, card, "s1", 320)[0] is False  # same snapshot, 20 new outcomes
    due, why = retrain_plan(policy, card, "s1", 360)
    assert due and "60 new labelled outcomes" in why
    due, why = retrain_plan(policy, card, "s2", None)  # a landing model but its outcome files are gone
    assert not due and "--outcomes" in why
    assert retrain_plan(RefreshPolicy(retrain="never"), card, "s2", 500)[0] is False
    assert retrain_plan(RefreshPolicy(retrain="always"), card, "s1", 300)[0] is True


def test_flat_index_updated_in_place_searches_like_one_built_from_scratch():
    vectors = unit_vectors(300, 16, seed=1)
    ids = np.arange(300, dtype=np.int64) + 10_000
    index = build_index(vectors, ids, EXACT_FACTORY)
    new_vectors = unit_vectors(20, 16, seed=2)
    removed = ids[[3, 50, 299]]
    replaced = ids[[10, 11]]
    added = np.arange(15, dtype=np.int64) + 90_000
    how = update_index(index, removed, new_vectors[:15], added, replace_ids=replaced, replace_vectors=new_vectors[15:17])
    assert how == "removed" and index.ntotal == 300 - 3 + 15 and tombstone_count(index) == 0
    # The same universe in the same row order, built from scratch.
    keep = np.setdiff1d(np.arange(300), [3, 50, 299])
    table = vectors[keep].copy()
    table[np.searchsorted(keep, [10, 11])] = new_vectors[15:17]
    table = np.concatenate([table, new_vectors[:15]])
    table_ids = np.concatenate([ids[keep], added])
    fresh = build_index(table, table_ids, EXACT_FACTORY)
    assert np.array_equal(faiss.vector_to_array(index.id_map), table_ids)
    queries = unit_vectors(10, 16, seed=3)
    a, b = VectorSearcher(index, table), VectorSearcher(fresh, table)
    for q in queries:
        ra, sa = a.search(q, 20)
        rb, sb = b.search(q, 20)
        assert np.array_equal(ra, rb) and np.array_equal(sa, sb)


def test_hnsw_tombstones_never_come_back_and_rows_follow_live_positions():
    vectors = unit_vectors(2000, 16, seed=4)
    ids = np.arange(2000, dtype=np.int64)
    index = build_index(vectors, ids, APPROXIMATE_FACTORY, ef_search=256)
    replaced = np.arange(0, 2000, 50)  # 40 profiles whose text changed
    removed = np.array([7, 8, 9])
    new_vectors = unit_vectors(40 + 5, 16, seed=5)
    appended = np.concatenate([replaced, np.arange(5000, 5005)])
    how = update_index(index, np.concatenate([removed, replaced]), new_vectors, appended)
    assert how == "tombstoned" and tombstone_count(index) == 43 and index.ntotal == 2045
    live = live_mask(index)
    live_ids = faiss.vector_to_array(index.id_map)[live]
    table = np.concatenate([np.delete(vectors, np.concatenate([removed, replaced]), axis=0), new_vectors])
    assert len(live_ids) == len(table) == 2002
    searcher = VectorSearcher(index, table)
    assert len(searcher) == 2002
    # A query equal to a replaced profile's old vector must not find the dead copy.
    rows, scores = searcher.search(vectors[0], 5)
    assert live_ids[rows[0]] != 0 or np.allclose(table[rows[0]], new_vectors[0])
    assert scores[0] < 0.999
    # The new vector is found, under its row.
    rows, scores = searcher.search(new_vectors[0], 1)
    assert live_ids[rows[0]] == 0 and scores[0] == pytest.approx(1.0, abs=1e-5)
    # Filters are over rows; removed ids never appear; recall holds.
    allowed = np.zeros(len(table), dtype=bool)
    allowed[::3] = True
    rows, _ = searcher.search(new_vectors[1], 30, allowed)
    assert allowed[rows].all() and len(rows) == 30
    assert not np.isin(live_ids[searcher.search(vectors[7], 50)[0]], removed).any()
    assert recall_at_k(searcher, unit_vectors(50, 16, seed=6), 10) >= 0.95


def test_field_causes_name_the_changes():
    before = pd.Series({S.EMPLOYEES: 10, S.LAST_FUNDING_DATE: pd.Timestamp("2025-01-01"), S.PROFILE_HASH: "a",
                        S.STATUS_CLASS: "operating", S.QUALIFICATIONS: [], S.RISK_FLAGS: ["tax arrears"], S.CITY: "Suzhou"})
    after = before.copy()
    after[S.EMPLOYEES] = 40
    after[S.LAST_FUNDING_DATE] = pd.Timestamp("2026-06-01")
    after[S.PROFILE_HASH] = "b"
    after[S.QUALIFICATIONS] = ["high-tech enterprise"]
    after[S.RISK_FLAGS] = []
    causes = field_causes(before, after)
    assert causes[:2] == ["new funding (2025-01-01 -> 2026-06-01)", "grown headcount (10 -> 40)"]
    assert "changed business text" in causes
    assert "qualification gained: high-tech enterprise" in causes and "risk flag lost: tax arrears" in causes
    assert field_causes(None, after) == ["new in the source"]
    assert field_causes(before, before) == []


def standing(rows):
    return pd.DataFrame([{"gap_id": "c.s", "rank": r, S.ENTERPRISE_ID: e, S.NAME: e.upper(), "score": sc, "fit_score": 0.5,
                          "growth_score": g, "regional_score": 0.5, "similarity": 0.4, "ranker": "cold-start"}
                         for r, (e, sc, g) in enumerate(rows, start=1)])


def test_change_report_lists_entries_exits_and_moves_with_causes():
    ids = [f"e{i}" for i in range(25)]
    enterprises_before = pd.DataFrame({S.ENTERPRISE_ID: ids, S.NAME: ids, S.EMPLOYEES: [10] * 25, S.PROFILE_HASH: ids,
                                       S.STATUS_CLASS: ["operating"] * 25})
    enterprises_after = enterprises_before.copy()
    enterprises_after.loc[22, S.EMPLOYEES] = 80  # e22 grew and climbs into the top 20
    enterprises_after.loc[3, S.STATUS_CLASS] = "closed"  # e3 closed and leaves
    before_rows = [(e, 1 - i / 100, 0.5) for i, e in enumerate(ids)]
    after_rows = [(e, s, g) for e, s, g in before_rows if e not in ("e3", "e22", "e23")]
    after_rows.insert(1, ("e22", 0.995, 0.9))
    after_rows.insert(2, ("e23", 0.994, 0.9))  # climbs without a field change: its growth score moved
    segments = pd.DataFrame({"chain_id": ["c", "c"], "segment_id": ["s", "t"], "name": ["S", "T"],
                             "strength": [1, 4], "status": ["weak", "strong"]})
    segments_after = segments.assign(strength=[4, 4], status=["strong", "strong"])
    assignments_before = pd.DataFrame({S.ENTERPRISE_ID: ["e0"], "segment_id": ["s"]})
    assignments_after = pd.DataFrame({S.ENTERPRISE_ID: ["e0", "e1", "e2", "e22"], "segment_id": ["s"] * 4})
    gap = {"gap_id": "c.s", "title": "S", "kind": "weak"}
    report = change_report(ReportInputs(
        standing_before=standing(before_rows), standing_after=standing(after_rows),
        enterprises_before=enterprises_before, enterprises_after=enterprises_after,
        gaps_before=[gap], gaps_after=[], segments_before=segments, segments_after=segments_after,
        assignments_before=assignments_before, assignments_after=assignments_after,
    ))
    g = report["gaps"][0]
    assert g["status"] == "closed" and report["gaps_closed"] == ["c.s"]
    assert [e["enterprise_id"] for e in g["entered"]] == ["e22", "e23"]
    assert g["entered"][1]["causes"] == ["growth +0.40"]
    assert g["entered"][0]["causes"] == ["grown headcount (10 -> 80)"] and g["entered"][0]["previous_rank"] == 23
    left = {e["enterprise_id"]: e for e in g["left"]}
    assert left["e3"]["causes"] == ["status operating -> closed"]
    assert left["e19"]["rank"] == 21 and left["e19"]["causes"] == ["others moved ahead"]
    moves = {m["enterprise_id"]: m for m in g["moves"]}
    assert list(moves)[:2] == ["e23", "e22"]  # biggest score moves first
    assert moves["e22"]["causes"] == ["grown headcount (10 -> 80)"] and moves["e22"]["rank_after"] == 2
    assert moves["e23"]["causes"] == ["other enterprises changed (relative scores)"]
    assert moves["e23"]["components"] == ["growth +0.40"]
    segment = report["segments"][0]
    assert (segment["strength_before"], segment["strength_after"], segment["status_after"]) == (1, 4, "strong")
    assert [j["enterprise_id"] for j in segment["joined"]] == ["e1", "e2", "e22"]
