"""Landing model contract, monotonicity, exact contributions, cold start, metrics, splits, outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from matcher.errors import SchemaError
from matcher.explain import percentile_phrase, reason_text
from matcher.features import FEATURES, MONOTONIC
from matcher.outcomes import load_outcomes, time_group_split
from matcher.ranking import (
    SEARCH_WEIGHTS, WEIGHTS, LandingModel, cold_start_parts, cold_start_score, cold_start_weights, component_scores,
    ranking_metrics,
)


def make_pairs(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))
    X["n_risk_flags"] = rng.integers(0, 3, n).astype(float)
    X["abnormal_operation"] = (rng.random(n) < 0.1).astype(float)
    X["same_metro"] = (rng.random(n) < 0.3).astype(float)
    X["nearby_province"] = (rng.random(n) < 0.5).astype(float)
    X["eligible_policies"] = rng.integers(0, 4, n).astype(float)
    X.loc[rng.random(n) < 0.2, "revenue_growth"] = np.nan  # missing stays missing
    logit = 1.5 * X["gap_similarity"] + 1.0 * X["employee_growth"] - 0.8 * X["n_risk_flags"] + rng.normal(0, 0.5, n)
    return X, (logit > 0).astype(int).to_numpy()


@pytest.fixture(scope="module")
def fitted():
    X, y = make_pairs()
    return LandingModel(max_iter=60).fit(X, y), X, y


def test_estimator_contract():
    model = LandingModel(max_iter=10, learning_rate=0.1)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict_proba(make_pairs(20)[0])
    X, y = make_pairs(200)
    assert model.fit(X, y) is model


def test_probabilities_are_calibrated_range_and_learn_the_signal(fitted):
    model, X, y = fitted
    p = model.predict_proba(X)[:, 1]
    assert ((p >= 0) & (p <= 1)).all()
    assert ranking_metrics(pd.DataFrame({"gap_id": 0, "landed": y, "s": p}), "s")["roc_auc"] > 0.8


@pytest.mark.parametrize("feature", [f for f, d in MONOTONIC.items()])
def test_monotone_features_never_move_the_score_the_wrong_way(fitted, feature):
    model, X, _ = fitted
    rows = X.sample(25, random_state=1).reset_index(drop=True)
    direction = MONOTONIC[feature]
    previous = None
    for value in np.linspace(-3, 3, 13):
        probe = rows.copy()
        probe[feature] = value
        p = model.predict_proba(probe)[:, 1]
        if previous is not None:
            assert (direction * (p - previous) >= -1e-12).all(), feature
        previous = p


def test_contributions_add_up_to_the_model_output(fitted):
    model, X, _ = fitted
    base, values, margins = model.explain(X.head(40))
    assert values.shape == (40, len(FEATURES))
    np.testing.assert_allclose(base + values.sum(axis=1), margins, atol=1e-6)
    np.testing.assert_allclose(margins, model.decision_function(X.head(40)))


def test_cold_start_score_is_bounded_and_penalises_risk():
    X, _ = make_pairs(50)
    clean = X.assign(n_risk_flags=0.0, abnormal_operation=0.0)
    risky = X.assign(n_risk_flags=2.0, abnormal_operation=1.0)
    a, b = cold_start_score(component_scores(clean)), cold_start_score(component_scores(risky))
    assert ((a >= 0) & (a <= 1)).all()
    assert (b <= a).all() and (b < a).any()


def test_a_search_is_ordered_by_fit_and_a_gap_lets_growth_and_region_reorder():
    components = pd.DataFrame({"fit_score": [0.8, 0.7], "growth_score": [0.0, 1.0], "regional_score": [0.0, 1.0],
                               "risk_penalty": [0.0, 0.0]})
    search, gap = cold_start_weights({"kind": "search", "segment_id": "s"}), cold_start_weights({"kind": "missing"})

    assert search is SEARCH_WEIGHTS and gap is WEIGHTS and cold_start_weights({}) is WEIGHTS
    by_search, by_gap = cold_start_score(components, search), cold_start_score(components, gap)
    assert by_search[0] > by_search[1]  # the better fit first, however the other grows
    assert by_gap[1] > by_gap[0]  # a prospect list still weighs growth and regional fit
    np.testing.assert_allclose(cold_start_parts(components, search).sum(axis=1), by_search)
    np.testing.assert_allclose(by_search, components["fit_score"])  # fit less the (zero) risk penalty
    risky = components.assign(risk_penalty=[0.3, 0.0])
    assert cold_start_score(risky, search)[0] < cold_start_score(risky, search)[1]  # risk still counts in a search


def test_ranking_metrics_on_known_orders():
    frame = pd.DataFrame({"gap_id": ["g"] * 4, "landed": [1, 0, 1, 0], "good": [0.9, 0.1, 0.8, 0.2], "bad": [0.1, 0.9, 0.2, 0.8]})
    assert ranking_metrics(frame, "good")["ndcg@10"] == pytest.approx(1.0)
    assert ranking_metrics(frame, "bad")["ndcg@10"] < 0.7
    assert ranking_metrics(frame, "good")["roc_auc"] == 1.0


def test_time_group_split_keeps_gaps_enterprises_and_time_apart():
    rng = np.random.default_rng(0)
    n = 400
    outcomes = pd.DataFrame({
        "gap_id": rng.choice([f"c.g{i}" for i in range(10)], n),
        "enterprise_id": rng.choice([f"e{i}" for i in range(150)], n),
        "contacted_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
        "landed": rng.integers(0, 2, n),
    })
    train, test = time_group_split(outcomes)
    tr, te = outcomes.loc[train], outcomes.loc[test]
    assert len(tr) and len(te)
    assert not set(tr["gap_id"]) & set(te["gap_id"])
    assert not set(tr["enterprise_id"]) & set(te["enterprise_id"])
    assert tr["contacted_at"].max() < te["contacted_at"].min()


def test_outcomes_with_problems_are_rejected_with_reasons(tmp_path):
    path = tmp_path / "outcomes.csv"
    pd.DataFrame({
        "enterprise_id": ["a", "b", "zzz", "a", "b"],
        "gap_id": ["c.g", "c.g", "c.g", "c.nope", "c.g"],
        "contacted_at": ["2025-01-02", "soon", "2025-01-02", "2025-01-02", "2025-03-01"],
        "outcome": ["landed", "declined", "landed", "landed", "visited"],
    }).to_csv(path, index=False)
    usable, rejected = load_outcomes([path], {"a", "b"}, {"c.g"})
    assert usable["enterprise_id"].tolist() == ["a"] and usable["landed"].tolist() == [1]
    reasons = dict(zip(rejected["row"], rejected["reason"]))
    assert "not a date" in reasons[2]
    assert "enterprise_id" in reasons[3]
    assert "gap_id" in reasons[4]
    assert "still open" in reasons[5]
    with pytest.raises(SchemaError, match="missing columns"):
        pd.DataFrame({"enterprise_id": ["a"]}).to_csv(path, index=False)
        load_outcomes([path], {"a"}, {"c.g"})


def test_a_model_fitted_before_the_margins_still_predicts_and_explains(monkeypatch):
    """A published model fitted on the features before the margins (the first 26), pickled before models recorded their
    features (no ``features_``), reads those 24 from frames that carry all of FEATURES."""
    import pickle
    from types import SimpleNamespace

    from matcher import ranking
    from matcher.explain import explain_reasons, factor_scores, model_features
    from matcher.features import APPENDED, MARGINS

    old = tuple(f for f in FEATURES if f not in APPENDED)
    assert FEATURES[: len(old)] == old and FEATURES[len(old):] == APPENDED  # appended at the end
    assert APPENDED == (*MARGINS, "industry_code_match")  # in the order they were added
    X, y = make_pairs(400)
    with monkeypatch.context() as m:
        m.setattr(ranking, "FEATURES", old)
        model = LandingModel(max_iter=30).fit(X[list(old)], y)
    del model.features_
    model = pickle.loads(pickle.dumps(model))
    assert model.feature_names() == list(old) and model_features(model) == list(old)

    rows = X.head(30).copy()
    rows["segment_margin"] = 5.0  # unseen by the model: changes nothing
    p = model.predict_proba(rows)[:, 1]
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p, model.predict_proba(X.head(30))[:, 1])
    base, values, margins = model.explain(rows)
    assert values.shape == (30, len(old))
    np.testing.assert_allclose(base + values.sum(axis=1), margins, atol=1e-6)

    catalog = SimpleNamespace(ranker=model)
    contributions, names, scores = factor_scores(model, rows, rows.head(2))
    assert names == list(old) and contributions.shape == (2, len(old))
    np.testing.assert_allclose(scores, p[:2])
    for reasons in explain_reasons(catalog, {}, rows, rows, rows):
        assert not any("segment" in t and "SD" in t for t in reasons["positive"] + reasons["negative"])


def test_a_model_fitted_before_the_industry_code_reads_the_first_28(monkeypatch):
    """A model pickled with the margins but before ``industry_code_match`` (and before it recorded
    its features) reads the first 28 features; the new one changes nothing it predicts."""
    import pickle

    from matcher import ranking

    old = FEATURES[:28]
    assert "industry_code_match" not in old
    X, y = make_pairs(400)
    with monkeypatch.context() as m:
        m.setattr(ranking, "FEATURES", old)
        model = LandingModel(max_iter=30).fit(X[list(old)], y)
    del model.features_
    model = pickle.loads(pickle.dumps(model))
    rows = X.head(30).assign(industry_code_match=1.0)

    assert model.feature_names() == list(old)
    np.testing.assert_allclose(model.predict_proba(rows)[:, 1], model.predict_proba(X.head(30))[:, 1])


def test_a_new_model_records_and_reads_every_feature():
    X, y = make_pairs(300)
    model = LandingModel(max_iter=20).fit(X, y)
    assert model.features_ == list(FEATURES) and model.feature_names() == list(FEATURES)
    assert model.explain(X.head(5))[1].shape == (5, len(FEATURES))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_margin_texts_say_main_business_or_side_line_by_sign(lang):
    ahead, behind = reason_text("segment_margin", 1.84, lang), reason_text("segment_margin", -0.72, lang)
    assert "1.8" in ahead and "0.7" in behind and "-0.7" not in behind and ahead != behind
    assert ("side line" in behind or "副业" in behind) and not ("side line" in ahead or "副业" in ahead)
    ahead, behind = reason_text("keyword_margin", 0.5, lang), reason_text("keyword_margin", -2.26, lang)
    assert "0.5" in ahead and "2.3" in behind and "-2.3" not in behind and ahead != behind
    missing = reason_text("segment_margin", float("nan"), lang)
    assert not any(ch.isdigit() for ch in missing) and ("not reported" in missing or "未披露" in missing)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_reason_texts_state_the_value_they_rest_on(lang):
    assert "+48%" in reason_text("employee_growth", 0.48, lang)
    assert "-12%" in reason_text("revenue_growth", -0.12, lang)
    assert "1,050" in reason_text("distance_km", 1050.0, lang)
    assert "140" in reason_text("log_employees", float(np.log1p(140)), lang)
    missing = reason_text("employee_growth", float("nan"), lang)
    assert "%" not in missing and ("not reported" in missing or "未披露" in missing)


def test_percentile_phrases_follow_the_population():
    population = np.arange(100, dtype=float)
    assert percentile_phrase(99.0, population, "employee_growth", "en") == "higher than 99% of candidates"
    assert percentile_phrase(0.0, population, "employee_growth", "en") == "lower than 99% of candidates"
    assert percentile_phrase(0.0, population, "distance_km", "en") == "closer than 99% of candidates"  # nearest
    ties = np.array([0.0] * 61 + list(range(1, 40)), dtype=float)
    assert percentile_phrase(0.0, ties, "n_qualifications", "en") == "fewer than 39% of candidates"
    assert percentile_phrase(5.0, np.full(10, 5.0), "local_partners", "en") == ""


def test_percentile_ranks_like_pandas_with_ties_and_missing_values():
    from matcher.ranking import _percentile

    rng = np.random.default_rng(3)
    values = rng.integers(0, 6, 200).astype(float)  # many ties
    values[rng.random(200) < 0.2] = np.nan
    expected = pd.Series(values).rank(pct=True, method="average").to_numpy()
    got = _percentile(values)
    assert np.array_equal(np.isnan(got), np.isnan(values))
    assert np.allclose(got[~np.isnan(got)], expected[~np.isnan(expected)])
    assert np.isnan(_percentile(np.full(4, np.nan))).all()
