"""Shortlists: created with all their items and the ranked list they froze; read with their
items, reviews, exclusions and each prospect's outreach stage.

A prospect's outreach stage is the latest outcome recorded (highest id: outcomes are append-only
and move forward) for that enterprise and the shortlist's gap, since outreach is recorded per
(enterprise, gap); None when nothing was recorded. It is read in the same query as the items."""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from matcher.domain import FINAL_STATUSES, ITEM_STATUSES
from matcher.errors import UnknownEntityError
from matcher.store.db import Store
from matcher.store.models import Exclusion, Outcome, Review, Shortlist, ShortlistItem, utcnow
from matcher.store.repo.audit import Actor, audit
from matcher.store.repo.ranked_lists import save_ranked_lists


def create_shortlist(store: Store, actor: Actor, *, gap_id: str, chain_id: str, title: str, filters: dict, top: int,
                     data_version: str, model_version: str, snapshot_id: str, ranked_list: dict,
                     items: list[dict]) -> int:
    """Create a shortlist and all its items in one transaction; returns its id."""
    now = utcnow()
    with store.write() as s:
        save_ranked_lists(s, [ranked_list])
        shortlist = Shortlist(gap_id=gap_id, chain_id=chain_id, title=title, filters=filters, top=top, status="open",
                              created_by_key_id=actor.key_id, created_by=actor.label, created_at=now, updated_at=now,
                              data_version=data_version, model_version=model_version, snapshot_id=snapshot_id,
                              list_version=ranked_list["list_version"], request_id=actor.request_id)
        s.add(shortlist)
        s.flush()
        for item in items:
            s.add(ShortlistItem(shortlist_id=shortlist.id, model_version=model_version, data_version=data_version,
                                snapshot_id=snapshot_id, list_version=ranked_list["list_version"], status="pending",
                                comment="", version=0, **item))
        audit(s, actor, "shortlist.create", f"shortlist {shortlist.id} gap {gap_id}", {"items": len(items), "top": top})
        return shortlist.id


def _shortlist_dict(row: Shortlist, counts: dict[str, int]) -> dict:
    out = {c.name: getattr(row, c.name) for c in Shortlist.__table__.columns}
    out["shortlist_id"] = out.pop("id")
    out["counts"] = {k: counts.get(k, 0) for k in ITEM_STATUSES}
    return out


def _item_dict(row: ShortlistItem) -> dict:
    out = {c.name: getattr(row, c.name) for c in ShortlistItem.__table__.columns}
    out["item_id"] = out.pop("id")
    return out


def _review_dict(row: Review) -> dict:
    out = {c.name: getattr(row, c.name) for c in Review.__table__.columns}
    out["review_id"] = out.pop("id")
    return out


def item_counts(s: Session, shortlist_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per shortlist, its items by review status (statuses with no item left out)."""
    counts: dict[int, dict[str, int]] = {i: {} for i in shortlist_ids}
    if shortlist_ids:
        query = (sa.select(ShortlistItem.shortlist_id, ShortlistItem.status, sa.func.count())
                 .where(ShortlistItem.shortlist_id.in_(shortlist_ids)).group_by(ShortlistItem.shortlist_id, ShortlistItem.status))
        for sid, status, n in s.execute(query):
            counts[sid][status] = n
    return counts


def shortlist_chain(store: Store, shortlist_id: int) -> str:
    """The chain a shortlist belongs to (for access checks)."""
    with store.read() as s:
        chain = s.scalar(sa.select(Shortlist.chain_id).where(Shortlist.id == shortlist_id))
    if chain is None:
        raise UnknownEntityError(f"shortlist {shortlist_id} not found")
    return chain


def _with_outreach(query: sa.Select, gap_id) -> sa.Select:
    """``query`` (of shortlist items) with each item's latest outcome for ``gap_id`` (a value or a
    column) outer-joined: its stage and date, None when none was recorded."""
    latest = (sa.select(Outcome.enterprise_id, Outcome.gap_id, sa.func.max(Outcome.id).label("last_id"))
              .group_by(Outcome.enterprise_id, Outcome.gap_id).subquery())
    return (query.add_columns(Outcome.stage, Outcome.date)
            .outerjoin(latest, sa.and_(latest.c.enterprise_id == ShortlistItem.enterprise_id, latest.c.gap_id == gap_id))
            .outerjoin(Outcome, Outcome.id == latest.c.last_id))


def item_outreach(store: Store, item_id: int) -> dict:
    """A shortlist item's ``outreach_stage`` and ``outreach_date`` (see the module's docstring)."""
    with store.read() as s:
        query = _with_outreach(sa.select(ShortlistItem.id).join(Shortlist, Shortlist.id == ShortlistItem.shortlist_id)
                               .where(ShortlistItem.id == item_id), Shortlist.gap_id)
        found = s.execute(query).first()
    return {"outreach_stage": found.stage if found else None, "outreach_date": found.date if found else None}


def get_shortlist(store: Store, shortlist_id: int) -> dict:
    """A shortlist with its items (rank order), each with its reviews (oldest first), whether
    the enterprise is currently excluded from the gap's lists, and its outreach stage."""
    with store.read() as s:
        row = s.get(Shortlist, shortlist_id)
        if row is None:
            raise UnknownEntityError(f"shortlist {shortlist_id} not found")
        query = sa.select(ShortlistItem).where(ShortlistItem.shortlist_id == shortlist_id).order_by(ShortlistItem.rank)
        items = s.execute(_with_outreach(query, row.gap_id)).all()
        reviews = s.scalars(sa.select(Review).where(Review.shortlist_id == shortlist_id).order_by(Review.id)).all()
        excluded = set(s.scalars(sa.select(Exclusion.enterprise_id).where(Exclusion.gap_id == row.gap_id, Exclusion.active)))
        out = _shortlist_dict(row, item_counts(s, [row.id])[row.id])
        by_item: dict[int, list[dict]] = {}
        for r in reviews:
            by_item.setdefault(r.item_id, []).append(_review_dict(r))
        out["items"] = [{**_item_dict(i), "reviews": by_item.get(i.id, []), "excluded": i.enterprise_id in excluded,
                         "outreach_stage": stage, "outreach_date": when} for i, stage, when in items]
        return out


def list_shortlists(store: Store, *, chains: Iterable[str] | None = None, status: str | None = None,
                    gap_id: str | None = None, limit: int = 50, offset: int = 0) -> tuple[int, list[dict]]:
    """Shortlists, newest first; ``chains`` limits them to those chains. Returns (total, page)."""
    with store.read() as s:
        query = sa.select(Shortlist)
        if chains is not None:
            query = query.where(Shortlist.chain_id.in_(list(chains)))
        if status:
            query = query.where(Shortlist.status == status)
        if gap_id:
            query = query.where(Shortlist.gap_id == gap_id)
        total = int(s.scalar(sa.select(sa.func.count()).select_from(query.subquery())))
        rows = s.scalars(query.order_by(Shortlist.id.desc()).limit(limit).offset(offset)).all()
        counts = item_counts(s, [r.id for r in rows])
        return total, [_shortlist_dict(r, counts[r.id]) for r in rows]


def shortlist_status(counts: dict[str, int]) -> str:
    """open: nothing reviewed; reviewed: every item approved or rejected; in_review otherwise."""
    total = sum(counts.values())
    if counts.get("pending", 0) == total:
        return "open"
    if sum(counts.get(s, 0) for s in FINAL_STATUSES) == total:
        return "reviewed"
    return "in_review"
