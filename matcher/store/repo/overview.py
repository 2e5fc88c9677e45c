"""The general chain leader's overview: per chain, shortlists and reviews, the outreach funnel,
this quarter's landings and stale work."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Iterable

import sqlalchemy as sa

from matcher.domain import ITEM_STATUSES, OPEN_STAGES, SHORTLIST_STATUSES, STAGES
from matcher.store.db import Store
from matcher.store.models import Outcome, Shortlist, ShortlistItem, utcnow

STALE_APPROVED_DAYS = 30  # an approved prospect nobody has contacted for this long is stale work
STALE_SHORTLIST_DAYS = 14  # a shortlist with unreviewed items and no review for this long is stale work


def chain_of_gap(gap_id: str) -> str:
    """The chain a gap id belongs to: gap ids are ``chain_id.<segment or declared gap id>`` and chain
    ids have no dots (``matcher/chains.py``)."""
    return gap_id.split(".", 1)[0]


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def overview_counts(store: Store, chains: Iterable[str] | None = None, now: datetime | None = None,
                    stale_limit: int = 100) -> dict:
    """What the chain leaders' meeting looks at, per chain, from the database.

    Parameters
    ----------
    chains : the chains to count (None: every chain with stored work)
    now : the time "this quarter" and "stale" are measured from (default: now, UTC)
    stale_limit : most stale approvals and stale shortlists listed (all are counted)

    Returns
    -------
    dict
        ``chains``: chain_id -> ``shortlists`` (by status), ``items`` (by review status),
        ``funnel`` (approaches that reached each stage: contacted → visited → negotiating → signed →
        landed; every recorded approach counts as contacted), ``current`` (approaches by latest
        stage, declined and lost included), ``landed_this_quarter``, ``stale_approved`` and
        ``stale_shortlists`` (counts); ``stale_approved`` and ``stale_shortlists``: the oldest
        first, at most ``stale_limit`` each; ``quarter_start``, ``now``.
    """
    now = now or utcnow()
    wanted = None if chains is None else set(chains)
    approved_before = now - timedelta(days=STALE_APPROVED_DAYS)
    reviewed_before = now - timedelta(days=STALE_SHORTLIST_DAYS)
    quarter = quarter_start(now.date())
    per: dict[str, dict] = {}

    def row(chain_id: str) -> dict:
        if chain_id not in per:
            per[chain_id] = {"shortlists": {k: 0 for k in SHORTLIST_STATUSES},
                             "items": {k: 0 for k in ITEM_STATUSES},
                             "funnel": {k: 0 for k in OPEN_STAGES}, "current": {k: 0 for k in STAGES},
                             "landed_this_quarter": 0, "stale_approved": 0, "stale_shortlists": 0}
        return per[chain_id]

    def keep(chain_id: str) -> bool:
        return wanted is None or chain_id in wanted

    with store.read() as s:
        scope = [] if wanted is None else [Shortlist.chain_id.in_(sorted(wanted))]
        for chain_id, status, n in s.execute(sa.select(Shortlist.chain_id, Shortlist.status, sa.func.count())
                                             .where(*scope).group_by(Shortlist.chain_id, Shortlist.status)):
            row(chain_id)["shortlists"][status] = int(n)
        for chain_id, status, n in s.execute(
                sa.select(Shortlist.chain_id, ShortlistItem.status, sa.func.count())
                .join(Shortlist, Shortlist.id == ShortlistItem.shortlist_id).where(*scope)
                .group_by(Shortlist.chain_id, ShortlistItem.status)):
            row(chain_id)["items"][status] = int(n)
        outcomes = s.execute(sa.select(Outcome.enterprise_id, Outcome.gap_id, Outcome.stage, Outcome.date)
                             .order_by(Outcome.id)).all()
        approved = s.execute(
            sa.select(ShortlistItem.enterprise_id, ShortlistItem.name, ShortlistItem.reviewed_at, ShortlistItem.shortlist_id,
                      Shortlist.gap_id, Shortlist.chain_id)
            .join(Shortlist, Shortlist.id == ShortlistItem.shortlist_id)
            .where(ShortlistItem.status == "approved", ShortlistItem.reviewed_at < approved_before, *scope)
            .order_by(ShortlistItem.reviewed_at, ShortlistItem.id)).all()
        pending = (sa.select(ShortlistItem.shortlist_id, sa.func.count().label("pending"))
                   .where(ShortlistItem.status == "pending").group_by(ShortlistItem.shortlist_id).subquery())
        idle = s.execute(
            sa.select(Shortlist.id, Shortlist.title, Shortlist.gap_id, Shortlist.chain_id, Shortlist.updated_at, pending.c.pending)
            .join(pending, pending.c.shortlist_id == Shortlist.id)
            .where(Shortlist.updated_at < reviewed_before, *scope).order_by(Shortlist.updated_at, Shortlist.id)).all()

    # An approach is an (enterprise, gap) pair; its stages are recorded in order (record_outcome).
    approaches: dict[tuple[str, str], dict] = {}
    for enterprise_id, gap_id, stage, when in outcomes:
        chain_id = chain_of_gap(gap_id)
        if not keep(chain_id):
            continue
        a = approaches.setdefault((enterprise_id, gap_id), {"chain_id": chain_id, "reached": -1, "latest": stage, "landed": None})
        if stage in OPEN_STAGES:
            a["reached"] = max(a["reached"], OPEN_STAGES.index(stage))
        if stage == "landed":
            a["landed"] = when
        a["latest"] = stage
    for a in approaches.values():
        r = row(a["chain_id"])
        for i, stage in enumerate(OPEN_STAGES):
            if i == 0 or a["reached"] >= i:
                r["funnel"][stage] += 1
        r["current"][a["latest"]] += 1
        if a["landed"] is not None and quarter <= a["landed"] <= now.date():
            r["landed_this_quarter"] += 1

    stale_approved, seen = [], set()
    for enterprise_id, name, reviewed_at, shortlist_id, gap_id, chain_id in approved:
        if (enterprise_id, gap_id) in approaches or (enterprise_id, gap_id) in seen:
            continue
        seen.add((enterprise_id, gap_id))
        row(chain_id)["stale_approved"] += 1
        if len(stale_approved) < stale_limit:
            stale_approved.append({"enterprise_id": enterprise_id, "name": name, "gap_id": gap_id, "chain_id": chain_id,
                                   "shortlist_id": shortlist_id, "approved_at": reviewed_at,
                                   "days": (now - reviewed_at).days})
    stale_shortlists = []
    for shortlist_id, title, gap_id, chain_id, updated_at, n_pending in idle:
        row(chain_id)["stale_shortlists"] += 1
        if len(stale_shortlists) < stale_limit:
            stale_shortlists.append({"shortlist_id": shortlist_id, "title": title, "gap_id": gap_id, "chain_id": chain_id,
                                     "pending": int(n_pending), "last_activity": updated_at, "days": (now - updated_at).days})
    return {"chains": per, "stale_approved": stale_approved, "stale_shortlists": stale_shortlists,
            "quarter_start": quarter, "now": now}
