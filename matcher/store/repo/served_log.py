"""Retention of the served-list log: which lists training and audit still need, and pruning the
rest."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from matcher.store.db import Store
from matcher.store.errors import InvalidInputError
from matcher.store.models import RankedList, ServedList, Shortlist, ShortlistItem, utcnow
from matcher.store.repo.audit import CLI_ACTOR, Actor, audit
from matcher.store.repo.sql import chunks
from matcher.store.repo.training import logged_vectors, outcome_records, review_records


def protected_lists(store: Store, feature_names: list[str] | None = None) -> set[str]:
    """List versions the log must keep: those a shortlist or shortlist item froze (reviews name
    items, so these include every list a verdict refers to) and those training reads for a
    recorded outcome or verdict (:func:`logged_vectors`, with ``feature_names`` and with any
    feature names)."""
    with store.read() as s:
        keep = set(s.scalars(sa.select(Shortlist.list_version).distinct()))
        keep |= set(s.scalars(sa.select(ShortlistItem.list_version).distinct()))
    requests = [{"key": ("o", r["enterprise_id"], r["gap_id"]), "enterprise_id": r["enterprise_id"], "gap_id": r["gap_id"],
                 "before": r["recorded_at"]} for r in outcome_records(store, with_recorded_at=True)]
    requests += [{"key": ("r", r["enterprise_id"], r["gap_id"]), "enterprise_id": r["enterprise_id"], "gap_id": r["gap_id"],
                  "before": r["recorded_at"], "list_version": r["list_version"]} for r in review_records(store)]
    for names in [None] + ([list(feature_names)] if feature_names is not None else []):
        keep |= {version for version, _ in logged_vectors(store, requests, names).values()}
    return keep


def prune_served(store: Store, older_than_days: int, *, dry_run: bool = False, feature_names: list[str] | None = None,
                 actor: Actor = CLI_ACTOR, now: datetime | None = None) -> dict:
    """Delete served-page rows older than ``older_than_days`` and ranked lists stored before then
    that no served page refers to any more — except the lists of :func:`protected_lists`
    (training and audit sources; neither they nor their served pages are ever pruned).

    Each chunk is its own transaction, and a list is deleted only if, in that transaction, no
    served page, shortlist or item refers to it (a list served or shortlisted meanwhile stays).
    Unless ``dry_run``, the audit log records the counts.

    Returns
    -------
    dict
        ``cutoff``, ``older_than_days``, ``dry_run``, ``served_deleted``, ``lists_deleted``,
        ``lists_protected`` (stored before the cutoff, kept as sources) and ``lists_kept_served``
        (stored before the cutoff, served since).
    """
    if older_than_days < 1:
        raise InvalidInputError("older_than_days", f"must be at least 1 day, not {older_than_days}")
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    protected = protected_lists(store, feature_names)
    with store.read() as s:
        old_served = set(s.scalars(sa.select(ServedList.list_version).where(ServedList.at < cutoff).distinct()))
        old_lists = set(s.scalars(sa.select(RankedList.list_version).where(RankedList.created_at < cutoff)))
    prunable_served = sorted(old_served - protected)
    prunable_lists = sorted(old_lists - protected)
    counts = {"served_deleted": 0, "lists_deleted": 0}
    referenced = sa.or_(
        sa.exists().where(ServedList.list_version == RankedList.list_version),
        sa.exists().where(Shortlist.list_version == RankedList.list_version),
        sa.exists().where(ShortlistItem.list_version == RankedList.list_version),
    )
    if dry_run:
        with store.read() as s:
            for chunk in chunks(prunable_served):
                counts["served_deleted"] += int(s.scalar(sa.select(sa.func.count(ServedList.id)).where(
                    ServedList.at < cutoff, ServedList.list_version.in_(chunk))))
            for chunk in chunks(prunable_lists):
                fresh = sa.exists().where(ServedList.list_version == RankedList.list_version, ServedList.at >= cutoff)
                counts["lists_deleted"] += int(s.scalar(sa.select(sa.func.count()).select_from(RankedList).where(
                    RankedList.list_version.in_(chunk), ~fresh,
                    ~sa.exists().where(Shortlist.list_version == RankedList.list_version),
                    ~sa.exists().where(ShortlistItem.list_version == RankedList.list_version))))
    else:
        for chunk in chunks(prunable_served):
            with store.write() as s:
                counts["served_deleted"] += s.execute(sa.delete(ServedList).where(
                    ServedList.at < cutoff, ServedList.list_version.in_(chunk))).rowcount
        for chunk in chunks(prunable_lists):
            with store.write() as s:
                counts["lists_deleted"] += s.execute(sa.delete(RankedList).where(
                    RankedList.list_version.in_(chunk), ~referenced).execution_options(synchronize_session=False)).rowcount
    result = {"cutoff": cutoff, "older_than_days": older_than_days, "dry_run": dry_run, **counts,
              "lists_protected": len(old_lists & protected),
              "lists_kept_served": len(prunable_lists) - counts["lists_deleted"]}
    if not dry_run:
        with store.write() as s:
            audit(s, actor, "served_log.prune", f"served-list log older than {older_than_days} days",
                  {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in result.items()})
    return result
