"""Who the caller is (their key's role, chains and permissions) and the fixed reference lists."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from matcher.domain import EXCLUDING_REASON, REVIEW_REASONS
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import current_actor, permissions
from service.routes.common import ERRORS, PREFIX

router = APIRouter(prefix=PREFIX, responses=ERRORS)


@router.get("/me", response_model=api.MeResponse, summary="The calling key: role, chains, permissions")
def me(actor: Actor = Depends(current_actor)):
    return api.MeResponse(key_id=actor.key_id or 0, prefix=actor.prefix, name=actor.name, role=actor.role,
                          chains=list(actor.chains), permissions=permissions(actor))


@router.get("/review-reasons", response_model=api.ReviewReasonsResponse, summary="The fixed list of review reason codes")
def review_reasons(actor: Actor = Depends(current_actor)):
    return {"reasons": [{"code": code, "label_en": en, "label_zh": zh, "verdicts": list(verdicts),
                         "excludes": code == EXCLUDING_REASON} for code, (en, zh, verdicts) in REVIEW_REASONS.items()]}
