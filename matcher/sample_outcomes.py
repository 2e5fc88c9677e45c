"""The sample's outreach history: which segments the district is thin in, and past outreach (a
prospect contacted for a gap -> landed or declined) drawn from a hidden process of fit, growth and
regional links. The process lives only here and in the benchmark that measures how close a ranker
gets to it (benchmarks/ranking_ceiling.py); the pipeline learns from the outcomes, never from it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from matcher.chain_map import ChainMap


def segment_gap_plan(chain_map: ChainMap, rng: np.random.Generator) -> dict[str, float]:
    """Weight of each segment among local firms: per chain one empty, one or two thin ones.

    The generator's first draws from ``rng`` (seeded with the sample's seed), so the same seed
    gives the same plan."""
    plan = {}
    for chain in chain_map.chains:
        ids = [s.id for s in chain.segments]
        order = rng.permutation(len(ids))
        for rank, i in enumerate(order):
            plan[ids[i]] = 0.0 if rank == 0 else (0.04 if rank in (1, 2) else 1.0)
    return plan


def segment_partners(chain_map: ChainMap, local_plan: dict[str, float]) -> dict[str, float]:
    """Each segment's local partner weight in the hidden process: the :func:`segment_gap_plan`
    weights of the segments it supplies and of those that supply it."""
    partners = {}
    for chain in chain_map.chains:
        for s in chain.segments:
            upstream = [u.id for u in chain.segments if s.id in u.supplies]
            partners[s.id] = sum(local_plan[x] for x in s.supplies + upstream)
    return partners


def draw_outcomes(
    rng: np.random.Generator,
    enterprises: pd.DataFrame,
    labels: pd.DataFrame,
    chain_map: ChainMap,
    local_plan: dict[str, float],
    logits: list[float] | None = None,
) -> pd.DataFrame:
    """Past outreach for the district's thin segments, landed with a hidden probability.

    Parameters
    ----------
    enterprises, labels : DataFrame
        The English generator's export (before its bad rows are made) and labels.
    local_plan : dict
        :func:`segment_gap_plan` of the same run.
    logits : list, optional
        When given, receives the landing logit of each outreach in draw order (the order of
        ``outcome_id``), so a benchmark can know the probability each outcome was drawn with
        (``1 / (1 + exp(-logit))``); the pipeline never sees it.

    Returns
    -------
    DataFrame
        ``outcome_id``, ``enterprise_id``, ``gap_id``, ``contacted_at``, ``outcome``, by date.
    """
    chain_of = {s.id: c.id for c, s in chain_map.segments()}
    partners = segment_partners(chain_map, local_plan)
    gap_segments = [s for s, w in local_plan.items() if w < 1.0]
    outside = labels.index[~labels["is_local"].to_numpy()]
    member = labels["segments"].str.split(";")
    members_of: dict[str, list[int]] = {}
    for i in outside:
        for segment in member.iloc[i]:
            if segment:
                members_of.setdefault(segment, []).append(int(i))
    contacted = []
    n_out = max(50, len(enterprises) // 10)
    for _ in range(n_out):
        segment = gap_segments[rng.integers(len(gap_segments))]
        # Staff mostly approach firms of the segment, sometimes a loosely related one.
        pool = members_of.get(segment, []) if rng.random() < 0.7 else []
        i = pool[rng.integers(len(pool))] if pool else int(outside[rng.integers(len(outside))])
        contacted.append((segment, i))
    records = []
    for k, (segment, i) in enumerate(contacted):
        row = enterprises.iloc[i]
        segs = member.iloc[i]
        fit = 1.0 if segs and segs[0] == segment else 0.6 if segment in segs else 0.0
        growth = float(row["staff_growth"]) if row["staff_growth"] != "" else 0.05
        funded = 1.0 if row["last_financing"] else 0.0
        near = {"Shanghai": 1.0, "Jiangsu": 0.6, "Zhejiang": 0.6, "Anhui": 0.5}.get(row["province"], 0.1)
        risky = 1.0 if row["risk_tags"] else 0.0
        logit = -3.3 + 2.2 * fit + 2.0 * growth + 0.5 * funded + 0.9 * near + 0.35 * partners[segment] - 1.5 * risky
        if logits is not None:
            logits.append(logit)
        landed = rng.random() < 1 / (1 + math.exp(-logit))
        day = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 1400)))
        records.append(
            {
                "outcome_id": f"o{k:06d}",
                "enterprise_id": row["uscc"],
                "gap_id": f"{chain_of[segment]}.{segment}",
                "contacted_at": str(day)[:10],
                "outcome": "landed" if landed else "declined",
            }
        )
    return pd.DataFrame(records).sort_values("contacted_at", kind="stable").reset_index(drop=True)
