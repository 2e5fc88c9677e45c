"""Outreach outcomes: the stages an approach (enterprise, gap) reaches, recorded forward only."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from matcher.domain import CLOSED_STAGES, OPEN_STAGES, STAGES, TERMINAL_STAGES
from matcher.store.db import Store
from matcher.store.errors import ConflictError, InvalidInputError
from matcher.store.models import Outcome, utcnow
from matcher.store.repo.audit import Actor, audit
from matcher.store.repo.sql import bump_counter


def _outcome_dict(row: Outcome) -> dict:
    out = {c.name: getattr(row, c.name) for c in Outcome.__table__.columns}
    out["outcome_id"] = out.pop("id")
    return out


def record_outcome(store: Store, actor: Actor, enterprise_id: str, gap_id: str, stage: str, when: date,
                   reason: str | None = None, note: str = "") -> dict:
    """Record the stage an approach reached. Stages move forward (contacted → visited →
    negotiating → signed → landed; skipping is fine); declined / lost (with a reason) end an open
    approach; nothing follows landed, declined or lost."""
    if stage not in STAGES:
        raise InvalidInputError("body.stage", f"'{stage}' is not a stage; use one of {', '.join(STAGES)}")
    if stage in CLOSED_STAGES and not (reason or "").strip():
        raise InvalidInputError("body.reason", f"a reason is required when the stage is {stage}")
    with store.write() as s:
        bump_counter(s, "outcomes")  # serialises outcome writes: two clients cannot both move one approach
        last = s.scalar(sa.select(Outcome).where(Outcome.enterprise_id == enterprise_id, Outcome.gap_id == gap_id)
                        .order_by(Outcome.id.desc()).limit(1))
        previous = last.stage if last is not None else None
        if previous in TERMINAL_STAGES:
            raise ConflictError(f"the approach of {enterprise_id} for {gap_id} already ended ({previous}); nothing can follow",
                                current=_jsonable(_outcome_dict(last)))
        if previous and stage in OPEN_STAGES and OPEN_STAGES.index(stage) <= OPEN_STAGES.index(previous):
            raise ConflictError(f"the approach of {enterprise_id} for {gap_id} is already at '{previous}'; stages only move "
                                f"forward ({' → '.join(OPEN_STAGES)})", current=_jsonable(_outcome_dict(last)))
        if last is not None and when < last.date:
            raise InvalidInputError("body.date", f"{when} is before the previous stage's date {last.date}")
        row = Outcome(enterprise_id=enterprise_id, gap_id=gap_id, stage=stage, previous_stage=previous, date=when,
                      reason=reason, note=note, key_id=actor.key_id, recorded_by=actor.label, recorded_at=utcnow(),
                      request_id=actor.request_id)
        s.add(row)
        s.flush()
        audit(s, actor, f"outcome.{stage}", f"enterprise {enterprise_id} gap {gap_id}", {"outcome_id": row.id})
        return _outcome_dict(row)


def _jsonable(d: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in d.items()}


def list_outcomes(store: Store, gap_id: str | None = None, enterprise_id: str | None = None, limit: int = 500,
                  offset: int = 0) -> list[dict]:
    with store.read() as s:
        query = sa.select(Outcome)
        if gap_id:
            query = query.where(Outcome.gap_id == gap_id)
        if enterprise_id:
            query = query.where(Outcome.enterprise_id == enterprise_id)
        return [_outcome_dict(r) for r in s.scalars(query.order_by(Outcome.id).limit(limit).offset(offset))]
