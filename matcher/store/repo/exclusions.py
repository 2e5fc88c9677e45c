"""Exclusions: enterprises a 'not a chain fit' rejection keeps off a gap's lists, the revision
workers poll to notice a change, and the per-pair lock verdicts take."""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from matcher.errors import UnknownEntityError
from matcher.store.db import Store
from matcher.store.models import Counter, Exclusion, utcnow
from matcher.store.repo.audit import Actor, audit
from matcher.store.repo.sql import bump_counter, insert_ignore


def lock_verdicts(s: Session, gap_id: str, enterprise_id: str) -> None:
    """Hold, until the transaction ends, the lock of verdicts on (gap, enterprise): whichever
    review takes it second reads the first one's exclusion change. PostgreSQL: a transaction-level
    advisory lock on a 64-bit hash of the pair (a collision only serialises two pairs); SQLite: the
    database's write lock, which a write transaction takes when it begins (``BEGIN IMMEDIATE``; begun
    here at the latest)."""
    if s.get_bind().dialect.name == "postgresql":
        digest = hashlib.blake2b(f"{gap_id}\x1f{enterprise_id}".encode("utf-8"), digest_size=8).digest()
        s.execute(sa.select(sa.func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))
    else:
        s.connection()


def set_exclusion(s: Session, gap_id: str, enterprise_id: str, excluded: bool, review_id: int | None, now: datetime) -> bool:
    """Exclude (or lift the exclusion of) an enterprise for a gap; True when something changed."""
    row = s.scalar(sa.select(Exclusion).where(Exclusion.gap_id == gap_id, Exclusion.enterprise_id == enterprise_id))
    if excluded:
        if row is None:
            insert_ignore(s, Exclusion, [{"gap_id": gap_id, "enterprise_id": enterprise_id, "active": False,
                                           "review_id": review_id, "created_at": now}], ["gap_id", "enterprise_id"])
        s.execute(sa.update(Exclusion).where(Exclusion.gap_id == gap_id, Exclusion.enterprise_id == enterprise_id)
                  .values(active=True, review_id=review_id, created_at=now, lifted_at=None))
        bump_counter(s, "exclusions")
        return True
    if row is not None and row.active:
        row.active, row.lifted_at = False, now
        bump_counter(s, "exclusions")
        return True
    return False


def exclusion_revision(store: Store) -> int:
    """Changes whenever an exclusion is added or lifted (workers poll it)."""
    with store.read() as s:
        return int(s.scalar(sa.select(Counter.value).where(Counter.name == "exclusions")) or 0)


def active_exclusions(store: Store) -> tuple[int, dict[str, frozenset[str]]]:
    """(revision, gap -> enterprises excluded from its lists), read in one transaction."""
    with store.read() as s:
        revision = int(s.scalar(sa.select(Counter.value).where(Counter.name == "exclusions")) or 0)
        by_gap: dict[str, set[str]] = {}
        for gap_id, enterprise_id in s.execute(sa.select(Exclusion.gap_id, Exclusion.enterprise_id).where(Exclusion.active)):
            by_gap.setdefault(gap_id, set()).add(enterprise_id)
        return revision, {g: frozenset(e) for g, e in by_gap.items()}


def list_exclusions(store: Store, gap_id: str) -> list[dict]:
    with store.read() as s:
        rows = s.scalars(sa.select(Exclusion).where(Exclusion.gap_id == gap_id).order_by(Exclusion.id)).all()
        return [{c.name: getattr(r, c.name) for c in Exclusion.__table__.columns} for r in rows]


def lift_exclusion(store: Store, actor: Actor, gap_id: str, enterprise_id: str) -> dict:
    """Undo a 'not a chain fit' exclusion explicitly."""
    with store.write() as s:
        lock_verdicts(s, gap_id, enterprise_id)
        if not set_exclusion(s, gap_id, enterprise_id, False, None, utcnow()):
            raise UnknownEntityError(f"enterprise '{enterprise_id}' is not excluded from gap '{gap_id}'")
        audit(s, actor, "exclusion.lift", f"gap {gap_id} enterprise {enterprise_id}")
        row = s.scalar(sa.select(Exclusion).where(Exclusion.gap_id == gap_id, Exclusion.enterprise_id == enterprise_id))
        return {c.name: getattr(row, c.name) for c in Exclusion.__table__.columns}
