"""Partners for a local firm (补链 / 延链 / 配套): outside firms in the segments directly upstream
and downstream of the firm's own segments, ranked as prospects are.

A key local firm asks the district for suppliers or customers nearby. Its segments come from the
chain analysis (the segments it was assigned to); a segment's *suppliers* are the segments whose
``supplies`` name it, its *customers* the segments it ``supplies``. Each neighbouring segment is
ranked as any segment of the map is (``Catalog.rank_pool`` of ``chain_id.segment_id``: fit to
the segment, growth, regional factors, the same filters and the same explanations), and the lists
are merged (:func:`merge_partners`, which the API pages too): a firm found for two neighbouring
segments keeps its best score and names both.
Each partner also carries its similarity to the local firm's own profile, so staff see how close
its business is to the firm that asked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.store.errors import InvalidInputError

SUPPLIER, CUSTOMER = "supplier", "customer"


def neighbour_segments(catalog, enterprise_id: str) -> list[dict]:
    """The segments upstream (suppliers) and downstream (customers) of a local firm's segments,
    as ``{"chain_id", "segment_id", "relation", "via"}`` (``via``: the firm's segment they are
    next to), in chain-map order; a segment next to two of the firm's segments appears once.

    Raises
    ------
    InvalidInputError
        The firm is not local, or was assigned to no segment (nothing to be upstream or
        downstream of): the message says which and what to use instead.
    """
    row = catalog.row_of(enterprise_id)
    firm = catalog.enterprises.iloc[row]
    if not bool(firm[S.IS_LOCAL]):
        raise InvalidInputError(
            "enterprise_id", f"enterprise '{enterprise_id}' ({firm[S.NAME]}) is not a local firm: partners are found for firms in the "
            "district; for an outside firm use a gap's prospects or a search"
        )
    own = catalog.context.partner_segments.get(enterprise_id, [])
    if not own:
        raise InvalidInputError(
            "enterprise_id", f"local enterprise '{enterprise_id}' ({firm[S.NAME]}) was assigned to no segment of the chain map, so it has "
            "no upstream or downstream segments; search for its suppliers or customers by text instead"
        )
    found: dict[tuple[str, str], dict] = {}
    for chain in catalog.chain_map.chains:
        ids = {s.id for s in chain.segments}
        for segment in chain.segments:
            if segment.id not in own:
                continue
            for other in chain.segments:
                if segment.id in other.supplies and other.id != segment.id:
                    found.setdefault((chain.id, other.id), {"chain_id": chain.id, "segment_id": other.id,
                                                            "relation": SUPPLIER, "via": segment.id})
            for target in segment.supplies:
                if target in ids and target != segment.id:
                    found.setdefault((chain.id, target), {"chain_id": chain.id, "segment_id": target,
                                                          "relation": CUSTOMER, "via": segment.id})
    # The firm's own segments are not partners' segments (a segment supplying itself is no link).
    return [n for n in found.values() if n["segment_id"] not in own]


def neighbour_gap_id(neighbour: dict) -> str:
    """The id a neighbouring segment is ranked under (any segment can be named as a gap)."""
    return f"{neighbour['chain_id']}.{neighbour['segment_id']}"


def merge_partners(enterprise_id: str, lists: list[tuple[dict, pd.DataFrame]]) -> pd.DataFrame:
    """One ranked list of partners from the ranked lists of the neighbouring segments.

    ``lists``: ``(neighbour, ranked)`` pairs, ``neighbour`` from :func:`neighbour_segments` and
    ``ranked`` that segment's ranked candidates (best first). A firm found next to two segments
    keeps its best score and names both (``partner_segments``); the local firm itself is left
    out. Best first (score, then enterprise id), ``rank`` renumbered from 1; ``_list`` and
    ``_position`` say which list and row each partner's score (and explanation) comes from.
    """
    frames = [ranked.assign(relation=n["relation"], partner_segment_id=n["segment_id"], partner_chain_id=n["chain_id"],
                            via=n["via"], _list=i, _position=np.arange(len(ranked)))
              for i, (n, ranked) in enumerate(lists) if len(ranked)]
    if not frames:
        return pd.DataFrame(columns=["rank", S.ENTERPRISE_ID, "score", "relation", "partner_segment_id", "partner_chain_id",
                                     "via", "partner_segments", "_list", "_position"])
    merged = pd.concat(frames, ignore_index=True)
    merged = merged[merged[S.ENTERPRISE_ID] != enterprise_id]
    also = merged.groupby(S.ENTERPRISE_ID)["partner_segment_id"].agg(lambda s: sorted(set(s)))
    merged = merged.sort_values(["score", S.ENTERPRISE_ID], ascending=[False, True], kind="stable")
    best = merged.drop_duplicates(S.ENTERPRISE_ID).reset_index(drop=True)
    best["partner_segments"] = best[S.ENTERPRISE_ID].map(also)
    best["rank"] = np.arange(1, len(best) + 1)
    return best


def firm_similarity(catalog, enterprise_id: str, partner_ids) -> np.ndarray:
    """Cosine similarity of each partner's profile to the local firm's (vectors are normalised),
    rounded to 6 decimals."""
    vectors = catalog.context.vectors
    rows = np.array([catalog.row_of(e) for e in partner_ids], dtype=int)
    if not len(rows):
        return np.zeros(0)
    firm = vectors[catalog.row_of(enterprise_id)].astype(np.float64)
    return np.round(vectors[rows].astype(np.float64) @ firm, 6)


def partners(catalog, enterprise_id: str, k: int, filters, explain: bool = False, lang: str = "en") -> pd.DataFrame:
    """The best ``k`` outside firms in the segments next to a local firm's, best first.

    Each neighbouring segment's candidates are ranked as its prospects are (all of them, so the
    merged order is that of the whole lists, as the API pages it); columns are those of
    ``Catalog.prospects`` (``explanation`` when ``explain``: the prospect explanation for the
    segment the firm scored best in, percentiles among that segment's candidates, its rank among
    the partners) plus
    ``relation`` (supplier / customer), ``partner_segment_id``, ``partner_chain_id``, ``via``
    (the firm's own segment), ``partner_segments`` and ``firm_similarity`` (cosine of the two
    profiles' vectors). An empty frame when no neighbouring segment has a candidate that passes
    the filters.
    """
    from matcher.explain import explain_ranked

    pools = []
    for n in neighbour_segments(catalog, enterprise_id):
        gap, vector = catalog.gap(neighbour_gap_id(n))
        ranked, features = catalog.rank_pool(gap, vector, 1, filters)
        pools.append((n, gap, ranked, features))
    best = merge_partners(enterprise_id, [(n, ranked) for n, _, ranked, _ in pools]).head(k).reset_index(drop=True)
    if explain and len(best):
        explanations: list = [None] * len(best)
        for i, (_, gap, ranked, features) in enumerate(pools):
            mine = np.flatnonzero(best["_list"].to_numpy() == i)
            if len(mine):
                positions = best["_position"].to_numpy()[mine]
                done = explain_ranked(catalog.explain_inputs(gap), gap, ranked.iloc[positions], features.iloc[positions],
                                      features, lang)
                for j, explanation in zip(mine, done):
                    explanations[j] = {**explanation, "rank": int(best.at[j, "rank"])}  # its rank among the partners
        best["explanation"] = explanations
    best["firm_similarity"] = firm_similarity(catalog, enterprise_id, best[S.ENTERPRISE_ID]) if len(best) else []
    return best.drop(columns=["_list", "_position"])
