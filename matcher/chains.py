"""The analysis of a chain map's local strength: industry-code evidence, segment assignment,
strength, status and the gap list. The chain map itself (region, chains, leaders, segments,
declared gaps) is :mod:`matcher.chain_map`.

A local enterprise belongs to a segment when its profile is close enough to the segment text.
Raw cosine similarities are not comparable across segments (a broad segment text draws higher
similarities from everyone), so each segment's similarities are standardised over the whole
indexed universe: ``z = (similarity - mean_segment) / sd_segment``. An enterprise belongs to a
segment when ``z >= threshold`` and ``z`` is within ``margin`` of its best segment (so a firm that
spans two or three segments counts in each, and a generic firm counts in none). A segment's local
strength is the number of local enterprises assigned to it; a segment with none is *missing*, one
below ``max(weak_min_count, weak_median_ratio * median strength of its chain)`` is *weak*. Missing
and weak segments plus staff-declared gaps form the gap list. The threshold (1.75) and margin
(0.25) were calibrated against the sample generator's segment labels
(benchmarks/calibrate_segments.py; precision 0.75, recall 0.64 on the 20k sample, where raw
cosine thresholds reached at best F1 0.63 against 0.69).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from matcher import schemas as S
# The chain map's model is re-exported for the modules that read a map and analyse it in one
# import (pipelines/build_index.py, matcher/catalog.py); new code imports matcher.chain_map.
from matcher.chain_map import PRIORITY_SEVERITY, ChainMap
from matcher.mapped import passes

MAX_SEGMENTS_PER_ENTERPRISE = 3


_FIRM_CODE = re.compile(r"[A-T]\d{2,4}")
WEAK_CODE_MATCH = 0.5
# An industry code within a segment's codes adds this many standard deviations to a firm's
# similarity to it in segment assignment: evidence that tips a firm near the threshold, never
# enough alone (the threshold is 2.5; industry divisions are broad).
CODE_BONUS = 0.5


def normalise_industry_code(code) -> str | None:
    """The GB/T 4754 code in a firm's industry field ("I6513", "C39", "软件开发 I6513"), upper-cased;
    None when there is none or it names only a section letter (too broad to be evidence)."""
    if code is None or code != code:  # None or NaN
        return None
    found = _FIRM_CODE.search(str(code).strip().upper())
    return found.group(0) if found else None


def industry_code_match(firm_code, segment_codes: list[str]) -> float:
    """How a firm's industry code matches a segment's ``industry_codes``, by prefix.

    1.0: the firm's code lies within one of the segment's codes (firm I6513, segment I65 or
    I6513). ``WEAK_CODE_MATCH`` (0.5): the firm reports a coarser code that contains one of the
    segment's (firm I65 from a division-level source such as the CSRC code, segment I6513): the
    same division, the class unconfirmed. 0.0: no match. NaN: the firm has no usable code or the
    segment lists none (unknown is not a mismatch).
    """
    code = normalise_industry_code(firm_code)
    if code is None or not segment_codes:
        return float("nan")
    if any(code.startswith(c) for c in segment_codes):
        return 1.0
    if any(c.startswith(code) for c in segment_codes):
        return WEAK_CODE_MATCH
    return 0.0


def _code_factors(firm_codes) -> tuple[np.ndarray, list[str]]:
    """``pd.factorize`` of the firms' :func:`normalise_industry_code` (-1: no code), normalising
    each distinct raw value once (10M firms have a few thousand)."""
    raw, raw_uniques = pd.factorize(pd.Series(list(firm_codes) if not isinstance(firm_codes, pd.Series) else firm_codes,
                                              dtype=object))
    normalised, uniques = pd.factorize(pd.Series([normalise_industry_code(u) for u in raw_uniques], dtype=object))
    return np.append(normalised, -1)[raw], list(uniques)


def industry_code_table(firm_codes, chain_map: ChainMap) -> tuple[np.ndarray, np.ndarray]:
    """:func:`industry_code_match` of every firm with every segment, computed per distinct code (a
    universe has few): ``table[index[i], j]`` is firm i's match with segment j.

    Returns (index of shape (n_firms,), int64; table of shape (n_codes + 1, n_segments), float32,
    whose last row, all NaN, is that of firms without a code).
    """
    codes, uniques = _code_factors(firm_codes)
    segments = [s.industry_codes for _, s in chain_map.segments()]
    table = np.array([[industry_code_match(u, seg) for seg in segments] for u in uniques], dtype=np.float32)
    table = np.vstack([table.reshape(len(uniques), len(segments)), np.full((1, len(segments)), np.nan, np.float32)])
    return np.where(codes < 0, len(uniques), codes), table


# Pseudo-relevance feedback on industry codes: a free-text need names no codes, so the industries
# of its best text matches stand in for them. Ten feedback documents is the usual setting of
# relevance-model feedback (RM3; Anserini's default fbDocs), not tuned here; measured in
# benchmarks/bench_cn_retrieval.py.
FEEDBACK_DOCS = 10


def industry_divisions(firm_codes) -> tuple[np.ndarray, np.ndarray]:
    """The GB/T 4754 division (section letter and two digits: "I65" of "I6513") of every firm's
    industry code, computed per distinct code.

    Returns (index of shape (n_firms,), int64; divisions, object array of the distinct divisions
    followed by None, the entry of firms without a code).
    """
    codes, uniques = _code_factors(firm_codes)
    divisions = np.array([u[:3] for u in uniques] + [None], dtype=object)
    return np.where(codes < 0, len(uniques), codes).astype(np.int64), divisions


def code_profile(divisions) -> dict[str, float]:
    """The industry profile of a need from the divisions of its best text matches (best first,
    ``None`` for a firm without a code): each division weighted by its count relative to the
    most common one (1.0 for the most common). Empty when none of them has a code."""
    counts: dict[str, int] = {}
    for division in divisions:
        if division is not None:
            counts[division] = counts.get(division, 0) + 1
    top = max(counts.values(), default=0)
    return {d: n / top for d, n in sorted(counts.items())} if top else {}


def code_profile_match(divisions, profile: dict[str, float]) -> np.ndarray:
    """Each firm's match with a need's :func:`code_profile`: the weight of its division (0 for a
    division the profile lacks), NaN for a firm without a code or an empty profile (unknown is
    not a mismatch), shape (len(divisions),), float64."""
    divisions = list(divisions)
    if not profile:
        return np.full(len(divisions), np.nan)
    return np.array([np.nan if d is None else profile.get(d, 0.0) for d in divisions], dtype=float)


def chain_words(chain_map: ChainMap) -> list[str]:
    """The chain map's Chinese keywords: words the Chinese segmenter must keep whole (see
    :class:`matcher.lexical.LexicalIndex`). Segment names are phrases, not words: left out."""
    return [w for _, s in chain_map.segments() for w in s.keywords_zh if w]


@dataclass
class ChainAnalysis:
    """Segment strengths, assignments and the gap list of a region."""

    segments: pd.DataFrame  # one row per segment
    assignments: pd.DataFrame  # enterprise_id, chain_id, segment_id, similarity
    gaps: list[dict] = field(default_factory=list)


def assign_segments(
    similarities: np.ndarray, threshold: float, margin: float, max_per_row: int = MAX_SEGMENTS_PER_ENTERPRISE
) -> np.ndarray:
    """Boolean (n_enterprises, n_segments) membership from (standardised) similarities: at least
    ``threshold``, within ``margin`` of the row's best, at most ``max_per_row`` per enterprise."""
    if similarities.size == 0:
        return np.zeros(similarities.shape, dtype=bool)
    best = similarities.max(axis=1, keepdims=True)
    member = (similarities >= threshold) & (similarities >= best - margin)
    if max_per_row < similarities.shape[1]:
        rank = np.argsort(np.argsort(-similarities, axis=1), axis=1)
        member &= rank < max_per_row
    return member


def segment_stats(vectors: np.ndarray, segment_vectors: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each segment's similarity over ``vectors`` (the universe)."""
    n_seg = segment_vectors.shape[0]
    total, total_sq, n = np.zeros(n_seg), np.zeros(n_seg), 0
    for _, rows in passes(vectors, chunk):  # memory-mapped vectors: a chunk resident at a time
        sims = (np.asarray(rows) @ segment_vectors.T).astype(np.float64)
        total += sims.sum(axis=0)
        total_sq += (sims**2).sum(axis=0)
        n += len(sims)
    mean = total / max(n, 1)
    sd = np.sqrt(np.maximum(total_sq / max(n, 1) - mean**2, 1e-12))
    return mean.astype(np.float32), sd.astype(np.float32)


def analyse_chains(
    chain_map: ChainMap,
    local: pd.DataFrame,
    local_vectors: np.ndarray,
    segment_vectors: np.ndarray,
    stats: tuple[np.ndarray, np.ndarray],
    threshold: float,
    margin: float,
    weak_min_count: int,
    weak_median_ratio: float,
    *,
    chinese: np.ndarray | None = None,
    chinese_z: np.ndarray | None = None,
    code_match: np.ndarray | None = None,
    code_bonus: float = CODE_BONUS,
) -> ChainAnalysis:
    """Assign local enterprises to segments, measure strength, and list the gaps.

    Each enterprise is compared in its own language: a Chinese profile (``chinese``) with the
    segments' Chinese texts (``chinese_z``, standardised like the English similarities, for the
    segments that have a ``text_zh``; the others keep the embedding comparison). An industry code
    that matches a segment's ``industry_codes`` (``code_match``: 1 within, 0.5 same division)
    adds ``code_bonus`` times the match, in standard deviations: evidence, never enough alone.

    Parameters
    ----------
    local : DataFrame
        Local, non-closed enterprises (``enterprise_id``, ``name``, ``employees``).
    local_vectors : ndarray of shape (len(local), dim), float32
    segment_vectors : ndarray of shape (n_segments, dim), float32
        In the order of ``chain_map.segments()``.
    stats : (mean, sd), each of shape (n_segments,)
        :func:`segment_stats` over the whole indexed universe.
    chinese : ndarray of bool, shape (len(local),), optional
        Which profiles are Chinese (:func:`matcher.lexical.text_language`).
    chinese_z : ndarray of shape (len(local), n_segments), optional
        Standardised similarity of each profile to each segment's ``text_zh`` (NaN where a segment
        has none).
    code_match : ndarray of shape (len(local), n_segments), optional
        :func:`industry_code_match` of each firm with each segment (NaN: unknown).
    """
    pairs = chain_map.segments()
    sims = local_vectors @ segment_vectors.T if len(local) else np.zeros((0, len(pairs)), np.float32)
    mean, sd = stats
    z = (sims - mean) / sd
    if chinese is not None and chinese_z is not None and len(local):
        z = np.where(np.asarray(chinese, bool)[:, None] & ~np.isnan(chinese_z), chinese_z, z)
    if code_match is not None and len(local):
        z = z + code_bonus * np.nan_to_num(code_match, nan=0.0)
    member = assign_segments(z, threshold, margin)
    rows, cols = np.nonzero(member)
    assignments = pd.DataFrame(
        {
            S.ENTERPRISE_ID: local[S.ENTERPRISE_ID].to_numpy()[rows],
            "name": local[S.NAME].to_numpy()[rows],
            "chain_id": [pairs[j][0].id for j in cols],
            "segment_id": [pairs[j][1].id for j in cols],
            "similarity": sims[rows, cols].astype(float),
            "z": z[rows, cols].astype(float),
        }
    )
    counts = member.sum(axis=0)
    segments = pd.DataFrame(
        {
            "chain_id": [c.id for c, _ in pairs],
            "segment_id": [s.id for _, s in pairs],
            "name": [s.name for _, s in pairs],
            "name_zh": [s.name_zh for _, s in pairs],
            "stage": [s.stage for _, s in pairs],
            "strength": counts.astype(int),
            "similarity_mean": mean.astype(float),
            "similarity_sd": sd.astype(float),
        }
    )
    medians = segments.groupby("chain_id")["strength"].transform("median")
    segments["weak_below"] = np.maximum(weak_min_count, np.ceil(weak_median_ratio * medians)).astype(int)
    segments["status"] = np.select(
        [segments["strength"] == 0, segments["strength"] < segments["weak_below"]],
        ["missing", "weak"],
        "strong",
    )
    return ChainAnalysis(segments=segments, assignments=assignments, gaps=gap_list(chain_map, segments))


def gap_list(chain_map: ChainMap, segments: pd.DataFrame) -> list[dict]:
    by_segment = segments.set_index("segment_id")
    declared_by_segment = {
        g.segment: g for c in chain_map.chains for g in c.gaps if g.segment is not None
    }
    gaps = []
    for chain, segment in chain_map.segments():
        row = by_segment.loc[segment.id]
        declared = declared_by_segment.get(segment.id)
        if row["status"] == "strong" and declared is None:
            continue
        if row["status"] == "missing":
            kind, severity = "missing", 1.0
        elif row["status"] == "weak":
            kind = "weak"
            severity = round(0.5 + 0.4 * (1 - row["strength"] / row["weak_below"]), 3)
        else:
            kind, severity = "declared", 0.0
        if declared is not None:
            severity = max(severity, PRIORITY_SEVERITY[declared.priority])
        gaps.append(
            {
                "gap_id": f"{chain.id}.{segment.id}",
                "chain_id": chain.id,
                "segment_id": segment.id,
                "kind": kind,
                "severity": severity,
                "text": segment.text,
                "text_zh": segment.text_zh,
                "title": segment.name,
                "stage": segment.stage,
                "strength": int(row["strength"]),
                "declared": declared is not None,
                "priority": declared.priority if declared else None,
                "note": declared.note if declared else "",
            }
        )
    for chain in chain_map.chains:
        for gap in chain.gaps:
            if gap.text is None:
                continue
            gaps.append(
                {
                    "gap_id": f"{chain.id}.{gap.id}",
                    "chain_id": chain.id,
                    "segment_id": None,
                    "kind": "declared",
                    "severity": PRIORITY_SEVERITY[gap.priority],
                    "text": gap.text,
                    "text_zh": gap.text_zh or "",
                    "title": gap.text.split(".")[0][:80],
                    "stage": None,
                    "strength": None,
                    "declared": True,
                    "priority": gap.priority,
                    "note": gap.note,
                }
            )
    gaps.sort(key=lambda g: (-g["severity"], g["chain_id"], g["gap_id"]))
    return gaps
