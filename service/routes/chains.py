"""Chains, their structure maps and segments, and the gap list."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Request

from matcher import schemas as S
from matcher.domain import SEGMENT_STAGES
from matcher.errors import UnknownEntityError
from matcher.store import repo
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import need, permissions
from service.holder import Loaded
from service.routes.common import ERRORS, NO_STORE, PREFIX, TextQuery, json_value, sees_chain, svc
from service.routes.shortlists import shortlist_summary

router = APIRouter(prefix=PREFIX, responses=ERRORS)


def _segments(loaded: Loaded, chain_id: str) -> list[dict]:
    rows = loaded.catalog.segments[loaded.catalog.segments["chain_id"] == chain_id]
    return [{"segment_id": r["segment_id"], "name": r["name"], "name_zh": r.get("name_zh", "") or "", "stage": r["stage"],
             "strength": int(r["strength"]), "status": r["status"],
             "weak_below": None if pd.isna(r.get("weak_below")) else float(r["weak_below"])}
            for r in rows.to_dict("records")]


def _leaders(chain) -> dict:
    """A chain's leaders as every chain response carries them (``leader``: the first)."""
    return {"leader": chain.leader, "leaders": list(chain.leaders), "leaders_zh": list(chain.leaders_zh)}


@router.get("/chains", response_model=api.ChainList, summary="The region's chains")
def chains(request: Request, actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    cm = loaded.catalog.chain_map
    return {"version": loaded.version, "region": cm.region.model_dump(mode="json"),
            "general_leader": cm.region.general_leader, "general_leader_zh": cm.region.general_leader_zh, "chains": [
        {"chain_id": c.id, "name": c.name, "name_zh": c.name_zh, "kind": c.kind, **_leaders(c), "segments": len(c.segments),
         "gaps": sum(1 for g in loaded.catalog.listed_gaps() if g["chain_id"] == c.id)} for c in cm.chains]}


@router.get("/chains/{chain_id}", response_model=api.ChainDetail, summary="A chain: segments, local strength, gaps")
def chain(request: Request, chain_id: Annotated[str, Path(max_length=api.MAX_ID)], actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    c = loaded.catalog.chain_map.chain(chain_id)
    return {"version": loaded.version, "chain_id": c.id, "name": c.name, "name_zh": c.name_zh, "kind": c.kind, **_leaders(c),
            "segments": _segments(loaded, c.id), "gaps": [g for g in loaded.catalog.listed_gaps() if g["chain_id"] == c.id]}


@router.get("/gaps", response_model=api.GapList, summary="The gap list, most severe first")
def gaps(request: Request, chain: TextQuery = None, actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    if chain is not None:
        loaded.catalog.chain_map.chain(chain)
    return {"version": loaded.version, "gaps": [g for g in loaded.catalog.listed_gaps() if chain is None or g["chain_id"] == chain]}


def open_gap(gap: dict) -> bool:
    """Gaps whose state says closed are left out (gaps managed in the service may be closed)."""
    return gap.get("status", "open") != "closed"


def _map_segments(loaded: Loaded, chain_id: str) -> list[dict]:
    chain = loaded.catalog.chain_map.chain(chain_id)
    supplies = {s.id: list(s.supplies) for s in chain.segments}
    gaps: dict[str, list[dict]] = {}
    for g in loaded.catalog.listed_gaps():  # most severe first already
        if g["chain_id"] == chain_id and g.get("segment_id") and open_gap(g):
            gaps.setdefault(g["segment_id"], []).append(g)
    return [{**s, "supplies": supplies.get(s["segment_id"], []), "gaps": gaps.get(s["segment_id"], [])}
            for s in _segments(loaded, chain_id)]


@router.get("/chains/{chain_id}/map", response_model=api.ChainMapResponse,
            summary="A chain's structure map: segments upstream to downstream, supplies links, strength, status, open gaps")
def chain_map(request: Request, chain_id: Annotated[str, Path(max_length=api.MAX_ID)],
              actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    c = loaded.catalog.chain_map.chain(chain_id)
    segments = _map_segments(loaded, c.id)
    links = [{"source": s["segment_id"], "target": target} for s in segments for target in s["supplies"]]
    other = [g for g in loaded.catalog.listed_gaps() if g["chain_id"] == c.id and not g.get("segment_id") and open_gap(g)]
    return {"version": loaded.version, "chain_id": c.id, "name": c.name, "name_zh": c.name_zh, "kind": c.kind,
            **_leaders(c), "stages": list(SEGMENT_STAGES), "segments": segments, "links": links, "other_gaps": other}


@router.get("/chains/{chain_id}/segments/{segment_id}", response_model=api.SegmentDetail, dependencies=NO_STORE,
            summary="A segment: its local firms (most confidently assigned first) and its gaps' shortlists")
def segment_detail(request: Request, chain_id: Annotated[str, Path(max_length=api.MAX_ID)],
                   segment_id: Annotated[str, Path(max_length=api.MAX_ID)],
                   limit: Annotated[int, Query(ge=1, le=1000, description="most firms listed")] = 200,
                   actor: Actor = Depends(need("prospects:read"))):
    state = svc(request)
    loaded = state.loaded()
    c = loaded.catalog
    chain = c.chain_map.chain(chain_id)
    segment = next((s for s in _map_segments(loaded, chain.id) if s["segment_id"] == segment_id), None)
    if segment is None:
        raise UnknownEntityError(f"segment '{segment_id}' not found in chain '{chain.id}'; GET /v1/chains/{chain.id}/map "
                                 "lists its segments")
    members = c.assignments[(c.assignments["chain_id"] == chain.id) & (c.assignments["segment_id"] == segment_id)]
    order = "z" if "z" in members.columns else "similarity"
    members = members.sort_values([order, S.ENTERPRISE_ID], ascending=[False, True], kind="stable")
    firms = []
    for m in members.head(limit).to_dict("records"):
        row_number = c.row_of(m[S.ENTERPRISE_ID])
        row = c.enterprises.iloc[row_number]
        growth = c.growth_scores[row_number] if c.growth_scores is not None else None
        firms.append({"enterprise_id": m[S.ENTERPRISE_ID], "name": json_value(row.get(S.NAME)) or m.get("name", ""),
                      "z": json_value(m.get("z")), "similarity": json_value(m.get("similarity")),
                      "employees": json_value(row.get(S.EMPLOYEES)), "revenue_growth": json_value(row.get(S.REVENUE_GROWTH)),
                      "employee_growth": json_value(row.get(S.EMPLOYEE_GROWTH)),
                      "growth_score": None if growth is None else json_value(float(growth)),
                      "qualifications": json_value(row.get(S.QUALIFICATIONS)) or [], "city": json_value(row.get(S.CITY))})
    # The segment's shortlists: of its gap, or of the segment named as chain_id.segment_id.
    visible = "shortlists:read" in permissions(actor) and sees_chain(actor, chain.id)
    shortlists = []
    if visible:
        for gap_id in sorted({f"{chain.id}.{segment_id}"} | {g["gap_id"] for g in segment["gaps"]}):
            _, rows = repo.list_shortlists(state.store, chains=(chain.id,), gap_id=gap_id, limit=api.MAX_TOP)
            shortlists += [shortlist_summary(r) for r in rows]
        shortlists.sort(key=lambda r: -r["shortlist_id"])
    return {"version": loaded.version, "chain_id": chain.id, "segment": segment, "total_firms": len(members),
            "firms": firms, "shortlists_visible": visible, "shortlists": shortlists}
