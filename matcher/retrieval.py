"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates, fused by standardised scores.

Filters are exact: they are applied as a mask before either signal ranks, so a query asks for
``k`` results and gets ``k`` whenever ``k`` enterprises pass the filter, however selective it is.
A filter on a field an enterprise does not report (for example ``min_employees`` when employees
are unknown) excludes it: the filter cannot be confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.filters import Filters
from matcher.index import VectorSearcher
from matcher.lexical import LexicalIndex
from matcher.lexical_topk import lexical_top  # noqa: F401  (re-exported: benchmarks import it from here)
from matcher.settings import default

ROW = "_row"  # position in the artifact's enterprise table; internal, never printed
LEXICAL_Z = "_lexical_z"  # standardised BM25 score; internal, a ranking feature
RESULT_COLUMNS = (
    S.ENTERPRISE_ID, S.NAME, "score", "similarity", "lexical_score", "dense_rank", "lexical_rank",
    S.IS_LOCAL, S.CITY, S.PROVINCE, S.COUNTRY, S.EMPLOYEES, S.FOUNDED_YEAR, S.STATUS,
    S.QUALIFICATIONS,
)


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


_FILTER_ARRAYS = ("not_local", "open_status", "country_codes", "province_codes", "employees", "founded_year")


@dataclass(frozen=True)
class FilterColumns:
    """The filterable fields of ``enterprises`` as numpy arrays, built once per artifact, so a
    mask costs a few vector operations instead of string operations over every row (a country
    filter took 40 ms at 200k rows and 170 ms at 1M through pandas; benchmarks/RESULTS.md)."""

    not_local: np.ndarray
    open_status: np.ndarray
    country_codes: np.ndarray
    country_lookup: dict[str, int]
    province_codes: np.ndarray
    province_lookup: dict[str, int]
    employees: np.ndarray  # float64, NaN where unknown
    founded_year: np.ndarray  # float64, NaN where unknown

    @classmethod
    def build(cls, enterprises: pd.DataFrame) -> "FilterColumns":
        def codes(column: str) -> tuple[np.ndarray, dict[str, int]]:
            values, uniques = pd.factorize(enterprises[column].fillna("").str.casefold())
            return values.astype(np.int32), {str(u): i for i, u in enumerate(uniques)}

        def numbers(column: str) -> np.ndarray:
            return enterprises[column].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)

        country_codes, country_lookup = codes(S.COUNTRY)
        province_codes, province_lookup = codes(S.PROVINCE)
        return cls(
            not_local=~enterprises[S.IS_LOCAL].to_numpy(dtype=bool),
            open_status=~enterprises[S.STATUS_CLASS].isin(S.NOT_PROSPECTS).to_numpy(),
            country_codes=country_codes,
            country_lookup=country_lookup,
            province_codes=province_codes,
            province_lookup=province_lookup,
            employees=numbers(S.EMPLOYEES),
            founded_year=numbers(S.FOUNDED_YEAR),
        )

    def arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """These columns as named arrays and their lookups, for saving with a version
        (:meth:`restore` maps them back)."""
        arrays = {f"filter.{name}": getattr(self, name) for name in _FILTER_ARRAYS}
        return arrays, {"country_lookup": self.country_lookup, "province_lookup": self.province_lookup}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], meta: dict) -> "FilterColumns":
        return cls(**{name: arrays[f"filter.{name}"] for name in _FILTER_ARRAYS},
                   country_lookup=meta["country_lookup"], province_lookup=meta["province_lookup"])

    def mask(self, enterprises: pd.DataFrame, filters: Filters) -> np.ndarray:
        """Same mask as ``filter_mask(enterprises, filters)`` for the table these came from."""
        mask = np.ones(len(self.not_local), dtype=bool)
        if not filters.include_local:
            mask &= self.not_local
        if not filters.include_closed:
            mask &= self.open_status
        if filters.countries:
            mask &= _member(self.country_codes, self.country_lookup, filters.countries)
        if filters.provinces:
            mask &= _member(self.province_codes, self.province_lookup, filters.provinces)
        with np.errstate(invalid="ignore"):  # NaN compares False: an unknown value fails the filter
            if filters.min_employees is not None:
                mask &= self.employees >= filters.min_employees
            if filters.max_employees is not None:
                mask &= self.employees <= filters.max_employees
            if filters.founded_after is not None:
                mask &= self.founded_year > filters.founded_after
        if filters.qualifications or filters.exclude_ids:
            rest = Filters(
                qualifications=filters.qualifications, exclude_ids=filters.exclude_ids,
                include_local=True, include_closed=True,
            )
            mask &= filter_mask(enterprises, rest)
        return mask


def _member(codes: np.ndarray, lookup: dict[str, int], values: tuple[str, ...]) -> np.ndarray:
    table = np.zeros(len(lookup) + 1, dtype=bool)
    table[[lookup[v.casefold()] for v in values if v.casefold() in lookup]] = True
    return table[codes]


def corpus_sample(vectors: np.ndarray, size: int = 4096) -> np.ndarray:
    """An evenly spaced, contiguous sample of the corpus vectors; the mean and spread of a query's
    similarity over it estimate those over the whole corpus at a fraction of the cost."""
    step = max(1, len(vectors) // size)
    return np.ascontiguousarray(vectors[::step][:size], dtype=np.float32)


def fuse(
    candidates: np.ndarray,
    dense: np.ndarray,
    lexical: np.ndarray,
    dense_stats: tuple[float, float],
    lexical_stats: tuple[float, float],
    dense_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Convex combination of standardised scores: ``w * z(dense) + (1 - w) * z(bm25)``.

    Each signal is standardised by its mean and standard deviation over the corpus for this
    query, so neither dominates by scale. On the real-data development set this beat reciprocal
    rank fusion and either signal alone (benchmarks/RESULTS.md).

    Returns (order into ``candidates`` best first, fused scores in that order); ties go to the
    higher dense similarity, then the lower position.
    """
    mu_d, sd_d = dense_stats
    mu_l, sd_l = lexical_stats
    z_dense = (dense - mu_d) / sd_d if sd_d > 0 else np.zeros_like(dense)
    z_lexical = (lexical - mu_l) / sd_l if sd_l > 0 else np.zeros_like(lexical)
    fused = dense_weight * z_dense + (1.0 - dense_weight) * z_lexical
    order = np.lexsort((candidates, -dense, -fused))
    return order, fused[order]


@dataclass(frozen=True)
class Retrieved:
    """The top candidates of one query as arrays, best first (what :func:`retrieve` tabulates)."""

    rows: np.ndarray  # positions in the enterprise table
    fused: np.ndarray  # fused relevance, standard deviations above the corpus mean
    similarity: np.ndarray  # cosine similarity
    bm25: np.ndarray  # lexical score: BM25 (a Chinese query: standardised BM25 + TF-IDF cosine)
    lexical_z: np.ndarray  # standardised lexical score
    dense_rank: pd.api.extensions.ExtensionArray  # Int64, NA where the dense signal did not reach it
    lexical_rank: pd.api.extensions.ExtensionArray

    def __len__(self) -> int:
        return len(self.rows)


def retrieve_arrays(
    vectors: VectorSearcher,
    lexical: LexicalIndex,
    query_vector: np.ndarray,
    query_tokens: list[str],
    k: int,
    allowed: np.ndarray,
    *,
    depth: int = default("retrieval_depth"),
    dense_weight: float = default("dense_weight"),
    dense_sample: np.ndarray | None = None,
    chinese: bool = False,
    lexical_exact_max: int | None = None,
) -> Retrieved:
    """The numbers of :func:`retrieve` without the table (rankers build their own, once).

    ``chinese``: the query is Chinese, so its lexical signal is :meth:`LexicalIndex.relevance`'s
    BM25 + TF-IDF cosine where the index has one (BM25 otherwise). ``lexical_exact_max``: up to
    this many documents the lexical signal is scored in full, above from the query's postings
    (:meth:`LexicalIndex.query`; None: the index's own ``exact_max``)."""
    query_vector = np.asarray(query_vector, dtype=np.float32)
    depth = max(depth, k)
    dense_pos, _ = vectors.search(query_vector, depth, None if allowed.all() else allowed)
    relevance = lexical.query(query_tokens, chinese, lexical_exact_max)
    lexical_pos = relevance.top(allowed, depth)
    candidates = np.union1d(dense_pos, lexical_pos)
    dense = vectors.vectors[candidates] @ query_vector
    bm25 = relevance.rows(candidates)
    if dense_sample is None:
        dense_sample = corpus_sample(vectors.vectors)
    sample = dense_sample @ query_vector
    bm25_mean, bm25_sd = relevance.mean, relevance.sd
    order, fused = fuse(
        candidates, dense, bm25,
        (float(sample.mean()), float(sample.std())), (bm25_mean, bm25_sd),
        dense_weight,
    )
    order, fused = order[:k], fused[:k]
    top = candidates[order]
    return Retrieved(
        rows=top,
        fused=np.round(fused.astype(float), 6),
        similarity=np.round(dense[order].astype(float), 6),
        bm25=np.round(bm25[order].astype(float), 4),
        lexical_z=(bm25[order] - bm25_mean) / bm25_sd if bm25_sd > 0 else np.zeros(len(top)),
        dense_rank=_ranks_of(top, dense_pos),
        lexical_rank=_ranks_of(top, lexical_pos),
    )


def _ranks_of(rows: np.ndarray, ranked: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """1-based position of each of ``rows`` in ``ranked``, NA where absent."""
    ranks = np.zeros(len(rows), dtype=np.int64)
    found = np.zeros(len(rows), dtype=bool)
    if len(ranked) and len(rows):
        order = np.argsort(ranked, kind="stable")
        at = np.searchsorted(ranked[order], rows)
        at = np.minimum(at, len(ranked) - 1)
        found = ranked[order][at] == rows
        ranks = order[at] + 1
    return pd.arrays.IntegerArray(ranks.astype(np.int64), ~found)


def result_frame(enterprises: pd.DataFrame, found: Retrieved, order: np.ndarray | None = None,
                 head: dict | None = None, tail: dict | None = None) -> pd.DataFrame:
    """``found`` as a table in ``order`` (its own order by default): ``ROW``, id, name, then
    ``head`` (default: ``score`` = the fused relevance), the retrieval numbers, ``LEXICAL_Z``, the
    other ``RESULT_COLUMNS``, then ``tail``. One constructor call: inserting columns one at a time
    costs ~0.3 ms each with pandas 3, and re-ordering a built frame a take per column."""
    order = np.arange(len(found)) if order is None else np.asarray(order)
    rows = found.rows[order]

    def column(name: str):
        # Only the needed rows of the needed columns (enterprises.iloc[rows] copies every column).
        return enterprises[name].array.take(rows)

    return pd.DataFrame({
        ROW: rows,
        S.ENTERPRISE_ID: column(S.ENTERPRISE_ID),
        S.NAME: column(S.NAME),
        **(head if head is not None else {"score": found.fused[order]}),
        "similarity": found.similarity[order],
        "lexical_score": found.bm25[order],
        "dense_rank": found.dense_rank[order],
        "lexical_rank": found.lexical_rank[order],
        LEXICAL_Z: found.lexical_z[order],
        **{name: column(name) for name in RESULT_COLUMNS[7:]},
        **(tail or {}),
    })


def retrieve(
    enterprises: pd.DataFrame,
    vectors: VectorSearcher,
    lexical: LexicalIndex,
    query_vector: np.ndarray,
    query_tokens: list[str],
    k: int,
    filters: Filters,
    *,
    depth: int = default("retrieval_depth"),
    dense_weight: float = default("dense_weight"),
    dense_sample: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    chinese: bool = False,
) -> pd.DataFrame:
    """Top ``k`` enterprises for one query.

    The candidates are the union of the ``depth`` best allowed enterprises of each signal; each
    candidate gets both scores exactly, and the fused score (:func:`fuse`) orders them.

    Parameters
    ----------
    query_vector : ndarray of shape (dim,), float32, L2-normalised
    query_tokens : list of str
        Output of :meth:`LexicalIndex.query_tokens`.
    dense_sample : ndarray of shape (m, dim), optional
        :func:`corpus_sample` of the vectors, to standardise dense scores (computed if absent).
    allowed : ndarray of bool, optional
        ``filter_mask(enterprises, filters)`` when the caller has it cached.
    chinese : bool
        The query is Chinese (:func:`matcher.lexical.text_language`): its lexical signal adds the
        TF-IDF cosine to BM25 (:meth:`LexicalIndex.relevance`).

    Returns
    -------
    DataFrame with ``RESULT_COLUMNS``: ``score`` is the fused relevance (in standard deviations
    above the corpus mean; higher is better), ``similarity`` the cosine similarity,
    ``lexical_score`` the BM25 score (a Chinese query: the standardised sum of BM25 and the TF-IDF
    cosine), ``dense_rank`` / ``lexical_rank`` the rank in each signal
    among allowed enterprises (NA where the signal did not reach it within ``depth``).
    """
    if allowed is None:
        allowed = filter_mask(enterprises, filters)
    found = retrieve_arrays(vectors, lexical, query_vector, query_tokens, k, allowed,
                            depth=depth, dense_weight=dense_weight, dense_sample=dense_sample, chinese=chinese)
    return result_frame(enterprises, found)


INTEGER_COLUMNS = (S.EMPLOYEES, S.FOUNDED_YEAR, "rank", "dense_rank", "lexical_rank")


def records(results: pd.DataFrame) -> list[dict]:
    """JSON-ready result dicts (missing values as ``None``)."""
    out = []
    for row in results.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if key.startswith("_"):
                continue
            if isinstance(value, (list, tuple, np.ndarray)):
                clean[key] = [str(v) for v in value]
            elif value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
                clean[key] = None
            elif isinstance(value, (dict,)):
                clean[key] = value
            else:
                value = value.item() if isinstance(value, np.generic) else value
                if key in INTEGER_COLUMNS and isinstance(value, float) and value.is_integer():
                    value = int(value)
                clean[key] = value
        out.append(clean)
    return out
