"""Recorded outreach outcomes (a prospect approached for a gap, and what happened).

Required columns: ``enterprise_id``, ``gap_id``, ``contacted_at`` (date), ``outcome``. Outcomes
``landed`` / ``signed`` count as positive, ``declined`` / ``lost`` as negative; other stages
(contacted, visited, negotiating) are still open and not used for training. Rows that cannot be
used — unknown outcome, bad date, an enterprise or gap the artifact does not know — are returned
with a reason, never silently dropped.
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
    frames, rejected = [], []
    for path in paths:
        if not Path(path).is_file():
            raise SchemaError(f"{path}: outcomes file not found")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in REQUIRED if c not in frame.columns]
        if missing:
            raise SchemaError(f"{path}: missing columns {missing}; outcomes need {list(REQUIRED)}")
        frame = frame.assign(file=Path(path).name, row=range(1, len(frame) + 1))
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
