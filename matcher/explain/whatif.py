"""What-if reports: why one firm ranks above another (``compare``) and what keeps a firm below a
shortlist (``why_not``), factor by factor, from a ranking already made (the catalog ranks:
:meth:`matcher.catalog.Catalog.compare` and :meth:`~matcher.catalog.Catalog.why_not`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.explain.assemble import cold_start_contributions, model_features
from matcher.explain.labels import rounded, stated
from matcher.explain.render import reason_text
from matcher.ranking import cold_start_score, component_scores
from matcher.retrieval import filter_mask


def factor_scores(ranker, pool: pd.DataFrame, rows_features: pd.DataFrame, pool_positions: list[int | None] | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per-factor contributions of some rows, in the ranker's own additive space (``ranker``: the
    catalog's landing model, None for cold start).

    ``pool_positions[i]`` is row i's position in ``pool`` when it is one of the ranked
    candidates: its cold-start components are then exactly those of the list.

    Returns (contributions (n, n_factors), factor names, scores in [0, 1]).
    """
    if ranker is not None:
        _, values, _ = ranker.explain(rows_features)
        return values, model_features(ranker), ranker.predict_proba(rows_features)[:, 1]
    pool_components = component_scores(pool)
    rows = []
    for i in range(len(rows_features)):
        at = None if pool_positions is None else pool_positions[i]
        if at is not None:
            rows.append(pool_components.iloc[at])
        else:  # not in the list: place it among the candidates
            both = pd.concat([pool, rows_features.iloc[[i]]], ignore_index=True)
            rows.append(component_scores(both).iloc[-1])
    comp = pd.DataFrame(rows).reset_index(drop=True)
    parts = [cold_start_contributions(comp.iloc[i])[1] for i in range(len(comp))]
    names = list(parts[0])
    return np.array([[p[n] for n in names] for p in parts]), names, cold_start_score(comp)


def compare_factors(names: list[str], a: np.ndarray, b: np.ndarray, fa: pd.Series | None, fb: pd.Series | None, lang: str,
                    industries: tuple[str | None, str | None] = (None, None), search: bool = False) -> list[dict]:
    """Factor-by-factor difference A - B, largest in A's favour first (``industries``: A's and B's
    :func:`industry_label`)."""
    out = []
    for j, name in enumerate(names):
        entry = {"factor": name, "a_contribution": rounded(a[j]), "b_contribution": rounded(b[j]), "difference": rounded(a[j] - b[j])}
        if fa is not None and name in fa.index:
            # Equal values can still contribute differently (tree interactions); such a factor
            # is not a reason, and is flagged so it is not presented as one.
            entry["same_value"] = bool(np.isclose(fa[name], fb[name], equal_nan=True))
            entry["a_value"], entry["b_value"] = rounded(fa[name]), rounded(fb[name])
            entry["a_text"] = reason_text(name, stated(fa[name]), lang, industries[0], search)
            entry["b_text"] = reason_text(name, stated(fb[name]), lang, industries[1], search)
        out.append(entry)
    return sorted(out, key=lambda e: (-e["difference"], e["factor"]))


def _positions(ranked: pd.DataFrame, rows: np.ndarray) -> list[int | None]:
    where = {int(r): i for i, r in enumerate(ranked["_row"].to_numpy())}
    return [where.get(int(r)) for r in rows]


def _factors(ranker, ranked: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray, features: pd.DataFrame,
             industries: list[str | None], search: bool, lang: str) -> tuple[np.ndarray, list[dict]]:
    """Scores of two rows and :func:`compare_factors` of the first against the second."""
    values, names, scores = factor_scores(ranker, pool, features, _positions(ranked, rows))
    valued = ranker is not None  # cold-start factors are components, not feature values
    factors = compare_factors(names, values[0], values[1], features.iloc[0] if valued else None,
                              features.iloc[1] if valued else None, lang, tuple(industries), search)
    return scores, factors


def compare_report(gap: dict, a_id: str, b_id: str, ranked: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray,
                   features: pd.DataFrame, industries: list[str | None], ranker, ranker_name: str,
                   lang: str = "en") -> dict:
    """Why A ranks above (or below) B for a gap, factor by factor, from a ranking already made.

    ``ranked`` / ``pool``: the gap's ranked candidates and their features
    (:meth:`matcher.catalog.Catalog.rank_pool`); ``rows``, ``features``, ``industries``: A's and
    B's enterprise rows, features and :func:`industry_label`; ``ranker``: the landing model, None
    for cold start.
    """
    scores, factors = _factors(ranker, ranked, pool, rows, features, industries, not gap.get("segment_id"), lang)
    ranks = dict(zip(ranked["enterprise_id"], ranked["rank"]))
    return {
        "gap_id": gap["gap_id"], "ranker": ranker_name,
        "a": {"enterprise_id": a_id, "score": rounded(scores[0]), "rank": ranks.get(a_id)},
        "b": {"enterprise_id": b_id, "score": rounded(scores[1]), "rank": ranks.get(b_id)},
        "higher": a_id if scores[0] >= scores[1] else b_id,
        "factors": factors,
    }


def why_not_report(gap: dict, enterprise: pd.DataFrame, similarity: float, shortlist: int, filters,
                   ranked: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray, features: pd.DataFrame | None,
                   industries: list[str | None], ranker, ranker_name: str, lang: str = "en") -> dict:
    """Where an enterprise stands for a gap and what keeps it below the last shortlisted prospect,
    from a ranking already made.

    ``enterprise``: its row of the enterprise table (a one-row frame); ``similarity``: its
    embedding similarity to the gap; ``ranked`` / ``pool``: the gap's ranked candidates under
    ``filters`` and their features. ``rows``, ``features``, ``industries``: the enterprise's and
    the last shortlisted prospect's (``ranked`` row ``shortlist``) table rows, features and
    :func:`industry_label`; ``features`` is None when fewer than ``shortlist`` were ranked.
    """
    enterprise_id = enterprise[S.ENTERPRISE_ID].iloc[0]
    excluded = []
    if not filter_mask(enterprise, filters)[0]:
        if bool(enterprise[S.IS_LOCAL].iloc[0]) and not filters.include_local:
            excluded.append("local enterprise (prospect lists are of outside enterprises unless --include-local)")
        if enterprise[S.STATUS_CLASS].iloc[0] in S.NOT_PROSPECTS and not filters.include_closed:
            excluded.append(f"status '{enterprise[S.STATUS].iloc[0]}' (closed enterprises are excluded)")
        if not excluded:
            excluded.append("does not pass the filters given")
    in_pool = ranked.index[ranked["enterprise_id"] == enterprise_id]
    report = {
        "gap_id": gap["gap_id"], "enterprise_id": enterprise_id, "name": enterprise[S.NAME].iloc[0], "ranker": ranker_name,
        "shortlist_size": shortlist, "similarity": rounded(similarity), "excluded_by": excluded,
        "retrieved": bool(len(in_pool)), "rank": int(ranked.loc[in_pool[0], "rank"]) if len(in_pool) else None,
        "candidates_ranked": len(ranked),
    }
    if not len(in_pool):
        last_sim = float(ranked["similarity"].min()) if len(ranked) else float("nan")
        report["retrieval"] = (f"retrieval did not reach it: similarity {similarity:.3f} to the gap, while the "
                               f"{len(ranked)} retrieved candidates reach down to {last_sim:.3f}")
    if features is None:
        return report
    last = ranked.iloc[shortlist - 1]
    scores, factors = _factors(ranker, ranked, pool, rows, features, industries, not gap.get("segment_id"), lang)
    report["score"] = rounded(scores[0])
    report["last_shortlisted"] = {"enterprise_id": last["enterprise_id"], "name": last["name"], "rank": int(last["rank"]), "score": rounded(scores[1])}
    reasons = [f for f in factors if not f.get("same_value", False)]
    report["holding_it_back"] = [f for f in sorted(reasons, key=lambda e: e["difference"]) if f["difference"] < 0][:5]
    report["in_its_favour"] = [f for f in reasons if f["difference"] > 0][:3]
    report["interactions"] = rounded(sum(f["difference"] for f in factors if f.get("same_value", False)))
    return report

