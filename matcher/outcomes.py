"""Recorded outreach outcomes (a prospect approached for a gap, and what happened) and the landing
labels the ranker learns from.

Required columns: ``enterprise_id``, ``gap_id``, ``contacted_at`` (date), ``outcome``. Outcomes
``landed`` / ``signed`` count as positive, ``declined`` / ``lost`` as negative; other stages
(contacted, visited, negotiating) are still open and not used for training. Rows that cannot be
used — unknown outcome, bad date, an enterprise or gap the artifact does not know — are returned
with a reason, never silently dropped.

Besides files, outcomes come from the service database (one row per approach: its first date and
latest stage) and from chain leaders' review verdicts on shortlist items. Every verdict becomes a
training label or is reported with the reason it is not one:

================================================  =======  ======  ================================
latest verdict on (enterprise, gap)               landed   weight  label kind
================================================  =======  ======  ================================
a recorded outcome (file or database)             0 / 1    1.0     ``outcome``
``approve`` (any reason)                          1        0.3     ``approve``
``reject`` as ``not_chain_fit``                   0        1.0     ``reject:not_chain_fit``
``reject`` as ``risk``                            0        1.0     ``reject:risk``
``reject`` as ``space_or_land_unmet``             0        1.0     ``reject:space_or_land_unmet``
``reject`` as ``already_in_contact``,             not used (reported under ``reviews.not_used``)
``duplicate`` or ``other``; any ``defer``
================================================  =======  ======  ================================

An approval is a chain leader's judgement that the firm is worth approaching: evidence that it
could land, but weaker than a signing, hence the low weight. A rejection for a reason about the
firm itself (it does not fit the chain, it is too risky, its space or land need cannot be met)
says the approach will not land. A rejection for a process reason (the firm is already being
approached, it duplicates another prospect, or a reason not given as a code) and a deferral say
nothing about the firm; a zero-weight row would be hollow, so they are left out of the fit.

Only the latest verdict on a pair counts (a later verdict overrides an earlier one), and a pair
with a recorded outcome is labelled by the outcome, never by a verdict. Verdict labels train the
model but are never on the test side of an evaluation split (:func:`time_group_split` with
``evaluable``): they are not landings. :data:`LABEL_WEIGHTS` (``matcher/domain.py``) is the one table of
these weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from matcher.domain import (
    LABEL_WEIGHTS, LANDED_STAGES, NOT_LANDED_STAGES, OUTCOME_KIND, UNDECIDED_STAGES, VERDICTS_NOT_USED,
)
from matcher.errors import SchemaError

REQUIRED = ("enterprise_id", "gap_id", "contacted_at", "outcome")

OUTCOME_RECORDED = "outcome recorded: the pair is labelled by its outcome, not by a verdict"
UNKNOWN_OUTCOME = f"unknown outcome (use {', '.join(LANDED_STAGES + NOT_LANDED_STAGES + UNDECIDED_STAGES)})"
SOURCES = ("files", "database", "reviews")  # values of the ``source`` column


def verdict_kind(verdict: str, reason_code: str | None) -> str:
    """``verdict:reason`` (``approve`` for any approval): a key of :data:`LABEL_WEIGHTS` when the
    verdict is a label."""
    return "approve" if verdict == "approve" else f"{verdict}:{reason_code or 'none'}"


def why_not_a_label(kind: str) -> str:
    """The reason a verdict of ``kind`` (not in :data:`LABEL_WEIGHTS`) is not a label."""
    return VERDICTS_NOT_USED.get(kind) or VERDICTS_NOT_USED.get(kind.split(":")[0] + ":*") \
        or "a reason code with no landing meaning"


def load_outcomes(paths: list[Path], known_enterprises: set[str], known_gaps: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Usable labelled outcomes (with ``landed`` 0/1, ``source`` files, ``label_kind`` outcome,
    ``weight`` 1) and the rejected rows with reasons."""
    frames = []
    for path in paths:
        if not Path(path).is_file():
            raise SchemaError(f"{path}: outcomes file not found")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in REQUIRED if c not in frame.columns]
        if missing:
            raise SchemaError(f"{path}: missing columns {missing}; outcomes need {list(REQUIRED)}")
        frames.append(frame.assign(file=Path(path).name, row=range(1, len(frame) + 1)))
    usable, rejected = _validate(frames, known_enterprises, known_gaps)
    return label_columns(usable, "files"), rejected


def outcomes_from_records(records: list[dict], source: str, known_enterprises: set[str], known_gaps: set[str],
                          extra: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Like :func:`load_outcomes`, for rows with the same fields from elsewhere (the database, or
    :func:`review_labels`); ``extra`` fields are carried along unchanged. ``source`` is one of
    :data:`SOURCES`; rows with a ``label_kind`` get that label's ``landed`` and ``weight``."""
    columns = list(REQUIRED)
    frame = pd.DataFrame([{**{c: str(r.get(c, "")) for c in columns}, **{c: r.get(c) for c in extra}} for r in records],
                         columns=[*columns, *extra], dtype=object)
    usable, rejected = _validate([frame.assign(file=source, row=range(1, len(frame) + 1))], known_enterprises, known_gaps)
    return label_columns(usable, source), rejected


def label_columns(usable: pd.DataFrame, source: str) -> pd.DataFrame:
    """Add ``source``, ``label_kind`` and ``weight`` (from :data:`LABEL_WEIGHTS`); a verdict row's
    ``landed`` comes from the table and its ``outcome`` becomes its label kind."""
    kinds = usable["label_kind"] if "label_kind" in usable else pd.Series(OUTCOME_KIND, index=usable.index, dtype=object)
    unknown = set(kinds) - set(LABEL_WEIGHTS)
    if unknown:
        raise ValueError(f"label kinds {sorted(unknown)} are not in LABEL_WEIGHTS (matcher/outcomes.py)")
    verdict = (kinds != OUTCOME_KIND).to_numpy()
    landed = usable["landed"].to_numpy(dtype=int).copy()
    landed[verdict] = [LABEL_WEIGHTS[k][0] for k in kinds[verdict]]
    outcome = usable["outcome"].to_numpy(dtype=object).copy()
    outcome[verdict] = kinds[verdict].to_numpy(dtype=object)
    return usable.assign(landed=landed, outcome=outcome, source=source, label_kind=kinds.to_numpy(dtype=object),
                         weight=np.array([LABEL_WEIGHTS[k][1] for k in kinds], dtype=float))


def review_labels(verdicts: list[dict], labelled_pairs: set[tuple[str, str]] = frozenset()) -> tuple[list[dict], dict]:
    """Landing labels from the latest review verdict of each (enterprise, gap), by
    :data:`LABEL_WEIGHTS` (see the module docstring); a pair in ``labelled_pairs`` (it has a
    recorded outcome) is left to its outcome.

    Parameters
    ----------
    verdicts : list of dict
        One per pair: ``enterprise_id``, ``gap_id``, ``verdict``, ``reason_code``, ``reviewed_at``
        (date), and any other fields (carried into the records).
    labelled_pairs : set of (enterprise_id, gap_id)

    Returns
    -------
    records : list of dict
        Outcome records (``contacted_at`` is the review date) with their ``label_kind``.
    counts : dict
        ``verdicts``, ``used``, ``used_as_positive``, ``used_as_negative``, and ``not_used``:
        per label kind (or ``outcome_recorded``) the number of verdicts and why they are not used.
    """
    records, not_used = [], {}
    for v in verdicts:
        kind = verdict_kind(v["verdict"], v.get("reason_code"))
        if (v["enterprise_id"], v["gap_id"]) in labelled_pairs:
            kind, reason = "outcome_recorded", OUTCOME_RECORDED
        elif kind not in LABEL_WEIGHTS:
            reason = why_not_a_label(kind)
        else:
            outcome = "landed" if LABEL_WEIGHTS[kind][0] == 1 else "declined"  # validated like an outcome row
            records.append({**v, "contacted_at": v["reviewed_at"], "outcome": outcome, "label_kind": kind})
            continue
        entry = not_used.setdefault(kind, {"verdicts": 0, "reason": reason})
        entry["verdicts"] += 1
    positive = sum(1 for r in records if LABEL_WEIGHTS[r["label_kind"]][0] == 1)
    return records, {"verdicts": len(verdicts), "used": len(records), "used_as_positive": positive,
                     "used_as_negative": len(records) - positive, "not_used": dict(sorted(not_used.items()))}


def label_counts(usable: pd.DataFrame) -> dict:
    """Per label kind: rows, of them landed, and the weight each carries in the fit."""
    if not len(usable):
        return {}
    counts = {}
    for kind, group in usable.groupby("label_kind", sort=False):
        counts[kind] = {"rows": len(group), "landed": int(group["landed"].sum()), "weight": LABEL_WEIGHTS[kind][1]}
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] != OUTCOME_KIND, kv[0])))


def _validate(raw_frames: list[pd.DataFrame], known_enterprises: set[str], known_gaps: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames, rejected = [], []
    for frame in raw_frames:
        outcome = frame["outcome"].astype(str).str.strip().str.casefold()
        date = pd.to_datetime(frame["contacted_at"], errors="coerce")
        reasons = pd.Series("", index=frame.index)
        reasons[~outcome.isin(LANDED_STAGES + NOT_LANDED_STAGES + UNDECIDED_STAGES)] = UNKNOWN_OUTCOME
        reasons[(reasons == "") & date.isna()] = "contacted_at is not a date"
        reasons[(reasons == "") & ~frame["enterprise_id"].isin(known_enterprises)] = "enterprise_id not in the published snapshot"
        reasons[(reasons == "") & ~frame["gap_id"].isin(known_gaps)] = "gap_id is neither a published gap nor a chain_id.segment_id"
        reasons[(reasons == "") & outcome.isin(UNDECIDED_STAGES)] = "still open (no final outcome yet)"
        bad = reasons != ""
        rejected.append(frame[bad].assign(reason=reasons[bad]))
        good = frame[~bad].assign(contacted_at=date[~bad], landed=outcome[~bad].isin(LANDED_STAGES).astype(int))
        frames.append(good)
    usable = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*REQUIRED, "landed"])
    return usable, pd.concat(rejected, ignore_index=True) if rejected else pd.DataFrame()


def time_group_split(outcomes: pd.DataFrame, test_share: float = 0.3, seed: int = 0,
                     evaluable: pd.Series | np.ndarray | None = None) -> tuple[pd.Index, pd.Index]:
    """Train/test split that respects time and groups.

    Test pairs are the later ones (contacted after the ``1 - test_share`` time quantile) of a
    random ``test_share`` of the gaps; training pairs are earlier ones of the other gaps; any
    training pair whose enterprise appears in the test set is dropped. So no gap and no enterprise
    is on both sides, and the model never learns from the future of what it is tested on.

    ``evaluable`` (boolean, one per row; default all) marks the rows that may be tested on —
    recorded outcomes, not review verdicts. The held-out gaps and the time cutoff are drawn from
    them alone; the other rows only ever join the training side, under the same rules.
    """
    mask = np.ones(len(outcomes), dtype=bool) if evaluable is None else np.asarray(evaluable, dtype=bool)
    testable = outcomes[mask]
    gaps = sorted(testable["gap_id"].unique())
    rng = pd.Series(gaps, dtype=object).sample(frac=1.0, random_state=seed).tolist()
    n_test = max(1, round(len(gaps) * test_share))
    test_gaps = set(rng[:n_test])
    cutoff = testable["contacted_at"].quantile(1 - test_share) if len(testable) else pd.NaT
    test = testable[testable["gap_id"].isin(test_gaps) & (testable["contacted_at"] >= cutoff)]
    train = outcomes[~outcomes["gap_id"].isin(test_gaps) & (outcomes["contacted_at"] < cutoff)]
    train = train[~train["enterprise_id"].isin(set(test["enterprise_id"]))]
    return train.index, test.index
