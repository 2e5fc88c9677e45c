"""Ranking prospects: the landing model, the cold-start score, and ranking metrics.

**Landing model** — probability that an approached prospect lands. A
``HistGradientBoostingClassifier`` over :data:`matcher.features.FEATURES` with the monotonic
constraints of :data:`matcher.features.MONOTONIC` (more growth or more local partners never lowers
the score, all else equal), then Platt calibration of its log-odds on out-of-fold predictions.
Explanations are exact SHAP contributions in the booster's own output space, the log-odds
(``margin``): ``base_value + sum(contributions) == margin``; the calibrated probability is a
monotone function of that margin, so the order the explanation accounts for is the order shown.

**Cold start** — a region with too few recorded outcomes is ranked by a transparent score
instead: ``fit * (0.6 + 0.25 growth + 0.15 regional) - risk penalty`` (see
:func:`component_scores`). Fit gates the rest: growth and regional fit reorder firms that fit the
gap, they never lift a firm that does not (an additive mix let fast growers with a weak fit crowd
the top 10). A free-text search is ordered by ``fit - risk penalty`` (``SEARCH_WEIGHTS``): it asks
who does something, not whom to approach first. Every output says which ranker produced it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, ndcg_score, roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from matcher.features import FEATURES, MONOTONIC

COLD_START = "cold-start"
_THREADS = None


def single_threaded():
    """Run scikit-learn's OpenMP code on one thread. The ranking models see hundreds to a few
    thousand rows, where OpenMP's start-up costs more than it saves; and on a loaded 2-core
    machine its spinning threads measured 10-40x slower than one thread (tests/benchmarks)."""
    global _THREADS
    from threadpoolctl import ThreadpoolController

    if _THREADS is None:
        _THREADS = ThreadpoolController()
    return _THREADS.limit(limits=1)
WEIGHTS = {"fit": 0.6, "growth": 0.25, "regional": 0.15}
# A free-text search asks which firms do something: its cold-start order is fit alone (less the
# risk penalty), ties going to retrieval relevance. Growth and regional fit are shown for every
# result but do not reorder a search: mixed in, they lifted firms that merely tie on a saturated
# fit above more relevant ones (A-share set, benchmarks/bench_cn_retrieval.py). A gap's prospect
# list, where the question is whom to approach, keeps WEIGHTS.
SEARCH_WEIGHTS = {"fit": 1.0, "growth": 0.0, "regional": 0.0}


def cold_start_weights(gap: dict) -> dict[str, float]:
    """The cold-start weights for ``gap``: SEARCH_WEIGHTS for a free-text need (``kind`` "search"),
    else WEIGHTS."""
    return SEARCH_WEIGHTS if gap.get("kind") == "search" else WEIGHTS


class LandingModel(ClassifierMixin, BaseEstimator):
    """Calibrated, monotone gradient boosting over the pair features (see module docstring)."""

    # Small trees: with a few thousand outcomes, bigger ones overfit (held-out NDCG@10 0.644 with
    # 15 leaves / 200 iterations against 0.662 with these, mean of 6 splits on the 20k sample).
    def __init__(self, max_iter: int = 100, learning_rate: float = 0.05, max_leaf_nodes: int = 7,
                 min_samples_leaf: int = 40, l2_regularization: float = 1.0, random_state: int = 0):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def _booster(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            monotonic_cst=[MONOTONIC.get(f, 0) for f in self.feature_names()], random_state=self.random_state,
        )

    def fit(self, X: pd.DataFrame, y, groups=None, sample_weight=None) -> "LandingModel":
        """Fit booster and calibration; ``sample_weight`` weighs labels of differing strength
        (e.g. a review verdict against a recorded landing), in both."""
        with single_threaded():
            return self._fit(X, y, groups, sample_weight)

    def feature_names(self) -> list[str]:
        """The features this model reads, in its order: those it was fitted on. A model pickled
        before it recorded them (``features_``) was fitted on the first ``n_features_in_`` of
        FEATURES (later features are appended at the end, so that prefix is exact)."""
        names = getattr(self, "features_", None)
        if names is not None:
            return list(names)
        if hasattr(self, "booster_"):
            if hasattr(self.booster_, "feature_names_in_"):  # fitted on a frame: it knows them
                return list(self.booster_.feature_names_in_)
            return list(FEATURES[: self.booster_.n_features_in_])
        return list(FEATURES)

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X[self.feature_names()]
        empty = getattr(self, "empty_features_", [])
        if empty:
            X = X.assign(**{f: 0.0 for f in empty})
        return X

    def _matrix(self, X: pd.DataFrame):
        """What the booster reads: a float matrix in :meth:`feature_names` order. The booster is fitted on
        the matrix, not the frame: scikit-learn's checks of a frame's columns cost more than the
        trees themselves at a few hundred rows (2.3 ms against 0.9 ms for 300). A booster fitted on
        a frame (an older artifact) still gets one."""
        X = self._prepare(X)
        return X if hasattr(self.booster_, "feature_names_in_") else X.to_numpy(dtype=float)

    def _fit(self, X: pd.DataFrame, y, groups=None, sample_weight=None) -> "LandingModel":
        # A feature no training row reports (e.g. growth_score before there is a snapshot
        # history) carries no signal; a constant keeps the booster from failing on it.
        self.features_ = list(FEATURES)
        self.empty_features_ = [f for f in self.features_ if X[f].isna().all()]
        X = self._prepare(X).to_numpy(dtype=float)
        y = np.asarray(y, dtype=int)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.booster_ = self._booster().fit(X, y, sample_weight=w)
        margins = np.zeros(len(y))
        splits = (GroupKFold(5).split(X, y, groups) if groups is not None and len(set(groups)) >= 5
                  else StratifiedKFold(5, shuffle=True, random_state=self.random_state).split(X, y))
        for train, test in splits:
            if len(set(y[train])) < 2:
                continue
            margins[test] = self._booster().fit(X[train], y[train], sample_weight=None if w is None else w[train]).decision_function(X[test])
        self.calibrator_ = LogisticRegression(C=1e6).fit(margins.reshape(-1, 1), y, sample_weight=w)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = len(self.features_)
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The booster's log-odds (the space explanations add up in)."""
        check_is_fitted(self, "booster_")
        with single_threaded():
            return self.booster_.decision_function(self._matrix(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "calibrator_")
        p = self.calibrator_.predict_proba(self.decision_function(X).reshape(-1, 1))[:, 1]
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def explain(self, X: pd.DataFrame, margins: bool = True) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Exact SHAP contributions in log-odds: (base_value, contributions (n, n_features) in
        :meth:`feature_names` order, margins; None without ``margins``)."""
        import shap

        check_is_fitted(self, "booster_")
        if not hasattr(self, "_explainer"):
            self._explainer = shap.TreeExplainer(self.booster_)
        values = np.asarray(self._explainer.shap_values(self._prepare(X).to_numpy(dtype=float)))
        base = float(np.ravel(self._explainer.expected_value)[0])
        return base, values, self.decision_function(X) if margins else None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_explainer", None)
        return state


def _percentile(values: np.ndarray) -> np.ndarray:
    """Percentile rank among the candidates in [0, 1] (ties share their average rank, as
    ``Series.rank(pct=True)``); NaN stays NaN."""
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=float)
    known = ~np.isnan(values)
    out = np.full(len(values), np.nan)
    if known.any():
        out[known] = rankdata(values[known], method="average") / known.sum()
    return out


def _mean_available(columns: list[np.ndarray], weights: list[float] | None = None, default: float = 0.5) -> np.ndarray:
    stacked = np.vstack(columns)
    w = np.ones(len(columns)) if weights is None else np.asarray(weights, float)
    mask = ~np.isnan(stacked)
    total = (np.where(mask, stacked, 0) * w[:, None]).sum(axis=0)
    weight = (mask * w[:, None]).sum(axis=0)
    return np.where(weight > 0, total / np.maximum(weight, 1e-12), default)


_COMPONENT_INPUTS = (
    "gap_similarity", "lexical_z", "keyword_similarity", "growth_score", "employee_growth", "revenue_growth",
    "funding_age_days", "patents_per_100_staff", "rd_intensity", "n_qualifications", "same_metro", "nearby_province",
    "partner_affinity", "eligible_policies", "n_risk_flags", "abnormal_operation", "industry_code_match",
)


def component_scores(features: pd.DataFrame) -> pd.DataFrame:
    """Transparent 0-1 component scores of candidates, shown for every ranker.

    - ``fit_score``: absolute, so it means the same in every list: gap similarity (0.5) and
      keyword similarity (0.2) mapped linearly from cosine 0.15 (0) to 0.60 (1), and the
      standardised BM25 score (0.3) from 0 to 8 standard deviations, and the industry-code match
      (0.15; 1 within the segment's codes, 0.5 same division); a NaN input (no code; no dense
      similarity for a Chinese need with the English model) is left out of the weighted mean;
    - ``growth_score``: the growth model's probability when there is one, else the mean
      percentile of the growth indicators the source reports (0.5 when it reports none);
    - ``regional_score``: mean of proximity (same metro 1, neighbouring province 0.7, elsewhere
      0.2), partner affinity percentile, and policy eligibility (capped at 3 policies);
    - ``risk_penalty``: 0.15 per risk flag (at most 2) plus 0.2 for abnormal operation.
    """
    f = {name: features[name].to_numpy(dtype=float) for name in _COMPONENT_INPUTS}  # numpy from here: ~3x faster

    def cosine_scale(x: np.ndarray) -> np.ndarray:
        return np.clip((x - 0.15) / 0.45, 0.0, 1.0)

    fit = _mean_available(
        [cosine_scale(f["gap_similarity"]), np.clip(f["lexical_z"] / 8.0, 0.0, 1.0), cosine_scale(f["keyword_similarity"]),
         f["industry_code_match"]],
        [0.5, 0.3, 0.2, 0.15],
    )
    growth_model = f["growth_score"]
    if (~np.isnan(growth_model)).any():
        growth = np.where(np.isnan(growth_model), np.nanmedian(growth_model), growth_model)
    else:
        growth = _mean_available([
            _percentile(f["employee_growth"]), _percentile(f["revenue_growth"]),
            _percentile(-f["funding_age_days"]), _percentile(f["patents_per_100_staff"]),
            _percentile(f["rd_intensity"]), _percentile(f["n_qualifications"]),
        ])
    proximity = np.where(f["same_metro"] > 0, 1.0, np.where(f["nearby_province"] > 0, 0.7, 0.2))
    regional = _mean_available([proximity, _percentile(f["partner_affinity"]), np.minimum(f["eligible_policies"] / 3, 1)])
    penalty = 0.15 * np.minimum(np.nan_to_num(f["n_risk_flags"]), 2) + 0.2 * np.nan_to_num(f["abnormal_operation"])
    return pd.DataFrame({"fit_score": fit, "growth_score": growth, "regional_score": regional, "risk_penalty": penalty})


def cold_start_parts(components: pd.DataFrame, weights: dict[str, float] = WEIGHTS) -> pd.DataFrame:
    """The additive parts of the cold-start score: fit, growth and regional (each scaled by fit)
    and the risk penalty. Their sum, clipped to [0, 1], is the score. ``weights``: WEIGHTS, or
    SEARCH_WEIGHTS for a free-text search (:func:`cold_start_weights`)."""
    c = components
    return pd.DataFrame({
        "fit": weights["fit"] * c["fit_score"],
        "growth": weights["growth"] * c["fit_score"] * c["growth_score"],
        "regional": weights["regional"] * c["fit_score"] * c["regional_score"],
        "risk": -c["risk_penalty"],
    })


def cold_start_score(components: pd.DataFrame, weights: dict[str, float] = WEIGHTS) -> np.ndarray:
    """The documented score in [0, 1] used when there is no landing model."""
    return np.clip(cold_start_parts(components, weights).sum(axis=1).to_numpy(), 0.0, 1.0)


def ranking_metrics(frame: pd.DataFrame, score: str, label: str = "landed", group: str = "gap_id", k: int = 10) -> dict[str, float]:
    """NDCG@k and precision@k averaged over groups (gaps) with at least one positive, ROC-AUC
    and calibration (Brier score, expected calibration error over 10 bins) over all pairs."""
    ndcgs, precisions = [], []
    for _, g in frame.groupby(group):
        if g[label].sum() == 0 or len(g) < 2:
            continue
        ndcgs.append(ndcg_score([g[label].to_numpy()], [g[score].to_numpy()], k=k))
        top = g.sort_values(score, ascending=False).head(k)
        precisions.append(top[label].mean())
    y, s = frame[label].to_numpy(), frame[score].to_numpy()
    out = {"ndcg@10": float(np.mean(ndcgs)) if ndcgs else float("nan"),
           "precision@10": float(np.mean(precisions)) if precisions else float("nan"),
           "roc_auc": float(roc_auc_score(y, s)) if len(set(y)) == 2 else float("nan")}
    if s.min() >= 0 and s.max() <= 1:
        out["brier"] = float(brier_score_loss(y, s))
        bins = np.clip((s * 10).astype(int), 0, 9)
        out["ece"] = float(sum(abs(y[bins == b].mean() - s[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any()))
    return out
