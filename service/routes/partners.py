"""Partners for a local firm (补链 / 延链 / 配套): ``GET /v1/enterprises/{id}/partners``, what
``matcher partners`` answers, paginated like a gap's prospects.

Each neighbouring segment's list is the service's cached ranked list of that segment (as
``/v1/gaps/chain_id.segment_id/prospects`` would rank it, with the same filters and no review
exclusions, as the CLI); the lists are merged by :func:`matcher.partners.merge_partners` and a
page takes its rows' short reasons (and, with ``explain=true``, full explanations) from the lists
they came from, so both are computed once and cached with them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from matcher import schemas as S
from matcher.partners import firm_similarity, merge_partners, neighbour_gap_id, neighbour_segments
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import need
from service.routes.common import ERRORS, PREFIX, LangQuery, OffsetQuery, TopQuery, query_filters, svc, to_filters

router = APIRouter(prefix=PREFIX, responses=ERRORS)


@router.get("/enterprises/{enterprise_id}/partners", response_model=api.PartnerPage,
            summary="Suppliers and customers for a local firm: outside firms of the neighbouring segments, ranked")
def partners(request: Request, enterprise_id: Annotated[str, Path(max_length=api.MAX_ID)], top: TopQuery = 20,
             offset: OffsetQuery = 0, lang: LangQuery = "en",
             explain: Annotated[bool, Query(description="each partner's full explanation too (evidence, partners, risks)")] = False,
             filters: api.ProspectFilters = Depends(query_filters), actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    catalog = loaded.catalog
    neighbours = neighbour_segments(catalog, enterprise_id)  # 404 unknown, 422 outside or in no segment
    entries = [loaded.gap_list(neighbour_gap_id(n), to_filters(filters)) for n in neighbours]
    merged = merge_partners(enterprise_id, [(n, e.ranked) for n, e in zip(neighbours, entries)])
    shown = merged.iloc[offset:offset + top]
    results: list[dict] = [{} for _ in range(len(shown))]
    lists, positions = shown["_list"].to_numpy(dtype=int), shown["_position"].to_numpy(dtype=int)
    for i, entry in enumerate(entries):
        mine = [j for j in range(len(shown)) if lists[j] == i]
        if not mine:
            continue
        at = [int(positions[j]) for j in mine]
        explanations = entry.explanations(catalog, at, lang) if explain else [None] * len(at)
        for j, row, reasons, explanation in zip(mine, entry.rows_at(at), entry.reasons(catalog, at, lang), explanations):
            rank = int(shown["rank"].iloc[j])
            results[j] = {**row, "rank": rank, "reasons": reasons,
                          "explanation": {**explanation, "rank": rank} if explanation else None}
    similarity = firm_similarity(catalog, enterprise_id, shown[S.ENTERPRISE_ID]).tolist()
    for j, result in enumerate(results):
        p = shown.iloc[j]
        result.update(relation=p["relation"], partner_chain_id=p["partner_chain_id"], partner_segment_id=p["partner_segment_id"],
                      partner_segments=list(p["partner_segments"]), via=p["via"], firm_similarity=similarity[j])
    names = {s.id: (c.id, s) for c, s in catalog.chain_map.segments()}
    firm = catalog.enterprises.iloc[catalog.row_of(enterprise_id)]
    own = list(catalog.context.partner_segments.get(enterprise_id, []))
    return api.PartnerPage(
        version=loaded.version, enterprise_id=enterprise_id, name=str(firm[S.NAME]), segments=own,
        firm_segments=[{"chain_id": names[s][0], "segment_id": s, "name": names[s][1].name, "name_zh": names[s][1].name_zh}
                       for s in own if s in names],
        neighbours=[{**n, "name": names[n["segment_id"]][1].name, "name_zh": names[n["segment_id"]][1].name_zh} for n in neighbours],
        filters=filters, lang=lang, total=len(merged), offset=offset, top=top, results=results,
    )
