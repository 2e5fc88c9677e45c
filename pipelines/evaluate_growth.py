"""Evaluate the growth model on a real before/after snapshot pair, out of fold."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.errors import ValidationFailedError
from matcher.growth import cross_validated_scores, growth_examples, score_report
from matcher.mapping import Mapping
from matcher.snapshot import validate_source


def evaluate_growth(before: Path, after: Path, mapping: Mapping, max_bad_row_share: float, folds: int = 5) -> dict:
    """Cross-validated growth scores for the enterprises operating in ``before``.

    Returns a report with counts, metrics of the model and of two simple baselines (log team size,
    company age; each in its better direction, which flatters them), and the out-of-fold scores.
    """
    started = time.perf_counter()
    frames = []
    for source in (before, after):
        result = validate_source(source, mapping)
        if result.bad_share > max_bad_row_share:
            raise ValidationFailedError(f"{source}: {result.bad_share:.1%} of rows failed validation (limit {max_bad_row_share:.1%})")
        frames.append((result.enterprises, result.rows_quarantined))
    examples = growth_examples(frames[0][0], frames[1][0])
    labels = examples.labels.to_numpy()
    if labels.min() == labels.max():
        raise ValidationFailedError(f"{before.name} -> {after.name}: every example has the same label; nothing to learn")
    oof = cross_validated_scores(examples, folds=folds)
    size = examples.features["log_employees"].to_numpy()
    age = examples.features["age_years"].to_numpy()
    baselines = {"log team size": size, "company age": age}
    report = score_report(labels, {"growth model (out of fold)": oof})
    for name, values in baselines.items():
        up = score_report(labels, {name: values})[name]
        down = score_report(labels, {name: -values})[name]
        best = up if up["roc_auc"] >= down["roc_auc"] else down
        report[f"{name} ({'larger' if best is up else 'smaller'} = more growth)"] = best
    return {
        "before": str(before),
        "after": str(after),
        "counts": {**examples.counts, "quarantined_before": frames[0][1], "quarantined_after": frames[1][1]},
        "metrics": report,
        "folds": folds,
        "seconds": round(time.perf_counter() - started, 1),
        "scores": pd.DataFrame({S.ENTERPRISE_ID: examples.features[S.ENTERPRISE_ID], "score": np.round(oof, 6)}),
    }
