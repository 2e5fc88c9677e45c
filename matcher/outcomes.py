"""Recorded outreach outcomes (a prospect approached for a gap, and what happened).

Required columns: ``enterprise_id``, ``gap_id``, ``contacted_at`` (date), ``outcome``. Outcomes
``landed`` / ``signed`` count as positive, ``declined`` / ``lost`` as negative; other stages
(contacted, visited, negotiating) are still open and not used for training. Rows that cannot be
used — unknown outcome, bad date, an enterprise or gap the artifact does not know — are returned
with a reason, never silently dropped.

Besides files, outcomes come from the service database (one row per approach: its first date and
latest stage) and from chain leaders' review verdicts. The landing model predicts whether an
approach lands, so of the verdicts only a rejection as *not a chain fit* is a landing label
(negative: a firm that does not fit the chain will not land for that gap). Approvals say a firm is
worth approaching, not that it will come; other rejections (already in contact, space, risk,
duplicate) and deferrals are about the process, not the firm's fit. Those verdicts are counted in
the training report but not used as landing labels. A pair with a recorded outcome is labelled by
the outcome, never by a verdict.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from matcher.errors import SchemaError

POSITIVE = ("landed", "signed")
NEGATIVE = ("declined", "lost")
OPEN = ("contacted", "visited", "negotiating")
REQUIRED = ("enterprise_id", "gap_id", "contacted_at", "outcome")


def load_outcomes(paths: list[Path], known_enterprises: set[str], known_gaps: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Usable labelled outcomes (with ``landed`` 0/1) and the rejected rows with reasons."""
    frames = []
    for path in paths:
        if not Path(path).is_file():
            raise SchemaError(f"{path}: outcomes file not found")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in REQUIRED if c not in frame.columns]
        if missing:
            raise SchemaError(f"{path}: missing columns {missing}; outcomes need {list(REQUIRED)}")
        frames.append(frame.assign(file=Path(path).name, row=range(1, len(frame) + 1)))
    return _validate(frames, known_enterprises, known_gaps)


def outcomes_from_records(records: list[dict], source: str, known_enterprises: set[str], known_gaps: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Like :func:`load_outcomes`, for rows with the same fields from elsewhere (the database)."""
    columns = list(REQUIRED)
    frame = pd.DataFrame([{c: str(r.get(c, "")) for c in columns} for r in records], columns=columns, dtype=str)
    return _validate([frame.assign(file=source, row=range(1, len(frame) + 1))], known_enterprises, known_gaps)


def review_labels(verdicts: list[dict]) -> tuple[list[dict], dict]:
    """Landing labels from the latest review verdict of each (enterprise, gap): rejections as not a
    chain fit become ``declined`` outcomes dated by the review (see the module docstring).

    Returns (outcome records, counts of verdicts used and not used)."""
    used = [{"enterprise_id": v["enterprise_id"], "gap_id": v["gap_id"], "contacted_at": v["reviewed_at"], "outcome": "declined"}
            for v in verdicts if v["verdict"] == "reject" and v.get("reason_code") == "not_chain_fit"]
    return used, {"verdicts": len(verdicts), "used_as_negative": len(used), "not_used": len(verdicts) - len(used)}


def _validate(raw_frames: list[pd.DataFrame], known_enterprises: set[str], known_gaps: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames, rejected = [], []
    for frame in raw_frames:
        outcome = frame["outcome"].str.strip().str.casefold()
        date = pd.to_datetime(frame["contacted_at"], errors="coerce")
        reasons = pd.Series("", index=frame.index)
        reasons[~outcome.isin(POSITIVE + NEGATIVE + OPEN)] = "unknown outcome (use landed, signed, declined, lost, contacted, visited, negotiating)"
        reasons[(reasons == "") & date.isna()] = "contacted_at is not a date"
        reasons[(reasons == "") & ~frame["enterprise_id"].isin(known_enterprises)] = "enterprise_id not in the published snapshot"
        reasons[(reasons == "") & ~frame["gap_id"].isin(known_gaps)] = "gap_id is neither a published gap nor a chain_id.segment_id"
        reasons[(reasons == "") & outcome.isin(OPEN)] = "still open (no final outcome yet)"
        bad = reasons != ""
        rejected.append(frame[bad].assign(reason=reasons[bad]))
        good = frame[~bad].assign(contacted_at=date[~bad], landed=outcome[~bad].isin(POSITIVE).astype(int))
        frames.append(good)
    usable = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*REQUIRED, "landed"])
    return usable, pd.concat(rejected, ignore_index=True) if rejected else pd.DataFrame()


def time_group_split(outcomes: pd.DataFrame, test_share: float = 0.3, seed: int = 0) -> tuple[pd.Index, pd.Index]:
    """Train/test split that respects time and groups.

    Test pairs are the later ones (contacted after the ``1 - test_share`` time quantile) of a
    random ``test_share`` of the gaps; training pairs are earlier ones of the other gaps; any
    training pair whose enterprise appears in the test set is dropped. So no gap and no enterprise
    is on both sides, and the model never learns from the future of what it is tested on.
    """
    gaps = sorted(outcomes["gap_id"].unique())
    rng = pd.Series(gaps).sample(frac=1.0, random_state=seed).tolist()
    n_test = max(1, round(len(gaps) * test_share))
    test_gaps = set(rng[:n_test])
    cutoff = outcomes["contacted_at"].quantile(1 - test_share)
    test = outcomes[outcomes["gap_id"].isin(test_gaps) & (outcomes["contacted_at"] >= cutoff)]
    train = outcomes[~outcomes["gap_id"].isin(test_gaps) & (outcomes["contacted_at"] < cutoff)]
    train = train[~train["enterprise_id"].isin(set(test["enterprise_id"]))]
    return train.index, test.index
