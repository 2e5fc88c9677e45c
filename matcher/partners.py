"""Partners for a local firm (补链 / 延链 / 配套): outside firms in the segments directly upstream
and downstream of the firm's own segments, ranked as prospects are.

A key local firm asks the district for suppliers or customers nearby. Its segments come from the
chain analysis (the segments it was assigned to); a segment's *suppliers* are the segments whose
``supplies`` name it, its *customers* the segments it ``supplies``. Each neighbouring segment is
ranked as any segment of the map is (``Catalog.prospects`` with ``chain_id.segment_id``: fit to
the segment, growth, regional factors, the same filters and the same explanations), and the lists
are merged: a firm found for two neighbouring segments keeps its best score and names both.
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


def partners(catalog, enterprise_id: str, k: int, filters, explain: bool = False, lang: str = "en") -> pd.DataFrame:
    """The best ``k`` outside firms in the segments next to a local firm's, best first.

    Columns are those of ``Catalog.prospects`` (``explanation`` when ``explain``) plus
    ``relation`` (supplier / customer), ``partner_segment_id``, ``partner_chain_id``, ``via``
    (the firm's own segment) and ``firm_similarity`` (cosine of the two profiles' vectors).
    An empty frame when no neighbouring segment has a candidate that passes the filters.
    """
    neighbours = neighbour_segments(catalog, enterprise_id)
    frames = []
    for n in neighbours:
        ranked = catalog.prospects(f"{n['chain_id']}.{n['segment_id']}", k, filters, explain=explain, lang=lang)
        if len(ranked):
            frames.append(ranked.assign(relation=n["relation"], partner_segment_id=n["segment_id"],
                                        partner_chain_id=n["chain_id"], via=n["via"]))
    if not frames:
        return pd.DataFrame(columns=["rank", S.ENTERPRISE_ID, "score", "relation", "partner_segment_id"])
    merged = pd.concat(frames, ignore_index=True)
    merged = merged[merged[S.ENTERPRISE_ID] != enterprise_id]
    # A firm found next to two segments: its best score, both segments named.
    also = merged.groupby(S.ENTERPRISE_ID)["partner_segment_id"].agg(lambda s: sorted(set(s)))
    merged = merged.sort_values(["score", S.ENTERPRISE_ID], ascending=[False, True], kind="stable")
    best = merged.drop_duplicates(S.ENTERPRISE_ID).head(k).reset_index(drop=True)
    best["partner_segments"] = best[S.ENTERPRISE_ID].map(also)
    vectors = catalog.context.vectors
    rows = np.array([catalog.row_of(e) for e in best[S.ENTERPRISE_ID]], dtype=int)
    firm = vectors[catalog.row_of(enterprise_id)]
    best["firm_similarity"] = np.round(vectors[rows].astype(np.float64) @ firm.astype(np.float64), 6) if len(rows) else []
    best["rank"] = np.arange(1, len(best) + 1)
    return best
