"""Features of a (gap, enterprise) pair: the one place where they are defined and documented.

Every feature is computed from the published artifact (enterprise profile, vectors, chain
analysis) and the region config. Missing source values stay missing (NaN): the ranking model
handles them, and explanations never present a missing value as a number.

| group | feature | meaning | direction |
|---|---|---|---|
| gap fit | gap_similarity | cosine of profile and gap text | + |
| gap fit | keyword_similarity | cosine of profile and the segment's keywords (NaN for free-text gaps) | + |
| gap fit | lexical_z | BM25 score for the gap text, in standard deviations above the corpus mean | + |
| gap fit | chain_segments | segments of the gap's chain the firm's profile also belongs to | |
| gap fit | segment_margin | standardised similarity to the gap's segment minus the highest to any other segment | + |
| gap fit | keyword_margin | the same with keyword similarities (standardised by each segment's corpus mean and sd) | + |
| gap fit | industry_code_match | the firm's industry code against the segment's `industry_codes`, by prefix: 1 within, 0.5 a coarser code of the same division, 0 none (NaN: no code on either side); for a free-text need, the weight of the firm's division among the divisions of the need's best text matches (``code_profile``) | + |
| growth | revenue_growth, employee_growth | last reported year-on-year growth (fraction) | + |
| growth | funding_age_days | days since the last funding round (NaN: none known) | |
| growth | patents_per_100_staff | patents per 100 employees | |
| growth | rd_intensity | R&D spend / revenue | |
| growth | n_qualifications | qualifications held (high-tech enterprise, ...) | |
| growth | age_years, log_employees | company age and size | |
| growth | growth_score | growth model probability (NaN when no growth model) | + |
| regional | local_partners | local firms in the segments upstream and downstream of the gap | + |
| regional | partner_affinity | mean cosine of the firm to its 5 closest such local partners | + |
| regional | local_competitors | local firms already in the gap's segment | |
| regional | distance_km | great-circle distance to the region's centre | - |
| regional | same_metro, nearby_province | in the region's metro area / a neighbouring province | + |
| regional | eligible_policies | district policies whose conditions the firm meets for this chain | + |
| risk | n_risk_flags, abnormal_operation, shrinking_headcount | risk signals | - |
| chain value | strength_before, strength_gain | segment's local strength, and +1 if the firm would join it | gain + |
| chain value | other_gaps_filled | other open gaps of the region the firm would also fill | + |

The two margins (NaN without a segment) say whether the gap's segment is a firm's main
business or a side line (firms span several segments): positive, the gap's segment leads the
segments its profile matches by that many standard deviations; negative, another segment is
that much closer. Free-text needs get them through their nearest segment (need_as_gap). They
come last in FEATURES (added after models were published on the first 26): a landing model
remembers the names it was fitted on (``LandingModel.features_``), so an older model reads the
first 26 and explains in those. ``industry_code_match`` (issue 10) comes after them, for the same reason.

For a Chinese query answered with ``dense_weight_zh`` 0 (the default English embedding model does
not read Chinese), the pair's dense similarities (``gap_similarity``, ``keyword_similarity``) are
NaN: the model gives no usable value, and the cold-start fit then rests on the lexical and
industry-code signals (see ``make_features(dense=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.chain_map import ChainMap
from matcher.chains import code_profile_match, industry_code_table, industry_divisions
from matcher.errors import ArtifactCorruptError
from matcher.mapped import gather, passes

# The margins belong to gap fit but come last in FEATURES: published models read the first 26.
MARGINS = ("segment_margin", "keyword_margin")
APPENDED = MARGINS + ("industry_code_match",)  # after the first 26, in the order they were added
GAP_FIT = ("gap_similarity", "keyword_similarity", "lexical_z", "chain_segments") + APPENDED
GROWTH = (
    "revenue_growth", "employee_growth", "funding_age_days", "patents_per_100_staff", "rd_intensity",
    "n_qualifications", "age_years", "log_employees", "growth_score",
)
REGIONAL = (
    "local_partners", "partner_affinity", "local_competitors", "distance_km", "same_metro",
    "nearby_province", "eligible_policies",
)
RISK = ("n_risk_flags", "abnormal_operation", "shrinking_headcount")
CHAIN_VALUE = ("strength_before", "strength_gain", "other_gaps_filled")
FEATURES = tuple(f for f in GAP_FIT if f not in APPENDED) + GROWTH + REGIONAL + RISK + CHAIN_VALUE + APPENDED
GROUP_OF = {f: g for g, names in (("fit", GAP_FIT), ("growth", GROWTH), ("regional", REGIONAL), ("risk", RISK), ("chain", CHAIN_VALUE)) for f in names}

# +1: more never lowers the landing score, all else equal; -1: more never raises it.
MONOTONIC = {
    "gap_similarity": 1, "keyword_similarity": 1, "lexical_z": 1, "revenue_growth": 1, "employee_growth": 1,
    "growth_score": 1, "local_partners": 1, "partner_affinity": 1, "distance_km": -1, "same_metro": 1,
    "nearby_province": 1, "eligible_policies": 1, "n_risk_flags": -1, "abnormal_operation": -1,
    "shrinking_headcount": -1, "strength_gain": 1, "other_gaps_filled": 1, "segment_margin": 1, "keyword_margin": 1,
    "industry_code_match": 1,
}
EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1, lon1, lat2: float, lon2: float) -> np.ndarray:
    lat1, lon1 = np.radians(np.asarray(lat1, float)), np.radians(np.asarray(lon1, float))
    lat2, lon2 = np.radians(lat2), np.radians(lon2)
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


@dataclass
class FeatureContext:
    """What pair features need from a published artifact, prepared once per loaded version."""

    chain_map: ChainMap
    enterprises: pd.DataFrame
    vectors: np.ndarray  # (n, dim) in enterprise row order
    segment_vectors: np.ndarray  # (n_segments, dim) in chain_map.segments() order
    keyword_vectors: np.ndarray  # (n_segments, dim)
    segments: pd.DataFrame  # chain analysis: strength, similarity_mean, similarity_sd, status
    assignments: pd.DataFrame  # local enterprise -> segment
    gaps: list[dict]
    segment_threshold: float
    growth_scores: np.ndarray | None = None  # per enterprise row, or None
    keyword_moments: np.ndarray | None = None  # (2, n_segments): saved with the version, else computed
    stored: tuple[dict, dict] | None = None  # (arrays, meta) of firm_arrays(), saved with the version, else computed

    def __post_init__(self) -> None:
        self.segment_ids = [s.id for _, s in self.chain_map.segments()]
        self.segment_row = {s: i for i, s in enumerate(self.segment_ids)}
        self.chain_of = {s.id: c.id for c, s in self.chain_map.segments()}
        self.strength = dict(zip(self.segments["segment_id"], self.segments["strength"].astype(int)))
        self.sim_mean = self.segments["similarity_mean"].to_numpy(np.float32)
        self.sim_sd = self.segments["similarity_sd"].to_numpy(np.float32)
        # Similarities of candidates are summed in float64 (see make_features).
        self.segment_vectors64 = np.asarray(self.segment_vectors, dtype=np.float64)
        self.keyword_vectors64 = np.asarray(self.keyword_vectors, dtype=np.float64)
        self.open_gap_segments = {g["segment_id"] for g in self.gaps if g["segment_id"] and g["kind"] in ("missing", "weak")}
        neighbours: dict[str, list[str]] = {}
        for chain in self.chain_map.chains:
            for segment in chain.segments:
                upstream = [u.id for u in chain.segments if segment.id in u.supplies]
                neighbours[segment.id] = upstream + list(segment.supplies)
        self.neighbours = neighbours
        region = self.chain_map.region
        self.metro = {c.casefold() for c in region.metro_area} | {region.city.casefold()}
        self.nearby = {p.casefold() for p in region.nearby_provinces} | {region.province.casefold()}
        self._cell_groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._policies: dict[str, np.ndarray] = {}
        self._partner_store: tuple[np.ndarray, np.ndarray] | None = None  # (rows, their vectors), stored
        self._keyword_moments()
        if self.stored is not None:
            self._restore(*self.stored)
            return
        self.partner_rows = self._partner_rows()
        self.as_of = pd.to_datetime(self.enterprises[S.UPDATED_AT]).max()
        self.code_index, self.code_table = industry_code_table(self.enterprises[S.INDUSTRY_CODE], self.chain_map)
        self.division_index, self.divisions = industry_divisions(self.enterprises[S.INDUSTRY_CODE])
        self._precompute()

    def _partner_rows(self) -> dict[str, np.ndarray]:
        """Per segment: rows of the local firms in its upstream and downstream segments (by id)."""
        members = self.assignments.groupby("segment_id")[S.ENTERPRISE_ID].apply(list).to_dict()
        row_of = pd.Index(self.enterprises[S.ENTERPRISE_ID])
        return {segment_id: row_of.get_indexer(sorted({e for s in near for e in members.get(s, [])}))
                for segment_id, near in self.neighbours.items()}

    @cached_property
    def partner_segments(self) -> dict[str, list[str]]:
        """The segments each local firm was assigned to, in assignment order (grouped by numpy:
        a pandas group per firm took ~10 s for the ~1M local firms of a 10M universe)."""
        ids = self.assignments[S.ENTERPRISE_ID].to_numpy(dtype=object)
        segments = self.assignments["segment_id"].to_numpy(dtype=object)
        if not len(ids):
            return {}
        codes, firms = pd.factorize(ids)
        order = np.argsort(codes, kind="stable")
        groups = np.split(segments[order], np.flatnonzero(np.diff(codes[order])) + 1)
        return {firm: list(group) for firm, group in zip(firms, groups)}

    def firm_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """The per-firm arrays this context computes from the enterprise table (feature columns,
        industry-code indexes, eligible policies of every chain) and what goes with them, for
        saving with the version: a worker then maps them (``stored``) instead of computing them
        from every row at start-up (28 s at 10M firms)."""
        arrays = {f"feature.{name}": values for name, values in self.columns.items()}
        arrays.update({"code_index": self.code_index, "code_table": self.code_table, "division_index": self.division_index})
        arrays.update({f"policies.{chain.id}": self.eligible_policies(chain.id) for chain in self.chain_map.chains})
        arrays.update({f"partners.{segment_id}": rows for segment_id, rows in self.partner_rows.items()})
        union = np.unique(np.concatenate([r[r >= 0] for r in self.partner_rows.values()] or [np.zeros(0, np.int64)]))
        arrays.update(partner_union=union.astype(np.int64),
                      partner_vectors=gather(self.vectors, union).astype(np.float32, copy=False))
        meta = {"as_of": None if pd.isna(self.as_of) else self.as_of.isoformat(), "divisions": list(self.divisions),
                "rows": len(self.enterprises)}
        return arrays, meta

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        if meta.get("rows") != len(self.enterprises):
            raise ArtifactCorruptError(f"the version's firm arrays are for {meta.get('rows')} enterprises, its table has "
                                       f"{len(self.enterprises)}; rebuild it with 'matcher build'")
        self.as_of = pd.Timestamp(meta["as_of"]) if meta["as_of"] is not None else pd.NaT
        self.columns = {name.removeprefix("feature."): values for name, values in arrays.items() if name.startswith("feature.")}
        self.code_index, self.code_table, self.division_index = arrays["code_index"], arrays["code_table"], arrays["division_index"]
        self.divisions = np.array(meta["divisions"], dtype=object)
        self._policies = {name.removeprefix("policies."): values for name, values in arrays.items() if name.startswith("policies.")}
        self.partner_rows = {name.removeprefix("partners."): rows for name, rows in arrays.items() if name.startswith("partners.")}
        if "partner_vectors" in arrays:
            self._partner_store = (arrays["partner_union"], arrays["partner_vectors"])

    def partner_matrix(self, segment_id: str) -> np.ndarray:
        """Vectors of a segment's local partners (:attr:`partner_rows`, known rows only). From
        the version's compact copy of every local partner's vectors when it has one: gathered
        from the 15 GB ``vectors.npy`` of a 10M universe on cold pages, one gap took ~15 s."""
        rows = self.partner_rows.get(segment_id, np.zeros(0, np.int64))
        rows = rows[rows >= 0]
        if self._partner_store is not None:
            union, stored = self._partner_store
            return np.asarray(stored[np.searchsorted(union, rows)])
        return np.asarray(self.vectors[rows], dtype=np.float32)

    def _keyword_moments(self) -> None:
        """Corpus mean and sd of every segment's keyword similarity, once per loaded version (a
        query then standardises only its candidates' similarities: see :meth:`keyword_z`). A pass
        over every vector (15 GB at 10M), so a version stores them (``keyword_moments.npy``)."""
        if self.keyword_moments is not None:
            self.keyword_mean, self.keyword_sd = (np.asarray(m, dtype=np.float64) for m in self.keyword_moments)
            return
        sums = np.zeros(len(self.keyword_vectors))
        squares = np.zeros(len(self.keyword_vectors))
        keywords = np.asarray(self.keyword_vectors, dtype=np.float32).T
        for _, rows in passes(self.vectors, 50_000):  # bounded memory at 200k+ (and mapped pages released)
            sims = (np.asarray(rows, dtype=np.float32) @ keywords).astype(np.float64)
            sums += sims.sum(axis=0)
            squares += (sims ** 2).sum(axis=0)
        n = max(len(self.vectors), 1)
        self.keyword_mean = sums / n
        sd = np.sqrt(np.maximum(squares / n - self.keyword_mean ** 2, 0.0))
        self.keyword_sd = np.where(sd > 0, sd, np.nan)  # a constant similarity says nothing: NaN margins

    def _precompute(self) -> None:
        """Per-enterprise columns every pair needs, as float arrays (ranking a gap then only
        indexes them: pandas per-request work was most of the latency)."""
        ents = self.enterprises

        def col(name: str) -> np.ndarray:
            return ents[name].astype("Float64").astype(float).to_numpy()

        employees = col(S.EMPLOYEES)
        region = self.chain_map.region
        growth = col(S.EMPLOYEE_GROWTH)
        self.columns = {
            "revenue_growth": col(S.REVENUE_GROWTH),
            "employee_growth": growth,
            "funding_age_days": (self.as_of - pd.to_datetime(ents[S.LAST_FUNDING_DATE])).dt.days.astype(float).to_numpy(),
            "patents_per_100_staff": col(S.PATENTS) / np.maximum(employees, 1) * 100,
            "rd_intensity": col(S.RD_INTENSITY),
            "n_qualifications": self.per_cell(S.QUALIFICATIONS, len),
            "age_years": self.as_of.year - col(S.FOUNDED_YEAR),
            "log_employees": np.log1p(employees),
            "distance_km": haversine_km(col(S.LAT), col(S.LON), region.lat, region.lon),
            "same_metro": ents[S.CITY].fillna("").str.casefold().isin(self.metro).astype(float).to_numpy(),
            "nearby_province": ents[S.PROVINCE].fillna("").str.casefold().isin(self.nearby).astype(float).to_numpy(),
            "n_risk_flags": self.per_cell(S.RISK_FLAGS, len),
            "abnormal_operation": self.per_cell(S.RISK_FLAGS, lambda f: any("abnormal" in x.casefold() for x in f)),
            "shrinking_headcount": np.where(np.isnan(growth), np.nan, (growth < 0).astype(float)),
        }

    def per_cell(self, column: str, fn) -> np.ndarray:
        """``fn`` of every cell of a list column, as floats, called once per distinct cell object
        (a loaded table shares one list among equal cells: :mod:`matcher.enterprise_table`), so a
        10M-row universe costs a few thousand calls; the grouping is made once per column."""
        if column not in self._cell_groups:
            values = self.enterprises[column].to_numpy(dtype=object)
            ids = np.fromiter(map(id, values), dtype=np.int64, count=len(values))
            _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
            self._cell_groups[column] = (values[first], inverse)
        distinct, inverse = self._cell_groups[column]
        return np.array([fn(cell) for cell in distinct], dtype=float)[inverse]

    def eligible_policies(self, chain_id: str) -> np.ndarray:
        """Per enterprise: district policies of this chain whose conditions it meets (cached)."""
        if chain_id not in self._policies:
            self._policies[chain_id] = _eligible_policies(self, chain_id)
        return self._policies[chain_id]

    def segment_z(self, rows: np.ndarray) -> np.ndarray:
        """Standardised similarity of enterprises (rows) to every segment, (len(rows), n_segments)."""
        return (np.asarray(self.vectors[rows], dtype=np.float64) @ self.segment_vectors64.T - self.sim_mean) / self.sim_sd

    def keyword_z(self, rows: np.ndarray) -> np.ndarray:
        """Keyword similarity of enterprises (rows) to every segment, standardised per segment by
        its corpus mean and sd, (len(rows), n_segments)."""
        return (np.asarray(self.vectors[rows], dtype=np.float64) @ self.keyword_vectors64.T - self.keyword_mean) / self.keyword_sd


def _partner_affinity(candidates: np.ndarray, vectors: np.ndarray, partner_vectors: np.ndarray, k: int = 5) -> np.ndarray:
    """Mean similarity of each candidate (``candidates``, float32; ``vectors`` their float64
    copies) to its ``k`` closest local partners (``partner_vectors``, float32).

    A float32 product over all partners (thousands at 200k) finds each row's k-th best similarity;
    every partner within 1e-5 of it (far above float32 noise, so near-ties at the boundary are all
    kept whatever their order) is then scored exactly in float64 and the best k averaged: the same
    value for a firm on every path, whatever the order of the partners or candidates.
    """
    n, k = len(candidates), min(k, len(partner_vectors))
    sims = candidates @ partner_vectors.T
    kth = np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k]
    r, c = np.nonzero(sims >= (kth - 1e-5)[:, None])
    exact = np.einsum("id,id->i", vectors[r], np.asarray(partner_vectors[c], dtype=np.float64))
    order = np.lexsort((-exact, r))  # by candidate, best partner first
    r, exact = r[order], exact[order]
    keep = np.arange(len(r)) - np.searchsorted(r, np.arange(n))[r] < k
    return np.bincount(r[keep], weights=exact[keep], minlength=n) / k


def _margin(z: np.ndarray, column: int) -> np.ndarray:
    """z in ``column`` minus the row's highest z in every other column (NaN with no other;
    an unknown z elsewhere is skipped)."""
    if z.shape[1] < 2:
        return np.full(len(z), np.nan)
    others = np.delete(z, column, axis=1)
    return z[:, column] - np.fmax.reduce(others, axis=1)


def make_features(context: FeatureContext, gap: dict, gap_vector: np.ndarray, rows: np.ndarray, lexical_z: np.ndarray,
                  dense: bool = True, code_profile: dict[str, float] | None = None) -> pd.DataFrame:
    """Feature frame for enterprises ``rows`` as prospects for ``gap``.

    Parameters
    ----------
    gap : dict
        A gap from the artifact's ``gaps.json``.
    gap_vector : ndarray of shape (dim,), float32
    rows : ndarray of int
        Enterprise row positions (the candidates).
    lexical_z : ndarray of shape (len(rows),)
        Standardised BM25 scores of the candidates for the gap text.
    dense : bool
        False when the embedding model cannot read the gap text (a Chinese need with the English
        model): ``gap_similarity`` and ``keyword_similarity`` are then NaN.
    code_profile : dict of str to float, optional
        A free-text need's industry profile (:func:`matcher.chains.code_profile` of its best text
        matches): ``industry_code_match`` is then the weight of the firm's division in it, in
        place of the match with the segment the need was placed on.

    Returns
    -------
    DataFrame of shape (len(rows), len(FEATURES)), float64, NaN where a value is unknown.
    """
    ctx = context
    rows = np.asarray(rows)
    # Similarities in float64: a float32 dot product's rounding depends on the BLAS kernel, which
    # depends on the batch shape and thread count, so one firm's standardised margins differed by
    # up to 6e-6 between a ranked list and a why-not or an explanation of the same firm. Products
    # of float32 numbers are exact in float64 and their sums agree to ~1e-16 on every path: the
    # same firm gets the same features (to the explanation's 6 decimals) however it is asked for.
    vectors = np.asarray(ctx.vectors[rows], dtype=np.float64)
    segment_id = gap.get("segment_id")
    chain_id = gap["chain_id"]
    z = ctx.segment_z(rows)
    member = z >= ctx.segment_threshold
    chain_cols = [ctx.segment_row[s.id] for s in ctx.chain_map.chain(chain_id).segments]
    n = len(rows)
    out: dict[str, np.ndarray] = {}

    out["gap_similarity"] = vectors @ np.asarray(gap_vector, dtype=np.float64)
    if segment_id is not None:
        out["keyword_similarity"] = vectors @ ctx.keyword_vectors64[ctx.segment_row[segment_id]]
    else:
        out["keyword_similarity"] = np.full(n, np.nan)
    out["lexical_z"] = np.asarray(lexical_z, dtype=float)
    out["chain_segments"] = member[:, chain_cols].sum(axis=1).astype(float)
    for name, values in ctx.columns.items():
        out[name] = values[rows]
    out["growth_score"] = ctx.growth_scores[rows].astype(float) if ctx.growth_scores is not None else np.full(n, np.nan)

    partners = ctx.partner_rows.get(segment_id, np.zeros(0, int)) if segment_id else np.zeros(0, int)
    partners = partners[partners >= 0]
    out["local_partners"] = np.full(n, float(len(partners)))
    if len(partners):
        out["partner_affinity"] = _partner_affinity(np.asarray(ctx.vectors[rows]), vectors, ctx.partner_matrix(segment_id))
    else:
        out["partner_affinity"] = np.full(n, np.nan)
    out["local_competitors"] = np.full(n, float(ctx.strength.get(segment_id, np.nan)) if segment_id else np.nan)
    out["eligible_policies"] = ctx.eligible_policies(chain_id)[rows]

    if segment_id is not None:
        out["strength_before"] = np.full(n, float(ctx.strength.get(segment_id, 0)))
        out["strength_gain"] = member[:, ctx.segment_row[segment_id]].astype(float)
    else:
        out["strength_before"] = np.full(n, np.nan)
        out["strength_gain"] = np.full(n, np.nan)
    open_cols = [ctx.segment_row[s] for s in sorted(ctx.open_gap_segments) if s != segment_id]
    out["other_gaps_filled"] = member[:, open_cols].sum(axis=1).astype(float) if open_cols else np.zeros(n)
    if segment_id is not None:
        column = ctx.segment_row[segment_id]
        out["segment_margin"] = _margin(np.asarray(z, dtype=float), column)
        out["keyword_margin"] = _margin(np.asarray(ctx.keyword_z(rows), dtype=float), column)
    else:
        out["segment_margin"] = np.full(n, np.nan)
        out["keyword_margin"] = np.full(n, np.nan)
    if code_profile is not None:
        out["industry_code_match"] = code_profile_match(ctx.divisions[ctx.division_index[rows]], code_profile)
    elif segment_id is not None:
        out["industry_code_match"] = ctx.code_table[ctx.code_index[rows], ctx.segment_row[segment_id]].astype(float)
    else:
        out["industry_code_match"] = np.full(n, np.nan)
    if not dense:
        out["gap_similarity"] = np.full(n, np.nan)
        out["keyword_similarity"] = np.full(n, np.nan)
    # One float block: a frame of 29 separate columns costs ~1 ms more to build, take from and
    # hand to the models (a few hundred candidates per query).
    return pd.DataFrame(np.column_stack([np.asarray(out[name], dtype=float) for name in FEATURES]), columns=list(FEATURES))


def _eligible_policies(ctx: FeatureContext, chain_id: str) -> np.ndarray:
    policies = [p for p in ctx.chain_map.region.policies if not p.chains or chain_id in p.chains]
    needs = [{q.casefold() for q in policy.requires_qualifications} for policy in policies]

    def eligible(qualifications) -> int:
        held = {x.casefold() for x in qualifications}
        return sum(need <= held for need in needs)

    return ctx.per_cell(S.QUALIFICATIONS, eligible)


def eligible_policy_names(ctx: FeatureContext, qualifications: list[str], chain_id: str) -> list[str]:
    """Names of the district policies an enterprise with ``qualifications`` is eligible for."""
    held = {q.casefold() for q in qualifications}
    return [
        p.name for p in ctx.chain_map.region.policies
        if (not p.chains or chain_id in p.chains) and {q.casefold() for q in p.requires_qualifications} <= held
    ]
