"""``matcher train`` learns from outcomes and review verdicts recorded through the service, on the
feature vectors the served-list log holds for them."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from matcher.catalog import OUTCOMES_FILE, Catalog
from matcher.features import FEATURES
from matcher.outcomes import LABEL_WEIGHTS, OUTCOME_RECORDED, VERDICTS_NOT_USED
from matcher.store import Store, repo, upgrade
from matcher.enterprise_table import read_enterprise_table
from pipelines import train_ranker
from tests.e2e.conftest import cli
from tests.service.databases import throwaway_database

pytestmark = pytest.mark.e2e

STAFF = repo.Actor(key_id=None, prefix="test", role="staff")
LEADER = repo.Actor(key_id=None, prefix="lead", role="chain_leader")


def copy_home(service_workspace, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(service_workspace.home, home, ignore=shutil.ignore_patterns("matcher.db*"))
    version_dir = sorted((home / "models" / "matcher").glob("2*"))[-1]
    gaps = [g["gap_id"] for g in json.loads((version_dir / "gaps.json").read_text())]
    ids = read_enterprise_table(version_dir / "enterprises.arrow")["enterprise_id"].tolist()
    return home, gaps, ids


def ranked_list(version: str, gap_id: str, vectors: dict[str, list], created_at: datetime | None = None,
                names: list[str] | None = None) -> dict:
    items = [{"enterprise_id": e, "rank": i + 1, "score": 0.5, "features": v} for i, (e, v) in enumerate(vectors.items())]
    record = {"list_version": version, "artifact_version": "v", "ranker": "cold-start", "gap_id": gap_id, "query_text": "t",
              "filters": {}, "excluded": [], "feature_names": list(FEATURES) if names is None else names,
              "n_items": len(items), "items": items}
    return {**record, "created_at": created_at} if created_at else record


def shortlist(store, gap_id: str, ids: list[str], ranked: dict) -> list[dict]:
    sid = repo.create_shortlist(store, STAFF, gap_id=gap_id, chain_id="c", title="t", filters={}, top=len(ids), data_version="v",
                                model_version="cold-start", snapshot_id="s", ranked_list=ranked,
                                items=[{"rank": i + 1, "enterprise_id": e, "name": "n", "score": 0.5, "features": {},
                                        "explanation_en": {}, "explanation_zh": {}} for i, e in enumerate(ids)])
    return sid, {i["enterprise_id"]: i["item_id"] for i in repo.get_shortlist(store, sid)["items"]}


def test_train_reads_database_outcomes_and_verdicts(service_workspace, backend, tmp_path):
    home, gaps, ids = copy_home(service_workspace, tmp_path)
    with throwaway_database(backend, tmp_path) as url:
        upgrade(url)
        store = Store(url)
        repo.record_outcome(store, STAFF, ids[0], gaps[0], "contacted", date(2026, 3, 1))
        repo.record_outcome(store, STAFF, ids[0], gaps[0], "landed", date(2026, 6, 1))
        repo.record_outcome(store, STAFF, ids[1], gaps[0], "declined", date(2026, 4, 1), reason="moved to Suzhou")
        repo.record_outcome(store, STAFF, ids[2], gaps[1], "visited", date(2026, 5, 1))  # still open: not a label
        sid, items = shortlist(store, gaps[1], ids[3:6], ranked_list("l1", gaps[1], {}, names=[]))
        repo.review_item(store, LEADER, sid, items[ids[3]], "reject", "not_chain_fit")
        repo.review_item(store, LEADER, sid, items[ids[4]], "approve", None)
        repo.review_item(store, LEADER, sid, items[ids[5]], "reject", "risk")
        store.dispose()

        report = json.loads(cli("train", "--home", home, "--database-url", url, "--json", expect=None).stdout)
        outcomes = report["outcomes"]
        assert outcomes["sources"] == {"files": 0, "database": 2, "reviews": 3}
        assert outcomes["reviews"] == {"verdicts": 3, "used": 3, "used_as_positive": 1, "used_as_negative": 2, "not_used": {}}
        assert outcomes["label_kinds"] == {"outcome": {"rows": 2, "landed": 1, "weight": 1.0},
                                           "approve": {"rows": 1, "landed": 1, "weight": 0.3},
                                           "reject:not_chain_fit": {"rows": 1, "landed": 0, "weight": 1.0},
                                           "reject:risk": {"rows": 1, "landed": 0, "weight": 1.0}}
        assert outcomes["usable"] == 5 and outcomes["rejected_reasons"] == {"still open (no final outcome yet)": 1}
        assert outcomes["features"] == {"from_log": 0, "recomputed": 0}  # cold start: no pair features needed
        assert report["status"] == "published" and report["ranker"] == "cold-start"  # 5 labels: too few for a model

        files = cli("train", "--home", home, "--no-database", expect=None)
        assert files.exit_code != 0 and "--outcomes" in files.stderr


def outcome_file(path, ids: list[str], gaps: list[str], n: int = 200, seed: int = 0):
    """``n`` distinct (enterprise, gap) outcomes of 2024-2025, about 40 % landed."""
    rng = np.random.default_rng(seed)
    pairs = sorted({(ids[i], gaps[j]) for i, j in zip(rng.integers(50, len(ids), 4 * n), rng.integers(0, len(gaps), 4 * n))})
    pairs = [pairs[i] for i in rng.permutation(len(pairs))[:n]]
    dates = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    pd.DataFrame({"enterprise_id": [p[0] for p in pairs], "gap_id": [p[1] for p in pairs], "contacted_at": dates.strftime("%Y-%m-%d"),
                  "outcome": np.where(rng.random(n) < 0.4, "landed", "declined")}).to_csv(path, index=False)
    return path


def vector(value: float, missing: tuple[int, ...] = ()) -> list:
    return [None if i in missing else round(value + i / 1000, 6) for i in range(len(FEATURES))]


def as_array(v: list) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in v], dtype=float)


@pytest.fixture
def labelled_database(service_workspace, backend, tmp_path):
    """Outcomes and every kind of verdict recorded through the service, with served lists behind
    some of them; yields (home, url, outcome file, ids, gaps, the vectors that must be used)."""
    home, gaps, ids = copy_home(service_workspace, tmp_path)
    now = datetime.now(timezone.utc)
    served_before, served_after = vector(0.123, missing=(1, 5)), vector(0.999)
    shortlisted = {e: vector(0.2 + k / 100) for k, e in enumerate(ids[2:10])}
    with throwaway_database(backend, tmp_path) as url:
        upgrade(url)
        store = Store(url)
        repo.log_served(store, [
            ranked_list("served-before", gaps[0], {ids[0]: served_before, ids[30]: vector(0.5)}, now - timedelta(days=2)),
            ranked_list("older", gaps[0], {ids[0]: vector(0.7)}, now - timedelta(days=9)),
            ranked_list("other-features", gaps[0], {ids[0]: [0.4]}, now - timedelta(days=1), names=["something_else"]),
            ranked_list("served-after", gaps[0], {ids[0]: served_after}, now + timedelta(days=1)),
        ], [])
        repo.record_outcome(store, STAFF, ids[0], gaps[0], "contacted", date(2026, 3, 1))
        repo.record_outcome(store, STAFF, ids[0], gaps[0], "landed", date(2026, 6, 1))
        repo.record_outcome(store, STAFF, ids[1], gaps[0], "declined", date(2026, 4, 1), reason="moved to Suzhou")  # never served

        sid, items = shortlist(store, gaps[1], ids[2:10], ranked_list("shortlisted", gaps[1], shortlisted))
        verdicts = [(ids[2], "reject", "other"), (ids[3], "reject", "not_chain_fit"), (ids[3], "approve", "strong_fit"),
                    (ids[4], "reject", "risk"), (ids[5], "reject", "space_or_land_unmet"), (ids[6], "reject", "already_in_contact"),
                    (ids[7], "defer", "needs_more_info"), (ids[8], "reject", "duplicate"), (ids[9], "approve", None)]
        for enterprise, verdict, reason in verdicts:
            repo.review_item(store, LEADER, sid, items[enterprise], verdict, reason)
        repo.record_outcome(store, STAFF, ids[9], gaps[1], "declined", date(2026, 5, 2), reason="chose Hangzhou")
        store.dispose()
        files = outcome_file(tmp_path / "outreach.csv", ids, gaps)
        yield home, url, files, ids, gaps, {"served_before": served_before, "shortlisted": shortlisted}


def test_every_verdict_is_a_label_or_reported_and_logged_vectors_are_trained_on(labelled_database, monkeypatch):
    home, url, files, ids, gaps, vectors = labelled_database
    fits, splits = [], []

    def recording_fit(self, X, y, groups=None, sample_weight=None):
        fits.append((len(y), None if sample_weight is None else np.asarray(sample_weight)))
        return real_fit(self, X, y, groups, sample_weight)

    def spy_split(outcomes, **kwargs):
        train, test = real_split(outcomes, **kwargs)
        splits.append((outcomes.loc[train, "source"].tolist(), outcomes.loc[test, "source"].tolist()))
        return train, test

    real_fit, real_split = train_ranker.LandingModel.fit, train_ranker.time_group_split
    monkeypatch.setattr(train_ranker.LandingModel, "fit", recording_fit)
    monkeypatch.setattr(train_ranker, "time_group_split", spy_split)

    report = json.loads(cli("train", "--home", home, "--outcomes", files, "--database-url", url, "--json").stdout)

    assert report["status"] == "published" and report["ranker"] == "landing-model"
    o = report["outcomes"]
    assert o["sources"] == {"files": 200, "database": 3, "reviews": 3}
    assert o["reviews"]["verdicts"] == 8  # the latest per pair: ids[3]'s approval replaced its rejection
    assert (o["reviews"]["used"], o["reviews"]["used_as_positive"], o["reviews"]["used_as_negative"]) == (3, 1, 2)
    assert o["reviews"]["not_used"] == {
        "defer:needs_more_info": {"verdicts": 1, "reason": VERDICTS_NOT_USED["defer:*"]},
        "outcome_recorded": {"verdicts": 1, "reason": OUTCOME_RECORDED},
        "reject:already_in_contact": {"verdicts": 1, "reason": VERDICTS_NOT_USED["reject:already_in_contact"]},
        "reject:duplicate": {"verdicts": 1, "reason": VERDICTS_NOT_USED["reject:duplicate"]},
        "reject:other": {"verdicts": 1, "reason": VERDICTS_NOT_USED["reject:other"]},
    }
    kinds = o["label_kinds"]
    assert set(kinds) == {"outcome", "approve", "reject:risk", "reject:space_or_land_unmet"}
    assert kinds["outcome"]["rows"] == 203 and kinds["approve"] == {"rows": 1, "landed": 1, "weight": LABEL_WEIGHTS["approve"][1]}
    # ids[0] (outcome, served two days before), ids[9] (outcome, on the shortlisted list), and the
    # three verdicts (their items' list) come from the log; the rest is recomputed.
    assert o["features"] == {"from_log": 5, "recomputed": 201}

    final_rows, final_weights = fits[-1]
    assert final_rows == 206 and sorted(set(final_weights)) == [0.3, 1.0] and final_weights.sum() == pytest.approx(205.3)
    assert len(splits) == train_ranker.EVALUATION_SPLITS and all("reviews" not in test for _, test in splits)  # never tested on

    version = home / "models" / "matcher" / report["version"]
    table = pd.read_parquet(version / OUTCOMES_FILE)
    row = table.set_index(["enterprise_id", "gap_id"])
    assert row.loc[(ids[3], gaps[1]), ["landed", "weight", "label_kind", "source", "feature_source"]].tolist() == \
        [1, 0.3, "approve", "reviews", "shortlisted"]
    assert row.loc[(ids[0], gaps[0]), ["landed", "label_kind", "source", "feature_source"]].tolist() == \
        [1, "outcome", "database", "served-before"]
    assert row.loc[(ids[9], gaps[1]), ["landed", "label_kind", "feature_source"]].tolist() == [0, "outcome", "shortlisted"]
    assert row.loc[(ids[1], gaps[0]), "feature_source"] == "recomputed"
    assert (table.loc[table["source"] == "files", "feature_source"] == "recomputed").all()
    landings = table[(table["landed"] == 1) & (table["label_kind"] == "outcome")]
    assert ids[3] not in set(landings["enterprise_id"])  # an approval is not a landing
    card = json.loads((version / "model_card.json").read_text())
    assert card["data"]["label_kinds"] == kinds and card["data"]["features"] == {"from_log": 5, "recomputed": 201}
    assert card["data"]["landed"] == kinds["outcome"]["landed"]  # approvals are not landings
    text = (version / "model_card.md").read_text()
    assert "| approve | 1 | 1 | 0.3 |" in text and "Feature vectors: 5 from the served-list log, 201 recomputed" in text


def test_a_label_recorded_through_the_service_trains_on_its_logged_vector(labelled_database):
    home, url, files, ids, gaps, vectors = labelled_database
    catalog = Catalog.load(sorted((home / "models" / "matcher").glob("2*"))[-1])
    config = train_ranker.TrainConfig(artifacts_dir=home / "models" / "matcher", snapshots_dir=home / "models" / "snapshots",
                                      outcomes=(files,), database_url=url)
    usable, _, _ = train_ranker.gather_outcomes(config, set(catalog.enterprises["enterprise_id"]), catalog.known_gap_ids())
    logged = train_ranker.logged_features(url, usable)

    features = train_ranker.pair_features(catalog, usable, logged)

    at = {(e, g): i for i, (e, g) in enumerate(zip(usable["enterprise_id"], usable["gap_id"]))}
    used = features.iloc[at[(ids[0], gaps[0])]].to_numpy(dtype=float)
    recomputed = train_ranker.pair_features(catalog, usable.iloc[[at[(ids[0], gaps[0])]]]).iloc[0].to_numpy(dtype=float)
    np.testing.assert_array_equal(used, as_array(vectors["served_before"]))  # not the later list, nor the older one
    assert not np.allclose(np.nan_to_num(recomputed), np.nan_to_num(used))  # so it really is the logged one
    for enterprise in (ids[3], ids[4], ids[5], ids[9]):
        np.testing.assert_array_equal(features.iloc[at[(enterprise, gaps[1])]].to_numpy(dtype=float),
                                      as_array(vectors["shortlisted"][enterprise]))
    unlogged = usable.index[usable["source"] == "files"][:5]
    pd.testing.assert_frame_equal(features.loc[unlogged], train_ranker.pair_features(catalog, usable.loc[unlogged]))
    assert list(features.columns) == list(FEATURES) and len(features) == len(usable)
