"""The ``/v1`` API. Routes translate between HTTP and the library; errors are raised as
``MatcherError`` subclasses and mapped in ``service/errors.py``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Optional

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from matcher import artifacts
from matcher import schemas as S
from matcher.domain import EXCLUDING_REASON, OPEN_STAGES, REVIEW_REASONS, SEGMENT_STAGES, STAGES
from matcher.errors import UnknownEntityError
from matcher.export import write_csv, write_xlsx
from matcher.retrieval import Filters
from matcher.store import repo
from matcher.store.errors import InvalidInputError
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import check_chain, check_own_chain, current_actor, need, permissions, visible_chains
from service.holder import Loaded, RankedEntry, filters_dict
from service.state import ServiceState

ERRORS = {
    401: {"model": api.ErrorResponse, "description": "missing, unknown or revoked API key"},
    403: {"model": api.ErrorResponse, "description": "the key's role or chains do not allow this"},
    404: {"model": api.ErrorResponse, "description": "unknown id"},
    422: {"model": api.ErrorResponse, "description": "invalid input: the fields at fault"},
    429: {"model": api.ErrorResponse, "description": "the key's request quota is used up (with Retry-After); "
                                                     "admin keys have none"},
    503: {"model": api.ErrorResponse, "description": "no artifact version loaded yet, or the database is unavailable "
                                                     "(with Retry-After)"},
}
WRITE_ERRORS = {**ERRORS, 409: {"model": api.ErrorResponse, "description": "conflict with the current state (included)"},
                413: {"model": api.ErrorResponse, "description": "request body too large"}}

router = APIRouter(prefix="/v1", responses=ERRORS)

IntId = Annotated[int, Path(ge=1, le=2_147_483_647)]
TopQuery = Annotated[int, Query(ge=1, le=api.MAX_TOP, description="page size")]
OffsetQuery = Annotated[int, Query(ge=0, le=api.MAX_OFFSET)]
LangQuery = Annotated[api.Lang, Query(description="language of explanations and reasons")]
TextQuery = Annotated[Optional[str], Query(max_length=api.MAX_ID, pattern=api.NO_NUL)]


def svc(request: Request) -> ServiceState:
    return request.app.state.svc


def no_store(response: Response) -> None:
    """Dependency: the response holds shortlists and reviews; no cache (browser or proxy) keeps it."""
    response.headers["Cache-Control"] = "no-store"


NO_STORE = [Depends(no_store)]


def sees_chain(actor: Actor, chain_id: str) -> bool:
    """Whether the caller may see a chain's shortlists and exclusions (a chain leader: their own)."""
    chains = visible_chains(actor)
    return chains is None or chain_id in chains


def clean(value: str | None, where: str) -> str | None:
    """Strings that reach the database must be valid text (no NUL, no lone surrogates)."""
    if value is not None:
        api.check_text(value, where)
    return value


def list_limit(name: str) -> int:
    """The most values ``ProspectFilters.<name>`` accepts (one limit for body and query)."""
    for meta in api.ProspectFilters.model_fields[name].metadata:
        if getattr(meta, "max_length", None) is not None:
            return int(meta.max_length)
    return 50


async def query_filters(
    country: Annotated[list[str], Query(description="any of these countries; repeatable")] = [],  # noqa: B006
    province: Annotated[list[str], Query(description="any of these provinces/states; repeatable")] = [],  # noqa: B006
    min_employees: Annotated[Optional[int], Query(ge=0, le=10_000_000)] = None,
    max_employees: Annotated[Optional[int], Query(ge=0, le=10_000_000)] = None,
    founded_after: Annotated[Optional[int], Query(ge=1000, le=3000)] = None,
    qualification: Annotated[list[str], Query(description="all of these qualifications; repeatable")] = [],  # noqa: B006
    include_local: bool = False,
    include_closed: bool = False,
) -> api.ProspectFilters:
    for name, values in (("country", country), ("province", province), ("qualification", qualification)):
        limit = list_limit(name)
        if len(values) > limit:
            raise InvalidInputError(f"query.{name}", f"at most {limit} values (got {len(values)})")
        longest = max(values, key=len, default="")
        if len(longest) > api.MAX_FILTER_VALUE:
            raise InvalidInputError(f"query.{name}", f"each value at most {api.MAX_FILTER_VALUE} characters "
                                                     f"(value {values.index(longest) + 1} has {len(longest)})")
    return api.ProspectFilters(country=country, province=province, min_employees=min_employees, max_employees=max_employees,
                               founded_after=founded_after, qualification=qualification, include_local=include_local,
                               include_closed=include_closed)


def to_filters(f: api.ProspectFilters, excluded: frozenset = frozenset()) -> Filters:
    return Filters(countries=tuple(f.country), provinces=tuple(f.province), min_employees=f.min_employees,
                   max_employees=f.max_employees, founded_after=f.founded_after, qualifications=tuple(f.qualification),
                   include_local=f.include_local, include_closed=f.include_closed, exclude_ids=tuple(sorted(excluded)))


def page(state: ServiceState, loaded: Loaded, entry: RankedEntry, f: api.ProspectFilters, offset: int, top: int,
         lang: str, route: str, actor: Actor) -> api.ProspectPage:
    positions = list(range(offset, min(offset + top, entry.total)))
    reasons = entry.reasons(loaded.catalog, positions, lang) if positions else []
    results = [{**row, "reasons": r} for row, r in zip(entry.rows_at(positions), reasons)]
    state.writer.log(entry, route, offset, top, actor.key_id, actor.request_id)
    gap = entry.gap
    return api.ProspectPage(
        version=loaded.version, list_version=entry.list_version, ranker=loaded.catalog.ranker_name,
        query={"gap_id": gap.get("gap_id"), "text": gap["text"], "chain_id": gap.get("chain_id"), "segment_id": gap.get("segment_id")},
        filters=f, lang=lang, total=entry.total, offset=offset, top=top, excluded=len(entry.filters.exclude_ids),
        results=results,
    )


# --- identity and reference -----------------------------------------------------------------

@router.get("/me", response_model=api.MeResponse, summary="The calling key: role, chains, permissions")
def me(actor: Actor = Depends(current_actor)):
    return api.MeResponse(key_id=actor.key_id or 0, prefix=actor.prefix, name=actor.name, role=actor.role,
                          chains=list(actor.chains), permissions=permissions(actor))


@router.get("/review-reasons", response_model=api.ReviewReasonsResponse, summary="The fixed list of review reason codes")
def review_reasons(actor: Actor = Depends(current_actor)):
    return {"reasons": [{"code": code, "label_en": en, "label_zh": zh, "verdicts": list(verdicts),
                         "excludes": code == EXCLUDING_REASON} for code, (en, zh, verdicts) in REVIEW_REASONS.items()]}


# --- chains and gaps ------------------------------------------------------------------------

def _segments(loaded: Loaded, chain_id: str) -> list[dict]:
    rows = loaded.catalog.segments[loaded.catalog.segments["chain_id"] == chain_id]
    return [{"segment_id": r["segment_id"], "name": r["name"], "name_zh": r.get("name_zh", "") or "", "stage": r["stage"],
             "strength": int(r["strength"]), "status": r["status"],
             "weak_below": None if pd.isna(r.get("weak_below")) else float(r["weak_below"])}
            for r in rows.to_dict("records")]


@router.get("/chains", response_model=api.ChainList, summary="The region's chains")
def chains(request: Request, actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    cm = loaded.catalog.chain_map
    return {"version": loaded.version, "region": cm.region.model_dump(mode="json"), "chains": [
        {"chain_id": c.id, "name": c.name, "name_zh": c.name_zh, "kind": c.kind, "leader": c.leader, "segments": len(c.segments),
         "gaps": sum(1 for g in loaded.catalog.gaps if g["chain_id"] == c.id)} for c in cm.chains]}


@router.get("/chains/{chain_id}", response_model=api.ChainDetail, summary="A chain: segments, local strength, gaps")
def chain(request: Request, chain_id: Annotated[str, Path(max_length=api.MAX_ID)], actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    c = loaded.catalog.chain_map.chain(chain_id)
    return {"version": loaded.version, "chain_id": c.id, "name": c.name, "name_zh": c.name_zh, "kind": c.kind, "leader": c.leader,
            "segments": _segments(loaded, c.id), "gaps": [g for g in loaded.catalog.gaps if g["chain_id"] == c.id]}


@router.get("/gaps", response_model=api.GapList, summary="The gap list, most severe first")
def gaps(request: Request, chain: TextQuery = None, actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    if chain is not None:
        loaded.catalog.chain_map.chain(chain)
    return {"version": loaded.version, "gaps": [g for g in loaded.catalog.gaps if chain is None or g["chain_id"] == chain]}


def _open_gap(gap: dict) -> bool:
    """Gaps whose state says closed are left out (gaps managed in the service may be closed)."""
    return gap.get("status", "open") != "closed"


def _map_segments(loaded: Loaded, chain_id: str) -> list[dict]:
    chain = loaded.catalog.chain_map.chain(chain_id)
    supplies = {s.id: list(s.supplies) for s in chain.segments}
    gaps: dict[str, list[dict]] = {}
    for g in loaded.catalog.gaps:  # most severe first already
        if g["chain_id"] == chain_id and g.get("segment_id") and _open_gap(g):
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
    other = [g for g in loaded.catalog.gaps if g["chain_id"] == c.id and not g.get("segment_id") and _open_gap(g)]
    return {"version": loaded.version, "chain_id": c.id, "name": c.name, "name_zh": c.name_zh, "kind": c.kind,
            "leader": c.leader, "stages": list(SEGMENT_STAGES), "segments": segments, "links": links, "other_gaps": other}


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
        firms.append({"enterprise_id": m[S.ENTERPRISE_ID], "name": _value(row.get(S.NAME)) or m.get("name", ""),
                      "z": _value(m.get("z")), "similarity": _value(m.get("similarity")),
                      "employees": _value(row.get(S.EMPLOYEES)), "revenue_growth": _value(row.get(S.REVENUE_GROWTH)),
                      "employee_growth": _value(row.get(S.EMPLOYEE_GROWTH)),
                      "growth_score": None if growth is None else _value(float(growth)),
                      "qualifications": _value(row.get(S.QUALIFICATIONS)) or [], "city": _value(row.get(S.CITY))})
    # The segment's shortlists: of its gap, or of the segment named as chain_id.segment_id.
    visible = "shortlists:read" in permissions(actor) and sees_chain(actor, chain.id)
    shortlists = []
    if visible:
        for gap_id in sorted({f"{chain.id}.{segment_id}"} | {g["gap_id"] for g in segment["gaps"]}):
            _, rows = repo.list_shortlists(state.store, chains=(chain.id,), gap_id=gap_id, limit=api.MAX_TOP)
            shortlists += [_summary(r) for r in rows]
        shortlists.sort(key=lambda r: -r["shortlist_id"])
    return {"version": loaded.version, "chain_id": chain.id, "segment": segment, "total_firms": len(members),
            "firms": firms, "shortlists_visible": visible, "shortlists": shortlists}


# --- prospects ------------------------------------------------------------------------------

@router.get("/gaps/{gap_id}/prospects", response_model=api.ProspectPage, summary="Ranked prospects of a gap (paginated)")
async def prospects(request: Request, gap_id: Annotated[str, Path(max_length=api.MAX_ID)], top: TopQuery = 20,
                    offset: OffsetQuery = 0, lang: LangQuery = "en", filters: api.ProspectFilters = Depends(query_filters),
                    actor: Actor = Depends(need("prospects:read"))):
    # A page of a cached, explained list is answered on the event loop (no thread hop: the
    # common case, and the one with tight latency); anything to compute goes to the thread pool.
    state = svc(request)
    loaded = state.loaded()
    loaded.catalog.gap(gap_id)
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
    loaded.catalog.gap(gap_id)
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
    from matcher.explain import why_not as explain_why_not

    state = svc(request)
    loaded = state.loaded()
    gap, _ = loaded.catalog.gap(gap_id)
    loaded.catalog.row_of(enterprise_id)
    # Review exclusions are a chain's own: another chain's leader gets the report without them.
    excluded = state.excluded(gap_id) if sees_chain(actor, gap["chain_id"]) else frozenset()
    filters = Filters(include_local=include_local, include_closed=include_closed, exclude_ids=tuple(sorted(excluded)))
    report = explain_why_not(loaded.catalog, gap_id, enterprise_id, shortlist, filters, lang)
    if enterprise_id in excluded:
        report["excluded_by"] = [r for r in report["excluded_by"] if r != "does not pass the filters given"]
        report["excluded_by"].append("rejected in review as not a chain fit for this gap (a later approve or defer, "
                                     f"or DELETE /v1/gaps/{gap_id}/exclusions/{enterprise_id}, undoes it)")
    return {"version": loaded.version, **report}


def _value(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, (pd.Timestamp, datetime)):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple, np.ndarray)):
        return [str(x) for x in v]
    return v


@router.get("/enterprises/{enterprise_id}", response_model=api.EnterpriseOut, summary="An enterprise as the served version has it")
def enterprise(request: Request, enterprise_id: Annotated[str, Path(max_length=api.MAX_ID)],
               actor: Actor = Depends(need("prospects:read"))):
    loaded = svc(request).loaded()
    c = loaded.catalog
    row = c.enterprises.iloc[c.row_of(enterprise_id)]
    out = {name: _value(row.get(name)) for name in api.EnterpriseOut.model_fields if name in row.index}
    member = c.assignments[c.assignments[S.ENTERPRISE_ID] == enterprise_id]
    out["segments"] = [{"chain_id": m["chain_id"], "segment_id": m["segment_id"], "similarity": _value(m.get("similarity"))}
                       for m in member.to_dict("records")]
    return {**out, "version": loaded.version}


# --- shortlists -----------------------------------------------------------------------------

def _summary(s: dict) -> dict:
    keys = api.ShortlistSummary.model_fields
    return {k: s[k] for k in keys if k in s}


def _reviews(item: dict) -> list[dict]:
    return [{"review_id": r["review_id"], "item_id": r["item_id"], "verdict": r["verdict"], "reason_code": r["reason_code"],
             "comment": r["comment"], "reviewer": r["reviewer"], "role": r["role"], "created_at": r["created_at"],
             "item_version": r["item_version"]} for r in item["reviews"]]


def _item(item: dict, lang: str) -> dict:
    keys = [k for k in api.ShortlistItemOut.model_fields if k not in ("explanation", "reviews")]
    return {**{k: item[k] for k in keys if k in item}, "explanation": item[f"explanation_{lang}"], "reviews": _reviews(item)}


def _detail(state: ServiceState, s: dict, lang: str) -> dict:
    loaded = state.holder.current
    gap = None
    if loaded is not None:
        try:
            gap, _ = loaded.catalog.gap(s["gap_id"])
        except UnknownEntityError:
            gap = None
    return {**_summary(s), "filters": s["filters"], "gap": gap, "lang": lang, "items": [_item(i, lang) for i in s["items"]]}


@router.post("/shortlists", response_model=api.ShortlistDetail, status_code=201, responses=WRITE_ERRORS, dependencies=NO_STORE,
             summary="A shortlist from a gap's current top N (scores and explanations frozen)")
def create_shortlist(request: Request, body: api.ShortlistCreate, lang: LangQuery = "en",
                     actor: Actor = Depends(need("shortlists:create"))):
    state = svc(request)
    loaded = state.loaded()
    gap, _ = loaded.catalog.gap(body.gap_id)
    check_own_chain(actor, gap["chain_id"], f"gap '{body.gap_id}'")
    entry = loaded.gap_list(body.gap_id, to_filters(body.filters, state.excluded(body.gap_id)))
    positions = list(range(min(body.top, entry.total)))
    if not positions:
        raise InvalidInputError("body.filters", f"no enterprise passes these filters for gap '{body.gap_id}'")
    english = entry.explanations(loaded.catalog, positions, "en")
    chinese = entry.explanations(loaded.catalog, positions, "zh")
    rows = entry.rows_at(positions)
    items = [{"rank": rows[i]["rank"], "enterprise_id": rows[i]["enterprise_id"], "name": rows[i]["name"],
              "score": float(rows[i]["score"]), "features": entry.feature_vector(p), "explanation_en": english[i],
              "explanation_zh": chinese[i]} for i, p in enumerate(positions)]
    c = loaded.catalog
    shortlist_id = repo.create_shortlist(
        state.store, actor, gap_id=body.gap_id, chain_id=gap["chain_id"], title=body.title or f"{gap['title']} — top {body.top}",
        filters=filters_dict(entry.filters), top=body.top, data_version=c.version, model_version=c.ranker_name,
        snapshot_id=c.manifest["snapshot"]["snapshot_id"], ranked_list=entry.record, items=items)
    state.writer.mark_stored(entry.list_version)
    return _detail(state, repo.get_shortlist(state.store, shortlist_id), lang)


@router.get("/shortlists", response_model=api.ShortlistList, dependencies=NO_STORE, summary="Shortlists, newest first (a chain leader's own chains)")
def list_shortlists(request: Request, chain: TextQuery = None, status: Optional[api.ShortlistStatus] = None,
                    gap: TextQuery = None, limit: Annotated[int, Query(ge=1, le=api.MAX_TOP)] = 50, offset: OffsetQuery = 0,
                    actor: Actor = Depends(need("shortlists:read"))):
    clean(chain, "query.chain")
    clean(gap, "query.gap")
    chains = visible_chains(actor)
    if chain is not None:
        check_chain(actor, chain, "the chain asked for")
        chains = (chain,)
    total, rows = repo.list_shortlists(svc(request).store, chains=chains, status=status, gap_id=gap, limit=limit, offset=offset)
    return {"total": total, "offset": offset, "limit": limit, "shortlists": [_summary(r) for r in rows]}


def _visible(actor: Actor, chain_id: str, shortlist_id: int) -> None:
    """Another chain's shortlist is answered exactly as an unknown one (ids do not tell what exists)."""
    if not sees_chain(actor, chain_id):
        raise UnknownEntityError(f"shortlist {shortlist_id} not found")


def _own_shortlist(state: ServiceState, actor: Actor, shortlist_id: int) -> dict:
    shortlist = repo.get_shortlist(state.store, shortlist_id)
    _visible(actor, shortlist["chain_id"], shortlist_id)
    return shortlist


@router.get("/shortlists/{shortlist_id}", response_model=api.ShortlistDetail, dependencies=NO_STORE, summary="A shortlist with its items and reviews")
def get_shortlist(request: Request, shortlist_id: IntId, lang: LangQuery = "en", actor: Actor = Depends(need("shortlists:read"))):
    state = svc(request)
    return _detail(state, _own_shortlist(state, actor, shortlist_id), lang)


@router.post("/shortlists/{shortlist_id}/items/{item_id}/review", response_model=api.ReviewResponse, responses=WRITE_ERRORS,
             dependencies=NO_STORE, summary="Approve, reject or defer a shortlisted prospect")
def review(request: Request, shortlist_id: IntId, item_id: IntId, body: api.ReviewRequest, lang: LangQuery = "en",
           idempotency_key: Annotated[Optional[str], Header(alias="Idempotency-Key", max_length=200,
                                                            description="repeat a request safely: the same key records one review; "
                                                                        "keys are per API key; reused with a different "
                                                                        "request: 422")] = None,
           actor: Actor = Depends(need("shortlists:review"))):
    state = svc(request)
    chain_id = repo.shortlist_chain(state.store, shortlist_id)
    _visible(actor, chain_id, shortlist_id)
    check_own_chain(actor, chain_id, f"shortlist {shortlist_id}")  # a general chain leader reads it, reviews only their own
    result = repo.review_item(state.store, actor, shortlist_id, item_id, body.verdict, body.reason_code, body.comment,
                              body.expected_version, idempotency_key)
    state.refresh_exclusions(force=True)  # this worker's next list leaves the enterprise out at once
    r = result["review"]
    return {"review": _reviews({"reviews": [r]})[0], "item": _item(result["item"], lang),
            "shortlist_status": result["shortlist_status"], "replayed": result["replayed"]}


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/shortlists/{shortlist_id}/export", response_class=Response, summary="A shortlist as CSV or XLSX",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                         XLSX: {"schema": {"type": "string", "format": "binary"}}},
                             "description": "the shortlist, one row per prospect"}})
def export(request: Request, shortlist_id: IntId, format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
           lang: LangQuery = "en", actor: Actor = Depends(need("shortlists:export"))):
    state = svc(request)
    s = _own_shortlist(state, actor, shortlist_id)
    header = ["rank", "enterprise_id", "name", "score", "status", "reason_code", "comment", "reviewed_by", "reviewed_at",
              "reasons_for", "reasons_against", "evidence", "risk_flags", "model_version", "data_version", "list_version"]
    rows = []
    for i in s["items"]:
        e = i[f"explanation_{lang}"]
        rows.append([i["rank"], i["enterprise_id"], i["name"], round(i["score"], 6), i["status"], i["reason_code"] or "",
                     i["comment"], i["reviewed_by"] or "", i["reviewed_at"].isoformat() if i["reviewed_at"] else "",
                     "; ".join(e["reasons"]["positive"]), "; ".join(e["reasons"]["negative"]), " | ".join(e["evidence"]),
                     ", ".join(e["risk_flags"]), i["model_version"], i["data_version"], i["list_version"]])
    name = f"shortlist-{shortlist_id}"
    # Text written as data, never formulas (matcher/export.py); nobody caches the file on the way.
    headers = {"Content-Disposition": f'attachment; filename="{name}.{format}"', "Cache-Control": "no-store"}
    if format == "csv":
        return Response(write_csv(header, rows), media_type="text/csv; charset=utf-8", headers=headers)
    about = [[k, s[k].isoformat() if isinstance(s[k], datetime) else s[k]]
             for k in ("shortlist_id", "title", "gap_id", "chain_id", "status", "created_by", "created_at", "data_version",
                       "model_version")]
    book = write_xlsx({"shortlist": (header, rows), "about": (None, about)})
    return Response(book, media_type=XLSX, headers=headers)


@router.get("/gaps/{gap_id}/exclusions", response_model=api.ExclusionList,
            summary="Enterprises reviews rejected as not a chain fit for a gap")
def exclusions(request: Request, gap_id: Annotated[str, Path(max_length=api.MAX_ID)], actor: Actor = Depends(need("shortlists:read"))):
    state = svc(request)
    gap, _ = state.loaded().catalog.gap(gap_id)
    _exclusions_visible(actor, gap)
    return {"gap_id": gap_id, "exclusions": repo.list_exclusions(state.store, gap_id)}


def _exclusions_visible(actor: Actor, gap: dict) -> None:
    """A gap's review exclusions belong to its chain: another chain's leader gets 404, as for an unknown gap."""
    if not sees_chain(actor, gap["chain_id"]):
        raise UnknownEntityError(f"gap '{gap['gap_id']}' not found among the gaps of this key's chains")


@router.delete("/gaps/{gap_id}/exclusions/{enterprise_id}", response_model=api.ExclusionOut, responses=WRITE_ERRORS,
               summary="Undo a 'not a chain fit' exclusion")
def lift_exclusion(request: Request, gap_id: Annotated[str, Path(max_length=api.MAX_ID)],
                   enterprise_id: Annotated[str, Path(max_length=api.MAX_ID)], actor: Actor = Depends(need("exclusions:lift"))):
    state = svc(request)
    gap, _ = state.loaded().catalog.gap(gap_id)
    _exclusions_visible(actor, gap)
    check_own_chain(actor, gap["chain_id"], f"gap '{gap_id}'")
    clean(enterprise_id, "path.enterprise_id")
    row = repo.lift_exclusion(state.store, actor, gap_id, enterprise_id)
    state.refresh_exclusions(force=True)
    return row


# --- outcomes -------------------------------------------------------------------------------

def _outcome(row: dict) -> dict:
    return {k: row[k] for k in api.OutcomeOut.model_fields}


@router.post("/outcomes", response_model=api.OutcomeOut, status_code=201, responses=WRITE_ERRORS,
             summary="Record the stage an approach reached")
def record_outcome(request: Request, body: api.OutcomeCreate, actor: Actor = Depends(need("outcomes:write"))):
    state = svc(request)
    catalog = state.loaded().catalog
    if body.gap_id not in catalog.known_gap_ids():
        raise InvalidInputError("body.gap_id", f"'{body.gap_id}' is neither a gap nor a chain_id.segment_id of version {catalog.version}")
    try:
        catalog.row_of(body.enterprise_id)
    except UnknownEntityError:
        raise InvalidInputError("body.enterprise_id", f"'{body.enterprise_id}' is not in version {catalog.version}") from None
    # A chain leader records the approaches of their own chains' gaps (gaps are public: another
    # chain's is 403, as for creating a shortlist on it).
    check_own_chain(actor, repo.chain_of_gap(body.gap_id), f"gap '{body.gap_id}'")
    row = repo.record_outcome(state.store, actor, body.enterprise_id, body.gap_id, body.stage, body.date, body.reason, body.note)
    return _outcome(row)


@router.get("/outcomes", response_model=api.OutcomeList, summary="Recorded outcomes, oldest first")
def list_outcomes(request: Request, gap: TextQuery = None, enterprise: TextQuery = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 500, offset: OffsetQuery = 0,
                  actor: Actor = Depends(need("outcomes:read"))):
    clean(gap, "query.gap")
    clean(enterprise, "query.enterprise")
    rows = repo.list_outcomes(svc(request).store, gap, enterprise, limit, offset)
    return {"outcomes": [_outcome(r) for r in rows]}


# --- the general chain leader's overview ---------------------------------------------------

def _severity(gaps: list[dict]) -> dict:
    counts = {"high": 0, "medium": 0, "low": 0, "total": len(gaps)}
    for g in gaps:
        severity = float(g.get("severity") or 0.0)
        counts["high" if severity >= 0.8 else "medium" if severity >= 0.5 else "low"] += 1
    return counts


def _overview_row(chain_id: str | None, name: str, name_zh: str, gaps: list[dict], counts: dict | None) -> dict:
    counts = counts or {}

    def zeros(what: str, keys) -> dict:
        return {**{k: 0 for k in keys}, **counts.get(what, {})}

    current = zeros("current", STAGES)
    return {"chain_id": chain_id, "name": name, "name_zh": name_zh, "open_gaps": _severity(gaps),
            "shortlists": zeros("shortlists", api.ShortlistCounts.model_fields), "items": zeros("items", api.ItemCounts.model_fields),
            "funnel": zeros("funnel", OPEN_STAGES), "current": current, "declined": current["declined"] + current["lost"],
            "landed_this_quarter": counts.get("landed_this_quarter", 0), "stale_approved": counts.get("stale_approved", 0),
            "stale_shortlists": counts.get("stale_shortlists", 0)}


def _sum_rows(rows: list[dict]) -> dict:
    """The district row: every count of the chain rows added up."""
    def add(values: list):
        if isinstance(values[0], dict):
            return {k: add([v[k] for v in values]) for k in values[0]}
        return sum(values)
    return {k: add([r[k] for r in rows]) for k in rows[0] if k not in ("chain_id", "name", "name_zh")}


def build_overview(state: ServiceState, actor: Actor) -> dict:
    loaded = state.loaded()
    region = loaded.catalog.chain_map.region
    own = visible_chains(actor)  # a chain leader: their own chains' rows, and no district total
    chains = [c for c in loaded.catalog.chain_map.chains if own is None or c.id in own]
    counts = repo.overview_counts(state.store, None if own is None else [c.id for c in chains])
    rows = [_overview_row(c.id, c.name, c.name_zh, [g for g in loaded.catalog.gaps if g["chain_id"] == c.id and _open_gap(g)],
                          counts["chains"].get(c.id)) for c in chains]
    district = None
    if own is None and rows:
        district = {"chain_id": None, "name": region.name, "name_zh": region.name_zh, **_sum_rows(rows)}
    visible = {c.id for c in chains}
    return {"version": loaded.version, "now": counts["now"], "quarter_start": counts["quarter_start"],
            "stale_approved_days": repo.STALE_APPROVED_DAYS, "stale_shortlist_days": repo.STALE_SHORTLIST_DAYS,
            "chains": rows, "district": district,
            # Work of chains no longer in the map stays in the database but not on the page.
            "stale_approved": [r for r in counts["stale_approved"] if r["chain_id"] in visible],
            "stale_shortlists": [r for r in counts["stale_shortlists"] if r["chain_id"] in visible]}


@router.get("/overview", response_model=api.OverviewResponse, dependencies=NO_STORE,
            summary="Per chain and for the district: open gaps, shortlists and reviews, the outreach funnel, landings, stale work")
def overview(request: Request, actor: Actor = Depends(need("overview:read"))):
    return build_overview(svc(request), actor)


OVERVIEW_HEADER = ["chain_id", "chain", "chain_zh", "gaps_high", "gaps_medium", "gaps_low", "gaps_open", "shortlists_open",
                   "shortlists_in_review", "shortlists_reviewed", "prospects_pending", "prospects_approved",
                   "prospects_rejected", "prospects_deferred", "contacted", "visited", "negotiating", "signed", "landed",
                   "declined_or_lost", "landed_this_quarter", "stale_approved", "stale_shortlists"]


def _overview_cells(r: dict) -> list:
    g, s, i, f = r["open_gaps"], r["shortlists"], r["items"], r["funnel"]
    return [r["chain_id"] or "", r["name"], r["name_zh"], g["high"], g["medium"], g["low"], g["total"], s["open"],
            s["in_review"], s["reviewed"], i["pending"], i["approved"], i["rejected"], i["deferred"], f["contacted"],
            f["visited"], f["negotiating"], f["signed"], f["landed"], r["declined"], r["landed_this_quarter"],
            r["stale_approved"], r["stale_shortlists"]]


@router.get("/overview/export", response_class=Response, dependencies=NO_STORE, summary="The overview as XLSX (leaders' meeting)",
            responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
                             "description": "sheets: overview (a row per chain, then the district), stale approvals, "
                                            "stale shortlists, about"}})
def overview_export(request: Request, actor: Actor = Depends(need("overview:read"))):
    o = api.OverviewResponse.model_validate(build_overview(svc(request), actor)).model_dump()
    rows = [_overview_cells(r) for r in o["chains"]] + ([_overview_cells(o["district"])] if o["district"] else [])
    stale = [[r["enterprise_id"], r["name"], r["chain_id"], r["gap_id"], r["shortlist_id"], r["approved_at"].isoformat(),
              r["days"]] for r in o["stale_approved"]]
    idle = [[r["shortlist_id"], r["title"], r["chain_id"], r["gap_id"], r["pending"], r["last_activity"].isoformat(), r["days"]]
            for r in o["stale_shortlists"]]
    about = [["version", o["version"]], ["generated_at", o["now"].isoformat()], ["quarter_start", o["quarter_start"].isoformat()],
             ["stale_approved_days", o["stale_approved_days"]], ["stale_shortlist_days", o["stale_shortlist_days"]]]
    # Text goes out as data, never formulas (matcher/export.py).
    book = write_xlsx({
        "overview": (OVERVIEW_HEADER, rows),
        "stale approvals": (["enterprise_id", "name", "chain_id", "gap_id", "shortlist_id", "approved_at", "days"], stale),
        "stale shortlists": (["shortlist_id", "title", "chain_id", "gap_id", "pending", "last_activity", "days"], idle),
        "about": (None, about)})
    name = f"overview-{o['now'].date().isoformat()}.xlsx"
    return Response(book, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                    "Cache-Control": "no-store"})


# --- admin ----------------------------------------------------------------------------------

@router.get("/admin/versions", response_model=api.VersionsResponse, summary="Published artifact versions")
def versions(request: Request, actor: Actor = Depends(need("admin"))):
    state = svc(request)
    directory = state.settings.artifacts_dir
    current = state.holder.published()
    loaded = state.holder.current.version if state.holder.current else None
    out = []
    for version in artifacts.list_versions(directory):
        try:
            manifest = json.loads((directory / version / artifacts.MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = {}
        out.append({"version": version, "created_at": manifest.get("created_at"),
                    "ranker": (manifest.get("ranker") or {}).get("kind", "cold-start"),
                    "enterprises": (manifest.get("counts") or {}).get("enterprises"),
                    "current": version == current, "loaded": version == loaded})
    return {"current": current, "loaded": loaded, "versions": out}


@router.post("/admin/reload", response_model=api.ReloadResponse, responses=WRITE_ERRORS,
             summary="Load CURRENT (or roll back to a version) without a restart")
def reload(request: Request, body: Annotated[Optional[api.ReloadRequest], Body()] = None, actor: Actor = Depends(need("admin"))):
    state = svc(request)
    version = body.version if body else None
    if version is not None and version not in artifacts.list_versions(state.settings.artifacts_dir):
        raise UnknownEntityError(f"version '{version}' is not published; GET /v1/admin/versions lists them")
    loaded, previous, changed, seconds = state.holder.reload(version)
    with state.store.write() as session:
        repo.audit(session, actor, "artifact.reload", loaded.version, {"previous": previous, "changed": changed})
    return {"loaded": loaded.version, "previous": previous, "changed": changed, "seconds": round(seconds, 3)}


@router.get("/admin/audit", response_model=list[dict], summary="The audit log, newest first")
def audit_log(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: OffsetQuery = 0,
              actor: Actor = Depends(need("admin"))):
    rows = repo.list_audit(svc(request).store, limit, offset)
    return [{**r, "at": r["at"].astimezone(timezone.utc).isoformat()} for r in rows]
