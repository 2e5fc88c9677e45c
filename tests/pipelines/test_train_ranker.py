"""Train step pieces without an artifact: verdicts as labels, held-out evaluation, the publish
guard, the model card, and refusing a ranker pickled by another scikit-learn version."""

from __future__ import annotations

import json
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn

from matcher.catalog import OUTCOMES_FILE, load_ranker
from matcher.errors import ArtifactCorruptError
from matcher.features import FEATURES
from matcher.outcomes import (
    LABEL_WEIGHTS, OUTCOME_RECORDED, VERDICTS_NOT_USED, label_counts, outcomes_from_records, review_labels, time_group_split,
)
from matcher.ranking import LandingModel
from pipelines.model_card import model_card_markdown
from pipelines.train_ranker import evaluate_ranking, outcomes_table, publish_guard

BASELINES = {"landing model", "similarity only", "cold-start score"}


def make_outcomes(n_gaps: int = 24, per_gap: int = 14, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Outcomes of ``n_gaps`` gaps and their pair features: landing depends on growth and risk,
    hardly on the similarity to the gap."""
    rng = np.random.default_rng(seed)
    n = n_gaps * per_gap
    features = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))
    features["gap_similarity"] = rng.uniform(0.1, 0.6, n)
    features["keyword_similarity"] = rng.uniform(0.1, 0.6, n)
    features["lexical_z"] = rng.uniform(0, 6, n)
    features["growth_score"] = np.nan
    for column in ("n_risk_flags", "eligible_policies"):
        features[column] = rng.integers(0, 3, n).astype(float)
    for column in ("same_metro", "nearby_province", "abnormal_operation", "strength_gain"):
        features[column] = (rng.random(n) < 0.3).astype(float)
    logit = 2.5 * features["employee_growth"] - 1.2 * features["n_risk_flags"] + 1.0 + rng.normal(0, 0.3, n)
    outcomes = pd.DataFrame({
        "enterprise_id": [f"e{i}" for i in rng.integers(0, n, n)],
        "gap_id": np.repeat([f"chain.g{i:02d}" for i in range(n_gaps)], per_gap),
        "contacted_at": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        "landed": (logit > 0).astype(int).to_numpy(),
    })
    return outcomes, features


@pytest.fixture(scope="module")
def synthetic():
    return make_outcomes()


@pytest.fixture(scope="module")
def evaluation(synthetic):
    outcomes, features = synthetic
    return evaluate_ranking(SimpleNamespace(ranker=None), outcomes, features, repeats=3)


# --- review verdicts as labels ----------------------------------------------------------------------

# (verdict, reason code) -> (label kind, landed, weight), or the key it is reported under as not used
VERDICT_CASES = [
    ("approve", None, ("approve", 1, 0.3)),
    ("approve", "strong_fit", ("approve", 1, 0.3)),
    ("approve", "priority_target", ("approve", 1, 0.3)),
    ("approve", "other", ("approve", 1, 0.3)),
    ("reject", "not_chain_fit", ("reject:not_chain_fit", 0, 1.0)),
    ("reject", "risk", ("reject:risk", 0, 1.0)),
    ("reject", "space_or_land_unmet", ("reject:space_or_land_unmet", 0, 1.0)),
    ("reject", "already_in_contact", "reject:already_in_contact"),
    ("reject", "duplicate", "reject:duplicate"),
    ("reject", "other", "reject:other"),
    ("defer", None, "defer:none"),
    ("defer", "needs_more_info", "defer:needs_more_info"),
    ("defer", "risk", "defer:risk"),
    ("defer", "already_in_contact", "defer:already_in_contact"),
]


def verdict(enterprise: str, kind: str, reason: str | None, gap: str = "chain.g00") -> dict:
    return {"enterprise_id": enterprise, "gap_id": gap, "verdict": kind, "reason_code": reason, "reviewed_at": "2026-05-01"}


@pytest.mark.parametrize("kind, reason, expected", VERDICT_CASES)
def test_each_verdict_is_a_weighted_label_or_reported_with_its_reason(kind, reason, expected):
    records, counts = review_labels([verdict("E1", kind, reason)])
    usable, rejected = outcomes_from_records(records, "reviews", {"E1"}, {"chain.g00"}, extra=("label_kind",))

    assert counts["verdicts"] == 1 and len(rejected) == 0
    if isinstance(expected, tuple):
        label_kind, landed, weight = expected
        assert usable[["label_kind", "landed", "weight", "source", "outcome"]].values.tolist() == \
            [[label_kind, landed, weight, "reviews", label_kind]]
        assert str(usable["contacted_at"].iloc[0].date()) == "2026-05-01" and counts["not_used"] == {}
        assert (counts["used_as_positive"], counts["used_as_negative"]) == ((1, 0) if landed else (0, 1))
    else:
        assert len(usable) == 0 and counts["used"] == 0
        reason_text = counts["not_used"][expected]["reason"]
        assert counts["not_used"][expected]["verdicts"] == 1
        assert reason_text == VERDICTS_NOT_USED.get(expected, VERDICTS_NOT_USED.get(expected.split(":")[0] + ":*"))


def test_weights_live_in_one_table_and_every_code_of_the_service_is_mapped():
    from matcher.domain import REVIEW_REASONS

    assert LABEL_WEIGHTS["outcome"] == (None, 1.0) and LABEL_WEIGHTS["approve"] == (1, 0.3)
    for code, (_, _, verdicts) in REVIEW_REASONS.items():
        for kind in verdicts:
            records, counts = review_labels([verdict("E1", kind, code)])
            assert len(records) + sum(v["verdicts"] for v in counts["not_used"].values()) == 1
            assert all(v["reason"] and "no landing meaning" not in v["reason"] for v in counts["not_used"].values()), (kind, code)


def test_a_pair_with_a_recorded_outcome_is_labelled_by_it_not_by_its_verdict():
    verdicts = [verdict("E1", "approve", None), verdict("E2", "reject", "risk"), verdict("E3", "reject", "duplicate")]

    records, counts = review_labels(verdicts, labelled_pairs={("E1", "chain.g00")})

    assert [r["enterprise_id"] for r in records] == ["E2"]
    assert counts["not_used"] == {"outcome_recorded": {"verdicts": 1, "reason": OUTCOME_RECORDED},
                                  "reject:duplicate": {"verdicts": 1, "reason": VERDICTS_NOT_USED["reject:duplicate"]}}


def test_label_counts_and_the_stored_outcomes_table_tell_landings_from_verdicts():
    files, _ = outcomes_from_records([{"enterprise_id": "E1", "gap_id": "g", "contacted_at": "2025-01-02", "outcome": "signed"},
                                      {"enterprise_id": "E2", "gap_id": "g", "contacted_at": "2025-01-03", "outcome": "lost"}],
                                     "files", {"E1", "E2", "E3"}, {"g"})
    records, _ = review_labels([verdict("E3", "approve", None, gap="g")])
    reviews, _ = outcomes_from_records(records, "reviews", {"E3"}, {"g"}, extra=("label_kind", "recorded_at", "list_version"))
    usable = pd.concat([files, reviews], ignore_index=True).assign(feature_source="recomputed")

    assert label_counts(usable) == {"outcome": {"rows": 2, "landed": 1, "weight": 1.0},
                                    "approve": {"rows": 1, "landed": 1, "weight": 0.3}}
    table = outcomes_table(usable)
    assert table.columns.tolist() == ["enterprise_id", "gap_id", "contacted_at", "outcome", "landed", "source", "label_kind",
                                      "weight", "file", "row", "recorded_at", "feature_source"]
    assert table["contacted_at"].tolist() == ["2025-01-02", "2025-01-03", "2026-05-01"]
    landings = table[(table["landed"] == 1) & (table["label_kind"] == "outcome")]
    assert landings["enterprise_id"].tolist() == ["E1"]  # the approval is landed=1 for training, not a landing


# --- held-out evaluation ---------------------------------------------------------------------------


def test_evaluation_compares_the_landing_model_with_both_baselines_over_repeated_splits(evaluation):
    assert evaluation["status"] == "evaluated"
    assert set(evaluation["metrics"]) == BASELINES  # no published model to compare with
    assert evaluation["split"]["repeats"] == 3
    assert evaluation["split"]["test_gaps"] >= 1 and evaluation["split"]["test_pairs"] > 0
    for name in BASELINES:
        assert len(evaluation["ndcg@10_per_split"][name]) == 3
        assert evaluation["metrics"][name]["ndcg@10"] == pytest.approx(np.mean(evaluation["ndcg@10_per_split"][name]), abs=1e-4)
    for name in ("landing model", "cold-start score"):  # probabilities get calibration metrics
        assert {"brier", "ece"} <= set(evaluation["metrics"][name])


def test_the_landing_model_learns_what_similarity_alone_misses(evaluation):
    metrics = evaluation["metrics"]

    assert metrics["landing model"]["roc_auc"] > 0.85
    assert metrics["landing model"]["roc_auc"] > metrics["similarity only"]["roc_auc"] + 0.2


def test_repeated_splits_hold_out_different_gaps_and_keep_their_rules(synthetic):
    outcomes, _ = synthetic
    held_out = []
    for seed in range(5):
        train, test = time_group_split(outcomes, seed=seed)
        tr, te = outcomes.loc[train], outcomes.loc[test]
        assert not set(tr["gap_id"]) & set(te["gap_id"])
        assert not set(tr["enterprise_id"]) & set(te["enterprise_id"])
        assert tr["contacted_at"].max() < te["contacted_at"].min()
        held_out.append(frozenset(te["gap_id"]))
    assert len(set(held_out)) >= 4


def with_verdicts(outcomes: pd.DataFrame, features: pd.DataFrame, n: int = 60, seed: int = 4):
    """``outcomes`` (recorded: source files, weight 1) plus ``n`` verdict labels (source reviews,
    weight 0.3) of other enterprises, spread over the same gaps and time."""
    rng = np.random.default_rng(seed)
    verdicts = pd.DataFrame({
        "enterprise_id": [f"v{i}" for i in range(n)],
        "gap_id": rng.choice(sorted(outcomes["gap_id"].unique()), n),
        "contacted_at": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        "landed": rng.integers(0, 2, n),
    })
    both = pd.concat([outcomes.assign(source="files", weight=1.0), verdicts.assign(source="reviews", weight=0.3)], ignore_index=True)
    verdict_features = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))
    return both, pd.concat([features, verdict_features], ignore_index=True)


def test_verdicts_join_training_sides_only_and_the_split_is_drawn_from_recorded_outcomes(synthetic):
    outcomes, features = synthetic
    both, _ = with_verdicts(outcomes, features)
    evaluable = both["source"] != "reviews"
    in_training = 0
    for seed in range(5):
        train, test = time_group_split(both, seed=seed, evaluable=evaluable)
        plain_train, plain_test = time_group_split(outcomes, seed=seed)

        assert list(test) == list(plain_test)  # same held-out outcomes as without verdicts
        assert set(train) - set(plain_train) <= set(both.index[~evaluable])
        tr, te = both.loc[train], both.loc[test]
        assert not set(tr["gap_id"]) & set(te["gap_id"]) and not set(tr["enterprise_id"]) & set(te["enterprise_id"])
        assert tr["contacted_at"].max() < te["contacted_at"].min()
        in_training += int((tr["source"] == "reviews").sum())
    assert in_training > 0
    train, test = time_group_split(outcomes, seed=1, evaluable=np.ones(len(outcomes), dtype=bool))
    assert [list(train), list(test)] == [list(i) for i in time_group_split(outcomes, seed=1)]


def test_evaluation_tests_on_recorded_outcomes_only_and_fits_with_the_weights(synthetic, monkeypatch):
    outcomes, features = synthetic
    both, both_features = with_verdicts(outcomes, features)
    weights = []
    real_fit = LandingModel.fit

    def recording_fit(self, X, y, groups=None, sample_weight=None):
        weights.append(sample_weight)
        return real_fit(self, X, y, groups, sample_weight)

    monkeypatch.setattr(LandingModel, "fit", recording_fit)
    plain = evaluate_ranking(SimpleNamespace(ranker=None), outcomes, features, repeats=3)
    mixed = evaluate_ranking(SimpleNamespace(ranker=None), both, both_features, repeats=3)

    assert mixed["split"]["test_pairs"] == plain["split"]["test_pairs"]
    assert mixed["split"]["train_pairs"] > plain["split"]["train_pairs"]
    for name in ("similarity only", "cold-start score"):  # the baselines see the very same test pairs
        assert mixed["metrics"][name] == plain["metrics"][name]
    assert weights[:3] == [None] * 3 and all(0.3 in set(w) and 1.0 in set(w) for w in weights[3:])


def test_evaluation_without_both_outcomes_on_each_side_says_so():
    outcomes, features = make_outcomes(n_gaps=10, per_gap=6, seed=1)
    outcomes["landed"] = 0

    result = evaluate_ranking(SimpleNamespace(ranker=None), outcomes, features, repeats=2)

    assert result["status"].startswith("no split") and "metrics" not in result


@pytest.fixture(scope="module")
def published():
    """A published landing model and the (larger) outcome set it is judged on."""
    outcomes, features = make_outcomes(n_gaps=40, per_gap=20, seed=2)
    model = LandingModel(max_iter=30).fit(features, outcomes["landed"])
    return model, outcomes, features


def test_the_published_model_is_scored_only_on_pairs_it_never_trained_on(published, tmp_path):
    model, outcomes, features = published

    fresh = evaluate_ranking(SimpleNamespace(ranker=model, path=tmp_path), outcomes, features, repeats=1)
    outcomes.assign(contacted_at=outcomes["contacted_at"].astype(str)).to_parquet(tmp_path / OUTCOMES_FILE, index=False)
    seen = evaluate_ranking(SimpleNamespace(ranker=model, path=tmp_path), outcomes, features, repeats=1)

    assert {"published model", "landing model (same pairs)"} <= set(fresh["metrics"])
    assert set(seen["metrics"]) == BASELINES
    assert seen["metrics"]["landing model"] == fresh["metrics"]["landing model"]


# --- publish guard ----------------------------------------------------------------------------------


def guard_catalog(tmp_path, card_ndcg: float | None = None, ranker=True):
    if card_ndcg is not None:
        card = {"evaluation": {"metrics": {"landing model": {"ndcg@10": card_ndcg}}}}
        (tmp_path / "model_card.json").write_text(json.dumps(card))
    return SimpleNamespace(ranker=object() if ranker else None, path=tmp_path)


def metrics(**ndcg) -> dict:
    names = {"new": "landing model", "same": "landing model (same pairs)", "published": "published model"}
    return {"status": "evaluated", "metrics": {names[k]: {"ndcg@10": v} for k, v in ndcg.items()}}


def test_guard_lets_anything_replace_cold_start(tmp_path):
    assert publish_guard(metrics(new=0.01), guard_catalog(tmp_path, 0.9, ranker=False)) is None


def test_guard_compares_with_the_published_model_on_pairs_it_never_saw(tmp_path):
    catalog = guard_catalog(tmp_path, card_ndcg=0.5)

    refusal = publish_guard(metrics(new=0.99, same=0.61, published=0.70), catalog)

    assert refusal is not None and "0.610" in refusal and "0.700" in refusal
    assert "--force" in refusal and "never trained on" in refusal
    # Same pairs decide even when the card's figure says otherwise.
    assert publish_guard(metrics(new=0.10, same=0.72, published=0.70), catalog) is None


def test_guard_falls_back_to_the_published_model_card(tmp_path):
    catalog = guard_catalog(tmp_path, card_ndcg=0.80)

    refusal = publish_guard(metrics(new=0.75), catalog)

    assert refusal is not None and "0.750" in refusal and "0.800" in refusal and "model card" in refusal
    assert publish_guard(metrics(new=0.80), catalog) is None  # as good is good enough


def test_guard_without_a_figure_to_compare_publishes(tmp_path):
    assert publish_guard(metrics(new=0.2), guard_catalog(tmp_path)) is None
    assert publish_guard({"status": "not evaluated"}, guard_catalog(tmp_path, card_ndcg=0.9)) is None


# --- model card ---------------------------------------------------------------------------------------


def test_model_card_markdown_lists_scorers_growth_features_and_libraries(evaluation):
    card = {
        "version": "20250101T000000Z-abc", "created_at": "2025-01-01T00:00:00+00:00", "ranker": "landing-model",
        "data": {"snapshot_id": "snap-1", "outcomes_used": 336, "landed": 120},
        "evaluation": evaluation,
        "growth": {"status": "trained", "metrics": {"growth model (out of fold)": {"roc_auc": 0.7123, "average_precision": 0.6}}},
        "libraries": {"scikit_learn": sklearn.__version__}, "training_seconds": 3.2,
    }

    text = model_card_markdown(card)

    assert "# Model card — 20250101T000000Z-abc" in text and "336 labels (120 recorded landings)" in text
    for name, m in evaluation["metrics"].items():
        assert f"| {name} | {m['ndcg@10']:.3f} | {m['precision@10']:.3f} | {m['roc_auc']:.3f} |" in text
    assert "ROC-AUC 0.712" in text
    assert "## Labels" not in text  # a card without label kinds (older versions) still renders
    assert "| employee_growth | increasing |" in text and "| distance_km | decreasing |" in text
    assert all(f"| {f} |" in text for f in FEATURES)
    assert f"- scikit_learn: {sklearn.__version__}" in text


# --- ranker pickles -----------------------------------------------------------------------------------


def test_a_ranker_pickled_by_another_scikit_learn_version_is_refused(tmp_path):
    path = tmp_path / "ranker.joblib"
    joblib.dump({"model": "stand-in"}, path)

    with pytest.raises(ArtifactCorruptError) as caught:
        load_ranker(path, {"ranker": {"scikit_learn": "0.24.2"}})

    message = str(caught.value)
    assert str(path) in message and "0.24.2" in message and sklearn.__version__ in message
    assert load_ranker(path, {"ranker": {"scikit_learn": sklearn.__version__}}) == {"model": "stand-in"}


def test_model_card_markdown_shows_label_kinds_unused_verdicts_and_where_the_vectors_came_from():
    card = {
        "version": "v", "created_at": "2026-01-01T00:00:00+00:00", "ranker": "landing-model",
        "data": {"snapshot_id": "s", "outcomes_used": 210, "landed": 81,
                 "label_kinds": {"outcome": {"rows": 200, "landed": 80, "weight": 1.0},
                                 "approve": {"rows": 4, "landed": 4, "weight": 0.3},
                                 "reject:risk": {"rows": 6, "landed": 0, "weight": 1.0}},
                 "review_verdicts": {"not_used": {"defer:none": {"verdicts": 2, "reason": "a deferral judges neither way"}}},
                 "features": {"from_log": 9, "recomputed": 201}},
        "evaluation": {}, "growth": {}, "libraries": {}, "training_seconds": 1.0,
    }

    text = model_card_markdown(card)

    assert "| outcome | 200 | 80 | 1 |" in text and "| approve | 4 | 4 | 0.3 |" in text and "| reject:risk | 6 | 0 | 1 |" in text
    assert "defer:none 2 (a deferral judges neither way)" in text
    assert "Feature vectors: 9 from the served-list log, 201 recomputed" in text
