"""Outreach outcomes: recording the stage an approach reached, and reading them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from matcher.errors import UnknownEntityError
from matcher.store import repo
from matcher.store.errors import InvalidInputError
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import check_own_chain, need
from service.routes.common import ERRORS, PREFIX, WRITE_ERRORS, OffsetQuery, TextQuery, clean, svc

router = APIRouter(prefix=PREFIX, responses=ERRORS)


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
