"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates fused by reciprocal rank.

Filters are exact: they are applied as a mask before either signal ranks, so a query asks for
``k`` results and gets ``k`` whenever ``k`` enterprises pass the filter, however selective it is.
A filter on a field an enterprise does not report (for example ``min_employees`` when employees
are unknown) excludes it: the filter cannot be confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.index import VectorSearcher, top_k
from matcher.lexical import LexicalIndex

RESULT_COLUMNS = (
    S.ENTERPRISE_ID, S.NAME, "score", "similarity", "lexical_score", "dense_rank", "lexical_rank",
    S.IS_LOCAL, S.CITY, S.PROVINCE, S.COUNTRY, S.EMPLOYEES, S.FOUNDED_YEAR, S.STATUS,
    S.QUALIFICATIONS,
)


@dataclass(frozen=True)
class Filters:
    """Which enterprises may be returned. Repeated values of one field are alternatives, except
    ``qualifications``, where an enterprise must hold all of them."""

    countries: tuple[str, ...] = ()
    provinces: tuple[str, ...] = ()
    min_employees: int | None = None
    max_employees: int | None = None
    founded_after: int | None = None
    qualifications: tuple[str, ...] = ()
    include_local: bool = False
    include_closed: bool = False
    exclude_ids: tuple[str, ...] = field(default=())

    def is_default(self) -> bool:
        return self == Filters(include_local=self.include_local, include_closed=self.include_closed)


def filter_mask(enterprises: pd.DataFrame, filters: Filters) -> np.ndarray:
    """Boolean mask over ``enterprises`` rows that pass ``filters``."""
    mask = np.ones(len(enterprises), dtype=bool)
    if not filters.include_local:
        mask &= ~enterprises[S.IS_LOCAL].to_numpy(dtype=bool)
    if not filters.include_closed:
        mask &= ~enterprises[S.STATUS_CLASS].isin(S.NOT_PROSPECTS).to_numpy()
    if filters.countries:
        wanted = {c.casefold() for c in filters.countries}
        mask &= enterprises[S.COUNTRY].fillna("").str.casefold().isin(wanted).to_numpy()
    if filters.provinces:
        wanted = {p.casefold() for p in filters.provinces}
        mask &= enterprises[S.PROVINCE].fillna("").str.casefold().isin(wanted).to_numpy()
    employees = enterprises[S.EMPLOYEES]
    if filters.min_employees is not None:
        mask &= (employees >= filters.min_employees).fillna(False).to_numpy(dtype=bool)
    if filters.max_employees is not None:
        mask &= (employees <= filters.max_employees).fillna(False).to_numpy(dtype=bool)
    if filters.founded_after is not None:
        mask &= (enterprises[S.FOUNDED_YEAR] > filters.founded_after).fillna(False).to_numpy(dtype=bool)
    if filters.qualifications:
        wanted = {q.casefold() for q in filters.qualifications}
        mask &= enterprises[S.QUALIFICATIONS].map(
            lambda held: wanted <= {str(q).casefold() for q in held}
        ).to_numpy(dtype=bool)
    if filters.exclude_ids:
        mask &= ~enterprises[S.ENTERPRISE_ID].isin(filters.exclude_ids).to_numpy()
    return mask


def fuse(
    dense_positions: np.ndarray,
    lexical_positions: np.ndarray,
    rrf_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion: score(d) = sum over signals of 1 / (rrf_k + rank), rank from 1.

    Returns (positions, fused scores) best first; ties go to the better dense rank.
    """
    scores: dict[int, float] = {}
    dense_rank: dict[int, int] = {}
    for rank, pos in enumerate(dense_positions.tolist(), start=1):
        scores[pos] = scores.get(pos, 0.0) + 1.0 / (rrf_k + rank)
        dense_rank[pos] = rank
    for rank, pos in enumerate(lexical_positions.tolist(), start=1):
        scores[pos] = scores.get(pos, 0.0) + 1.0 / (rrf_k + rank)
    order = sorted(scores, key=lambda p: (-scores[p], dense_rank.get(p, 1 << 30), p))
    return np.array(order, dtype=np.int64), np.array([scores[p] for p in order], dtype=np.float64)


def retrieve(
    enterprises: pd.DataFrame,
    vectors: VectorSearcher,
    lexical: LexicalIndex,
    query_vector: np.ndarray,
    query_tokens: list[str],
    k: int,
    filters: Filters,
    depth: int = 200,
    rrf_k: int = 60,
) -> pd.DataFrame:
    """Top ``k`` enterprises for one query.

    Parameters
    ----------
    query_vector : ndarray of shape (dim,), float32, L2-normalised
    query_tokens : list of str
        Output of :meth:`LexicalIndex.query_tokens`.

    Returns
    -------
    DataFrame with ``RESULT_COLUMNS``: ``score`` is the fused score scaled to (0, 1] (1: first
    in both signals), ``similarity`` the cosine similarity, ``lexical_score`` the BM25 score,
    ``dense_rank`` / ``lexical_rank`` the rank in each signal (NA where the signal did not
    retrieve it within ``depth``).
    """
    allowed = filter_mask(enterprises, filters)
    depth = max(depth, k)
    dense_pos, _ = vectors.search(query_vector, depth, None if allowed.all() else allowed)
    bm25 = lexical.scores(query_tokens)
    bm25_allowed = np.where(allowed & (bm25 > 0), bm25, -np.inf)
    lexical_pos = top_k(bm25_allowed, depth)
    lexical_pos = lexical_pos[np.isfinite(bm25_allowed[lexical_pos])]
    fused_pos, fused = fuse(dense_pos, lexical_pos, rrf_k)
    fused_pos, fused = fused_pos[:k], fused[:k]

    rows = enterprises.iloc[fused_pos]
    similarity = vectors.vectors[fused_pos] @ np.asarray(query_vector, dtype=np.float32)
    dense_rank = {p: r for r, p in enumerate(dense_pos.tolist(), start=1)}
    lexical_rank = {p: r for r, p in enumerate(lexical_pos.tolist(), start=1)}
    out = pd.DataFrame(
        {
            S.ENTERPRISE_ID: rows[S.ENTERPRISE_ID].to_numpy(),
            S.NAME: rows[S.NAME].to_numpy(),
            "score": np.round(fused / (2.0 / (rrf_k + 1)), 6),
            "similarity": np.round(similarity.astype(float), 6),
            "lexical_score": np.round(bm25[fused_pos].astype(float), 4),
            "dense_rank": pd.array([dense_rank.get(p) for p in fused_pos.tolist()], dtype="Int64"),
            "lexical_rank": pd.array([lexical_rank.get(p) for p in fused_pos.tolist()], dtype="Int64"),
        }
    )
    for column in RESULT_COLUMNS[7:]:
        out[column] = rows[column].to_numpy()
    return out


def records(results: pd.DataFrame) -> list[dict]:
    """JSON-ready result dicts (missing values as ``None``)."""
    out = []
    for row in results.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, (list, tuple, np.ndarray)):
                clean[key] = [str(v) for v in value]
            elif value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
                clean[key] = None
            elif isinstance(value, np.generic):
                clean[key] = value.item()
            else:
                clean[key] = value
        out.append(clean)
    return out
