"""Train step pieces without an artifact: held-out evaluation, the publish guard, the model card,
and refusing a ranker pickled by another scikit-learn version."""

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
from matcher.outcomes import time_group_split
from matcher.ranking import LandingModel
from pipelines.train_ranker import evaluate_ranking, model_card_markdown, publish_guard

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

    assert "# Model card — 20250101T000000Z-abc" in text and "336 outcomes (120 landed)" in text
    for name, m in evaluation["metrics"].items():
        assert f"| {name} | {m['ndcg@10']:.3f} | {m['precision@10']:.3f} | {m['roc_auc']:.3f} |" in text
    assert "ROC-AUC 0.712" in text
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
