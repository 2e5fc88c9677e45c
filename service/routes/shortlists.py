"""Shortlists: created from a gap's ranked list, listed, reviewed and exported; and the review
exclusions of a gap."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from matcher.errors import UnknownEntityError
from matcher.export import write_csv, write_xlsx
from matcher.store import repo
from matcher.store.errors import InvalidInputError
from matcher.store.repo import Actor
from matcher.store.repo.shortlists import item_outreach
from service import schemas as api
from service.auth import check_chain, check_export, check_own_chain, need, permissions, visible_chains
from service.errors import PermissionDeniedError
from service.holder import filters_dict
from service.routes.common import (
    ERRORS, NO_STORE, PREFIX, WRITE_ERRORS, XLSX, IntId, LangQuery, OffsetQuery, TextQuery, clean, sees_chain, svc,
    to_filters,
)
from service.state import ServiceState

router = APIRouter(prefix=PREFIX, responses=ERRORS)


def shortlist_summary(s: dict, actor: Actor | None = None) -> dict:
    """A stored shortlist as :class:`~service.schemas.ShortlistSummary` (no items), with whether
    ``actor`` may export it."""
    keys = api.ShortlistSummary.model_fields
    return {**{k: s[k] for k in keys if k in s}, "can_export": actor is not None and may_export(actor, s)}


def may_export(actor: Actor, s: dict) -> bool:
    """Whether the export route would let ``actor`` export shortlist ``s`` (one they can see)."""
    if "shortlists:export" not in permissions(actor):
        return False
    try:
        check_export(actor, s)
    except PermissionDeniedError:
        return False
    return True


def _reviews(item: dict) -> list[dict]:
    return [{"review_id": r["review_id"], "item_id": r["item_id"], "verdict": r["verdict"], "reason_code": r["reason_code"],
             "comment": r["comment"], "reviewer": r["reviewer"], "role": r["role"], "created_at": r["created_at"],
             "item_version": r["item_version"]} for r in item["reviews"]]


def _item(item: dict, lang: str) -> dict:
    keys = [k for k in api.ShortlistItemOut.model_fields if k not in ("explanation", "reviews")]
    return {**{k: item[k] for k in keys if k in item}, "explanation": item[f"explanation_{lang}"], "reviews": _reviews(item)}


def _detail(state: ServiceState, s: dict, lang: str, actor: Actor) -> dict:
    loaded = state.holder.current
    gap = None
    if loaded is not None:
        try:
            gap, _ = loaded.catalog.gap(s["gap_id"])
        except UnknownEntityError:
            gap = None
    return {**shortlist_summary(s, actor), "filters": s["filters"], "gap": gap, "lang": lang,
            "items": [_item(i, lang) for i in s["items"]]}


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
    return _detail(state, repo.get_shortlist(state.store, shortlist_id), lang, actor)


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
    return {"total": total, "offset": offset, "limit": limit, "shortlists": [shortlist_summary(r, actor) for r in rows]}


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
    return _detail(state, _own_shortlist(state, actor, shortlist_id), lang, actor)


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
    item = {**result["item"], **item_outreach(state.store, item_id)}
    return {"review": _reviews({"reviews": [r]})[0], "item": _item(item, lang),
            "shortlist_status": result["shortlist_status"], "replayed": result["replayed"]}


@router.get("/shortlists/{shortlist_id}/export", response_class=Response, summary="A shortlist as CSV or XLSX",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                         XLSX: {"schema": {"type": "string", "format": "binary"}}},
                             "description": "the shortlist, one row per prospect"}})
def export(request: Request, shortlist_id: IntId, format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
           lang: LangQuery = "en", actor: Actor = Depends(need("shortlists:export"))):
    state = svc(request)
    s = _own_shortlist(state, actor, shortlist_id)
    check_export(actor, s)
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
