"""Assembling a ranked prospect's explanation from its ranking: contributions (SHAP values of the
landing model, or the cold-start components), the short reasons a page shows, and the full
explanation (evidence, gap closure, local partners, landed look-alikes, policies, freshness)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.explain.labels import LABELS, rounded, stated
from matcher.explain.render import (
    contribution_rows, contribution_text, evidence_for, industry_labels, percentile_phrase, percentile_phrases,
    sorted_population, with_comparison,
)
from matcher.features import FEATURES, FeatureContext, eligible_policy_names
from matcher.ranking import SEARCH_WEIGHTS, WEIGHTS, cold_start_parts, cold_start_weights, component_scores


def model_features(ranker) -> list[str]:
    """The feature names ``ranker``'s contributions are in, in order: those its landing model was
    fitted on (an older model reads fewer than FEATURES); FEATURES without a ranker."""
    if ranker is not None and hasattr(ranker, "feature_names"):
        return ranker.feature_names()
    return list(FEATURES)


def cold_start_contributions(components: pd.Series, weights: dict[str, float] = WEIGHTS) -> tuple[float, dict[str, float]]:
    """Additive parts of the cold-start score (base 0): see :func:`matcher.ranking.cold_start_parts`."""
    parts = cold_start_parts(components.to_frame().T.astype(float), weights).iloc[0]
    return 0.0, {k: float(v) for k, v in parts.items()}


# Cold-start parts and the component column each states.
COMPONENT_COLUMNS = {"fit": "fit_score", "growth": "growth_score", "regional": "regional_score", "risk": "risk_penalty"}


def component_population(components: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each cold-start component's known values among the candidates, sorted (for comparisons)."""
    out = {}
    for part, column in COMPONENT_COLUMNS.items():
        values = components[column].to_numpy(dtype=float)
        out[part] = np.sort(values[~np.isnan(values)])
    return out


def cold_start_rows(comp: pd.Series, weights: dict[str, float], lang: str,
                    population: dict[str, np.ndarray]) -> tuple[list[dict], float]:
    """A candidate's cold-start parts as contributions (value, contribution and a text that states
    the component and how it compares with the other candidates': "gap fit score 0.62 (weight
    1.0) — higher than 95% of candidates"), and their sum (the score before clipping)."""
    L = LABELS[lang]
    _, parts = cold_start_contributions(comp, weights)
    rows = []
    for part, contribution in parts.items():
        raw = float(comp[COMPONENT_COLUMNS[part]])
        value = rounded(raw)
        text = with_comparison(L[part].format(v=value, w=weights.get(part, "")),
                               percentile_phrase(raw, population[part], part, lang, presorted=True), lang)
        rows.append({"feature": part, "value": value, "contribution": rounded(contribution), "text": text,
                     "source": {"kind": "derived"}})
    return rows, float(sum(parts.values()))


def top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first, ties by position: exactly
    ``np.argsort(-scores, kind="stable")[:k]`` without sorting all of them."""
    if len(scores) <= k:
        return np.argsort(-scores, kind="stable")
    threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
    candidates = np.flatnonzero(scores >= threshold)
    return candidates[np.argsort(-scores[candidates], kind="stable")][:k]


@dataclass(frozen=True)
class ExplainInputs:
    """What explaining a ranked pool reads besides the pool itself, from the artifact version that
    ranked it (:meth:`matcher.catalog.Catalog.explain_inputs` hands them out for a gap or need).

    ``context``: the version's feature context (its enterprises, segments, local partners);
    ``ranker``: the landing model (None: cold start) and ``ranker_name`` its name;
    ``match_text``: the text the gap or need was matched by (evidence is quoted against it);
    ``landed_rows`` / ``landed_gap`` / ``landed_vectors``: the landed enterprises the model learned
    from, the gap each landed for, and their vectors; ``snapshot_id`` / ``version``: freshness.
    """

    context: FeatureContext
    ranker: object | None
    ranker_name: str
    match_text: str = ""
    landed_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    landed_gap: dict = field(default_factory=dict)
    landed_vectors: np.ndarray | None = None
    snapshot_id: str = ""
    version: str = ""

    @property
    def enterprises(self) -> pd.DataFrame:
        return self.context.enterprises


def _status(strength: float, weak_below: float) -> str:
    return "missing" if strength <= 0 else "weak" if strength < weak_below else "strong"


def explain_ranked(inputs: ExplainInputs, gap: dict, ranked: pd.DataFrame, features: pd.DataFrame, pool: pd.DataFrame,
                   lang: str = "en") -> list[dict]:
    """Explanations of ranked prospects (rows of ``ranked`` / ``features``), percentiles among ``pool``.

    ``pool`` is the features of every candidate the rows were ranked among; ``inputs`` what else
    is read (:class:`ExplainInputs`). Nothing ranks here; deterministic: the same inputs give the
    same explanation.
    """
    weights = cold_start_weights(gap)
    ctx = inputs.context
    enterprises = ctx.enterprises
    rows = ranked["_row"].to_numpy()
    feature_names = model_features(inputs.ranker)
    matrix = features[feature_names].to_numpy(dtype=float)
    phrases = percentile_phrases(matrix, sorted_population(pool, feature_names), lang, feature_names)
    if inputs.ranker is not None:
        base, values, margins = inputs.ranker.explain(features)
        space = "log-odds of the landing model's gradient-boosted trees (score = calibrated probability, a monotone function of it)"
    else:
        components = component_scores(pool)  # growth percentiles need the whole pool
        index = pool.index.get_indexer(features.index)
        population = component_population(components)
        base, values, margins = 0.0, None, None
        space = ("cold-start score of a search before clipping to [0, 1]: fit - risk penalty" if weights is SEARCH_WEIGHTS
                 else "cold-start score before clipping to [0, 1]: fit * (0.6 + 0.25 growth + 0.15 regional) - risk penalty")
    segment_id = gap.get("segment_id")
    weak_below = float(ctx.segments.set_index("segment_id").loc[segment_id, "weak_below"]) if segment_id else None
    landed_rows, landed_gap = inputs.landed_rows, inputs.landed_gap
    partner_rows = ctx.partner_rows.get(segment_id, np.zeros(0, int)) if segment_id else np.zeros(0, int)
    partner_rows = partner_rows[partner_rows >= 0]
    neighbours = set(ctx.neighbours.get(segment_id, [])) if segment_id else set()
    vectors = ctx.vectors
    columns = [S.ENTERPRISE_ID, S.NAME, S.DESCRIPTION, S.UPDATED_AT, S.RISK_FLAGS, S.QUALIFICATIONS]
    # Column by column: taking 50 rows of the whole frame copies every column of each.
    taken = [enterprises[c].iloc[rows].tolist() for c in columns]
    ents = [dict(zip(columns, values)) for values in zip(*taken)]
    industries = industry_labels(enterprises, rows)
    search = not segment_id
    ranks, scores = ranked["rank"].to_numpy().tolist(), ranked["score"].to_numpy(dtype=float).tolist()
    evidence = evidence_for([e[S.DESCRIPTION] for e in ents], inputs.match_text)
    # Only the partner and landed rows are named: converting whole columns is O(universe).
    needed = np.union1d(partner_rows, landed_rows[landed_rows >= 0]).astype(int)
    names = dict(zip(needed.tolist(), enterprises[S.NAME].array.take(needed).to_numpy()))
    ids = dict(zip(needed.tolist(), enterprises[S.ENTERPRISE_ID].array.take(needed).to_numpy()))
    prospect_vectors = np.ascontiguousarray(vectors[rows])
    partner_sims = prospect_vectors @ ctx.partner_matrix(segment_id).T if len(partner_rows) else None
    others_all = landed_rows[landed_rows >= 0]
    landed_sims = prospect_vectors @ inputs.landed_vectors.T if len(others_all) else None
    snapshot = inputs.snapshot_id

    out = []
    for i, row in enumerate(rows):
        ent = ents[i]
        updated = str(pd.Timestamp(ent[S.UPDATED_AT]).date()) if pd.notna(ent[S.UPDATED_AT]) else "unknown"
        if values is not None:
            contributions = contribution_rows(matrix[i], values[i], phrases[i], updated, lang, feature_names,
                                              industries[i], search)
            model_output = float(margins[i])
            facts = []
        else:
            contributions, model_output = cold_start_rows(components.iloc[index[i]], weights, lang, population)
            facts = [c["text"] for c in contribution_rows(matrix[i], np.zeros(len(feature_names)), phrases[i], updated, lang,
                                                          feature_names, industries[i], search)]
        ordered = sorted(contributions, key=lambda c: (-abs(c["contribution"]), c["feature"]))
        closure = None
        if segment_id:
            before = matrix[i, feature_names.index("strength_before")]
            gain = matrix[i, feature_names.index("strength_gain")]
            gain = 0.0 if np.isnan(gain) else gain
            closure = {"segment_id": segment_id, "strength_before": int(before), "strength_after": int(before + gain),
                       "status_before": _status(before, weak_below), "status_after": _status(before + gain, weak_below)}
        partners = []
        if partner_sims is not None:
            for j in top_positions(partner_sims[i], 5):
                pid = ids[int(partner_rows[j])]
                segs = [s for s in ctx.partner_segments.get(pid, []) if s in neighbours]
                partners.append({"enterprise_id": pid, "name": names[int(partner_rows[j])], "segment_id": segs[0] if segs else None,
                                 "similarity": rounded(partner_sims[i, j])})
        similar = []
        if landed_sims is not None:
            sims = np.where(others_all == row, -np.inf, landed_sims[i])
            for j in top_positions(sims, 3):
                if np.isfinite(sims[j]):
                    eid = ids[int(others_all[j])]
                    similar.append({"enterprise_id": eid, "name": names[int(others_all[j])], "landed_for": landed_gap.get(eid),
                                    "similarity": rounded(sims[j])})
        out.append({
            "enterprise_id": ent[S.ENTERPRISE_ID], "name": ent[S.NAME], "gap_id": gap.get("gap_id"),
            "rank": int(ranks[i]), "score": rounded(scores[i]), "ranker": inputs.ranker_name,
            "lang": lang, "output_space": space, "base_value": rounded(base), "model_output": rounded(model_output),
            "contributions": ordered,
            "reasons": {
                "positive": [c["text"] for c in ordered if c["contribution"] > 0][:3],
                "negative": [c["text"] for c in ordered if c["contribution"] < 0][:3],
            },
            "facts": facts,
            "gap_closure": closure,
            "evidence": evidence[i],
            "local_partners": partners,
            "similar_landed": similar,
            "risk_flags": list(ent[S.RISK_FLAGS]),
            "eligible_policies": eligible_policy_names(ctx, list(ent[S.QUALIFICATIONS]), gap["chain_id"]),
            "freshness": {"source_updated_at": updated, "snapshot_id": snapshot, "version": inputs.version},
        })
    return out


def explain_reasons(inputs: ExplainInputs, gap: dict, ranked: pd.DataFrame, features: pd.DataFrame, pool: pd.DataFrame,
                    lang: str = "en") -> list[dict]:
    """Only the short reasons of :func:`explain_ranked` (``{"positive": [...], "negative": [...]}``
    per row, the same texts), without evidence, partners, look-alikes or policies: what a page of
    ranked prospects shows. The full explanation is :func:`explain_ranked`. Reads only
    ``inputs.ranker`` and, for the industry code's reason, ``inputs.enterprises``."""
    weights = cold_start_weights(gap)
    if inputs.ranker is not None:
        names = model_features(inputs.ranker)
        matrix = features[names].to_numpy(dtype=float)
        phrases = percentile_phrases(matrix, sorted_population(pool, names), lang, names)
        _, values, _ = inputs.ranker.explain(features, margins=False)
        industries = (industry_labels(inputs.enterprises, ranked["_row"].to_numpy()) if "industry_code_match" in names
                      else [None] * len(features))  # a model fitted before the feature never words it
        search = not gap.get("segment_id")
        rows = []
        for i in range(len(features)):
            contributions = [rounded(c) for c in np.asarray(values[i], float).tolist()]
            # Only the features a reason can show: the 3 largest each way (ties by name, as explain_ranked).
            order = sorted(range(len(names)), key=lambda j: (-abs(contributions[j]), names[j]))
            shown = ([j for j in order if contributions[j] > 0][:3] + [j for j in order if contributions[j] < 0][:3])
            rows.append([{"feature": names[j], "contribution": contributions[j],
                          "text": contribution_text(names[j], stated(matrix[i, j]), contributions[j], phrases[i][j], lang,
                                                    industries[i], search)}
                         for j in shown])
    else:
        components = component_scores(pool)
        index = pool.index.get_indexer(features.index)
        population = component_population(components)
        rows = [cold_start_rows(components.iloc[index[i]], weights, lang, population)[0] for i in range(len(features))]
    out = []
    for contributions in rows:
        ordered = sorted(contributions, key=lambda c: (-abs(c["contribution"]), c["feature"]))
        out.append({"positive": [c["text"] for c in ordered if c["contribution"] > 0][:3],
                    "negative": [c["text"] for c in ordered if c["contribution"] < 0][:3]})
    return out
