"""Growth model: which enterprises grow, learned from the snapshot history itself.

A pair of snapshots (earlier, later) gives labelled examples: features come from the earlier
snapshot only; the label says what the later one shows.

- grew (1): acquired or listed later, or employees grew by at least ``GROWTH_THRESHOLD`` (and by
  at least ``GROWTH_MIN_ABS`` people, so 2 -> 3 is not "growth"), or revenue did;
- did not (0): closed later, or operating without such growth.

Enterprises that were not operating in the earlier snapshot are not examples; those missing from
the later one, or whose growth cannot be told (unknown headcount and revenue), are left out and
counted. The model is a scikit-learn pipeline: numeric profile fields (missing stays missing) and a
compact TF-IDF/SVD representation of the description, into a small, strongly regularised
gradient-boosted classifier. On the real YC pair, bigger trees and more text components
overfitted (out-of-fold ROC-AUC 0.57-0.61 against 0.62 for this setting; benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from matcher import schemas as S

GROWTH_THRESHOLD = 0.20
GROWTH_MIN_ABS = 2
NUMERIC_FEATURES = (
    "log_employees", "age_years", "log_revenue", "revenue_growth", "employee_growth", "patents_per_employee",
    "rd_intensity", "n_qualifications", "n_risk_flags", "funding_age_days", "description_words",
    "listed_or_acquired",
)
TEXT_FEATURE = "profile_text"


@dataclass
class GrowthExamples:
    """Features (earlier snapshot) and labels (later snapshot) for one pair."""

    features: pd.DataFrame  # enterprise_id, NUMERIC_FEATURES, profile_text
    labels: pd.Series  # 1 grew, 0 did not; index aligned with features
    counts: dict


def growth_features(enterprises: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Model inputs from one snapshot, as of its date (missing values stay NaN)."""
    employees = enterprises[S.EMPLOYEES].astype("Float64").astype(float)
    revenue = enterprises[S.REVENUE].astype("Float64").astype(float)
    founded = enterprises[S.FOUNDED_YEAR].astype("Float64").astype(float)
    funding = pd.to_datetime(enterprises[S.LAST_FUNDING_DATE])
    return pd.DataFrame(
        {
            S.ENTERPRISE_ID: enterprises[S.ENTERPRISE_ID].to_numpy(),
            "log_employees": np.log1p(employees),
            "age_years": as_of.year - founded,
            "log_revenue": np.log1p(revenue),
            "revenue_growth": enterprises[S.REVENUE_GROWTH].astype("Float64").astype(float),
            "employee_growth": enterprises[S.EMPLOYEE_GROWTH].astype("Float64").astype(float),
            "patents_per_employee": enterprises[S.PATENTS].astype("Float64").astype(float) / np.maximum(employees, 1),
            "rd_intensity": enterprises[S.RD_INTENSITY].astype("Float64").astype(float),
            "n_qualifications": enterprises[S.QUALIFICATIONS].map(len).astype(float),
            "n_risk_flags": enterprises[S.RISK_FLAGS].map(len).astype(float),
            "funding_age_days": (as_of - funding).dt.days.astype(float),
            "description_words": enterprises[S.DESCRIPTION].str.split().str.len().astype(float),
            "listed_or_acquired": enterprises[S.STATUS_CLASS].isin(["listed", "acquired"]).astype(float),
            TEXT_FEATURE: (enterprises[S.NAME] + ". " + enterprises[S.DESCRIPTION]).to_numpy(),
        }
    )


def growth_examples(before: pd.DataFrame, after: pd.DataFrame) -> GrowthExamples:
    """Label the enterprises operating in ``before`` by what ``after`` shows (see module docstring)."""
    as_of = pd.to_datetime(before[S.UPDATED_AT]).max()
    active = before[before[S.STATUS_CLASS] == "operating"]
    later = after.set_index(S.ENTERPRISE_ID)
    present = active[S.ENTERPRISE_ID].isin(later.index)
    ids = active.loc[present, S.ENTERPRISE_ID]
    status_after = later.loc[ids, S.STATUS_CLASS].to_numpy()
    emp_before = active.loc[present, S.EMPLOYEES].astype("Float64").astype(float).to_numpy()
    emp_after = later.loc[ids, S.EMPLOYEES].astype("Float64").astype(float).to_numpy()
    rev_before = active.loc[present, S.REVENUE].astype("Float64").astype(float).to_numpy()
    rev_after = later.loc[ids, S.REVENUE].astype("Float64").astype(float).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        emp_grew = (emp_after >= emp_before * (1 + GROWTH_THRESHOLD)) & (emp_after - emp_before >= GROWTH_MIN_ABS)
        rev_grew = rev_after >= rev_before * (1 + GROWTH_THRESHOLD)
    known = ~np.isnan(emp_before) & ~np.isnan(emp_after) | ~np.isnan(rev_before) & ~np.isnan(rev_after)
    exited_up = np.isin(status_after, ["acquired", "listed"])
    closed = status_after == "closed"
    label = np.where(exited_up | emp_grew | rev_grew, 1, 0)
    usable = exited_up | closed | known
    features = growth_features(active.loc[present][usable], as_of).reset_index(drop=True)
    labels = pd.Series(label[usable], name="grew")
    counts = {
        "operating_before": int(len(active)),
        "missing_after": int((~present).sum()),
        "unknown_growth": int((~usable).sum()),
        "examples": int(usable.sum()),
        "grew": int(labels.sum()),
    }
    return GrowthExamples(features, labels, counts)


def usable_numeric(features: pd.DataFrame) -> list[str]:
    """Numeric features the source reports at all (a column that is entirely missing, such as
    revenue in the YC directory, carries no signal)."""
    return [c for c in NUMERIC_FEATURES if features[c].notna().any()]


def make_growth_model(numeric: list[str], random_state: int = 0) -> Pipeline:
    """The growth model: numeric fields plus 8 SVD components of the profile's TF-IDF."""
    columns = ColumnTransformer(
        [
            ("numeric", "passthrough", numeric),
            (
                "text",
                Pipeline([
                    ("tfidf", TfidfVectorizer(min_df=3, max_features=20000, ngram_range=(1, 2), sublinear_tf=True, stop_words="english")),
                    ("svd", TruncatedSVD(n_components=8, random_state=random_state)),
                ]),
                TEXT_FEATURE,
            ),
        ]
    )
    booster = HistGradientBoostingClassifier(
        max_iter=60, learning_rate=0.05, max_leaf_nodes=4, min_samples_leaf=40, l2_regularization=1.0,
        random_state=random_state,
    )
    return Pipeline([("features", columns), ("model", booster)])


def cross_validated_scores(examples: GrowthExamples, folds: int = 5, random_state: int = 0) -> np.ndarray:
    """Out-of-fold growth probabilities, one per example (stratified ``folds``-fold CV)."""
    from matcher.ranking import single_threaded

    X, y = examples.features, examples.labels.to_numpy()
    numeric = usable_numeric(X)
    scores = np.zeros(len(y))
    with single_threaded():
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=random_state).split(X, y):
            model = make_growth_model(numeric, random_state).fit(X.iloc[train], y[train])
            scores[test] = model.predict_proba(X.iloc[test])[:, 1]
    return scores


def score_report(labels: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """ROC-AUC and average precision of each named score (NaN scores ranked lowest)."""
    out = {}
    for name, s in scores.items():
        s = np.where(np.isnan(s), -np.inf, s)
        s = np.where(np.isinf(s), np.nanmin(np.where(np.isinf(s), np.nan, s)) - 1, s)
        out[name] = {"roc_auc": float(roc_auc_score(labels, s)), "average_precision": float(average_precision_score(labels, s))}
    return out
