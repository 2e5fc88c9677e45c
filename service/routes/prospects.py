"""Ranked prospects of a gap, free-text search, explanations, why-not reports and enterprises."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from matcher import schemas as S
from matcher.errors import UnknownEntityError
from matcher.retrieval import Filters
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import need
from service.holder import Loaded, RankedEntry
from service.routes.common import (
    ERRORS, PREFIX, WRITE_ERRORS, LangQuery, OffsetQuery, TopQuery, json_value, page, query_filters, sees_chain,
    svc, to_filters,
)
from service.state import ServiceState

router = APIRouter(prefix=PREFIX, responses=ERRORS)


@router.get("/gaps/{gap_id}/prospects", response_model=api.ProspectPage, summary="Ranked prospects of a gap (paginated)")
async def prospects(request: Request, gap_id: Annotated[str, Path(max_length=api.MAX_ID)], top: TopQuery = 20,
                    offset: OffsetQuery = 0, lang: LangQuery = "en", filters: api.ProspectFilters = Depends(query_filters),
                    actor: Actor = Depends(need("prospects:read"))):
    # A page of a cached, explained list is answered on the event loop (no thread hop: the
    # common case, and the one with tight latency); anything to compute goes to the thread pool.
    state = svc(request)
    loaded = state.loaded()
    loaded.catalog.gap_entry(gap_id)  # unknown: 404 here; a new free-text gap is embedded in the thread pool
    if not state.exclusions_due():
        entry = loaded.peek(("gap", gap_id, to_filters(filters, state.exclusions.get(gap_id, frozenset()))))
        positions = list(range(offset, min(offset + top, entry.total))) if entry is not None else []
        if entry is not None and entry.explained(positions, lang):
            return page(state, loaded, entry, filters, offset, top, lang, "prospects", actor)
    return await run_in_threadpool(_prospects, state, loaded, gap_id, filters, offset, top, lang, actor)


def _prospects(state: ServiceState, loaded: Loaded, gap_id: str, filters: api.ProspectFilters, offset: int, top: int,
               lang: str, actor: Actor) -> api.ProspectPage:
    entry = loaded.gap_list(gap_id, to_filters(filters, state.excluded(gap_id)))
    return page(state, loaded, entry, filters, offset, top, lang, "prospects", actor)


@router.post("/prospects/search", response_model=api.ProspectPage, responses=WRITE_ERRORS,
             summary="Ranked enterprises for a free-text need")
async def search(request: Request, body: api.SearchRequest, actor: Actor = Depends(need("prospects:read"))):
    state = svc(request)
    loaded = state.loaded()
    filters = to_filters(body.filters)
    entry = loaded.peek(("search", body.text, filters))
    positions = list(range(body.offset, min(body.offset + body.top, entry.total))) if entry is not None else []
    if entry is None or not entry.explained(positions, body.lang):
        entry = await run_in_threadpool(_search_page, loaded, body)
    return page(state, loaded, entry, body.filters, body.offset, body.top, body.lang, "search", actor)


def _search_page(loaded: Loaded, body: api.SearchRequest) -> RankedEntry:
    """Rank the need and give the requested page its short reasons, in one thread-pool hop."""
    entry = loaded.search_list(body.text, to_filters(body.filters))
    entry.reasons(loaded.catalog, list(range(body.offset, min(body.offset + body.top, entry.total))), body.lang)
    return entry


@router.get("/gaps/{gap_id}/prospects/{enterprise_id}/explanation", response_model=api.ExplanationResponse,
            summary="The full explanation of a prospect's rank")
def explanation(request: Request, gap_id: Annotated[str, Path(max_length=api.MAX_ID)],
                enterprise_id: Annotated[str, Path(max_length=api.MAX_ID)], lang: LangQuery = "en",
                filters: api.ProspectFilters = Depends(query_filters), actor: Actor = Depends(need("prospects:read"))):
    state = svc(request)
    loaded = state.loaded()
    loaded.catalog.gap_entry(gap_id)
    loaded.catalog.row_of(enterprise_id)
    entry = loaded.gap_list(gap_id, to_filters(filters, state.excluded(gap_id)))
    position = entry.position_of(enterprise_id)
    if position is None:
        raise UnknownEntityError(
            f"enterprise '{enterprise_id}' is not among the {entry.total} ranked candidates of gap '{gap_id}' with these "
            f"filters (not retrieved, filtered out or excluded in review); GET /v1/gaps/{gap_id}/why-not/{enterprise_id} says why")
    return {"version": loaded.version, "list_version": entry.list_version,
            "explanation": entry.explanations(loaded.catalog, [position], lang)[0]}


@router.get("/gaps/{gap_id}/why-not/{enterprise_id}", response_model=api.WhyNotResponse,
            summary="Where an enterprise ranks for a gap and what keeps it below the shortlist")
def why_not(request: Request, gap_id: Annotated[str, Path(max_length=api.MAX_ID)],
            enterprise_id: Annotated[str, Path(max_length=api.MAX_ID)],
            shortlist: Annotated[int, Query(ge=1, le=300, description="shortlist size to compare with")] = 20,
            lang: LangQuery = "en", include_local: bool = False, include_closed: bool = False,
            actor: Actor = Depends(need("prospects:read"))):
    state = svc(request)
    loaded = state.loaded()
    gap = loaded.catalog.gap_entry(gap_id)
    loaded.catalog.row_of(enterprise_id)
    # Review exclusions are a chain's own: another chain's leader gets the report without them.
    excluded = state.excluded(gap_id) if sees_chain(actor, gap["chain_id"]) else frozenset()
    filters = Filters(include_local=include_local, include_closed=include_closed, exclude_ids=tuple(sorted(excluded)))
    report = loaded.catalog.why_not(gap_id, enterprise_id, shortlist, filters, lang)
    if enterprise_id in excluded:
        report["excluded_by"] = [r for r in report["excluded_by"] if r != "does not pass the filters given"]
        report["excluded_by"].append("rejected in review as not a chain fit for this gap (a later approve or defer, "
                                     f"or DELETE /v1/gaps/{gap_id}/exclusions/{enterprise_id}, undoes it)")
    return {"version": loaded.version, **report}


@router.get("/enterprises/{enterprise_id}", response_model=api.EnterpriseOut, summary="An enterprise as the served version has it")
def enterprise(request: Request, enterprise_id: Annotated[str, Path(max_length=api.MAX_ID)],
               actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    c = loaded.catalog
    row = c.enterprises.iloc[c.row_of(enterprise_id)]
    out = {name: json_value(row.get(name)) for name in api.EnterpriseOut.model_fields if name in row.index}
    member = c.assignments[c.assignments[S.ENTERPRISE_ID] == enterprise_id]
    out["segments"] = [{"chain_id": m["chain_id"], "segment_id": m["segment_id"], "similarity": json_value(m.get("similarity"))}
                       for m in member.to_dict("records")]
    return {**out, "version": loaded.version}
