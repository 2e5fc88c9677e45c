"""The gap list with the gaps managed in the service applied: the chain map's declared gaps and
the published analysis, overridden, closed or extended by the stored rows of
:mod:`matcher.store.repo.gaps`. The catalog (serving) and the build (publishing) both make the
list here, so a gap reads the same before and after it is published.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from matcher.chain_map import ChainMap, DeclaredGap
from matcher.chains import gap_list as chain_gap_list  # the one place gap dicts and severities are made


def apply_gap_rows(chain_map: ChainMap, rows: list[dict], include_closed: bool = False) -> ChainMap:
    """The chain map with the gaps managed in the service (rows of
    :mod:`matcher.store.repo.gaps`) declared in it, as if the YAML said so.

    A row overrides the map's gap of the same id: a segment row replaces the YAML's gap on that
    segment (a row without a priority only carries a note or a state: the segment stays the gap
    the analysis made it), a free-text row replaces the YAML's text gap of that id or adds one.
    Closed rows are left out unless ``include_closed``; the map's own gaps they close are removed.
    Rows naming a chain or segment this map lacks (an older or newer map) are skipped. The map is
    copied, never changed.
    """
    by_chain: dict[str, list[dict]] = {}
    for row in rows:
        by_chain.setdefault(row["chain_id"], []).append(row)
    chains = []
    for chain in chain_map.chains:
        gaps = list(chain.gaps)
        segment_ids = {s.id for s in chain.segments}
        for row in by_chain.get(chain.id, []):
            local = row["gap_id"].split(".", 1)[1]
            segment = row.get("segment_id")
            if segment is not None and segment not in segment_ids:
                continue
            gaps = [g for g in gaps if (g.segment != segment if segment is not None else g.segment is not None or g.id != local)]
            if (row["status"] == "closed" and not include_closed) or row.get("priority") is None:
                continue
            gaps.append(DeclaredGap.model_construct(
                id=local, segment=segment, text=None if segment else row["text"], text_zh=None,
                priority=row["priority"], note=row.get("note") or ""))
        chains.append(chain.model_copy(update={"gaps": gaps}))
    return chain_map.model_copy(update={"chains": chains})


GAP_ROW_FIELDS = ("origin", "created_by", "created_at", "updated_by", "updated_at", "closed_at", "revision")


def gap_states(chain_map: ChainMap, segments: pd.DataFrame, rows: list[dict]) -> tuple[list[dict], dict[str, dict]]:
    """The gap list as the chain map, the analysis (``segments``) and the stored rows make it:
    (open gaps, most severe first; closed gaps by id). Severity is derived as for the YAML's
    declared gaps; each gap says its ``status``, ``origin`` ("map": the published analysis and
    YAML, "service": declared in the service) and, when a row changed it, who and when."""
    stored = {r["gap_id"]: r for r in rows}
    closed_ids = {r["gap_id"] for r in rows if r["status"] == "closed"}
    everything = chain_gap_list(apply_gap_rows(chain_map, rows, include_closed=True), segments)
    listed, closed = [], {}
    for gap in everything:
        row = stored.get(gap["gap_id"])
        gap.update(status="open", origin="map")
        if row is not None:
            gap.update({k: row.get(k) for k in GAP_ROW_FIELDS}, note=row.get("note") or gap.get("note", ""),
                       status=row["status"])
        if gap["gap_id"] in closed_ids:
            closed[gap["gap_id"]] = gap
        else:
            listed.append(gap)
    return listed, closed


@dataclass(frozen=True)
class GapState:
    """The gaps managed in the service as one catalog applies them (swapped whole on change)."""

    revision: int
    listed: list[dict]  # open, most severe first
    by_id: dict  # gap_id -> gap, open and closed
