"""Tables of the service database (SQLAlchemy 2). The schema itself is created and changed only
by the Alembic migrations in ``matcher/store/migrations``; these classes must match the head.

Nothing a user entered is ever updated away: reviews, outcomes and the audit log are append-only;
an item's current status is a projection of its reviews, written in the same transaction.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


def strip_nul(value):
    """``value`` without NUL characters: PostgreSQL refuses them in text ("text fields cannot contain
    NUL") and SQLite tools cut a string at one. Source data may carry them (enterprise names);
    every text the store writes passes here (the column types below, JSON through the engine)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strip_nul(v) for v in value]
    return value


class CleanString(sa.types.TypeDecorator):
    """``VARCHAR`` whose values never carry NUL (removed on the way in)."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return strip_nul(value)


class CleanText(CleanString):
    """``TEXT`` whose values never carry NUL (removed on the way in)."""

    impl = sa.Text
    cache_ok = True


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


@sa.event.listens_for(Base, "attribute_instrument", propagate=True)
def _clean_on_assignment(cls, key, attribute) -> None:
    """Text attributes drop NUL when assigned, so an object read back from the session (a new
    outcome, say) holds what the database holds; statements without objects pass the column types."""
    column = getattr(getattr(attribute, "property", None), "columns", [None])[0]
    if isinstance(getattr(column, "type", None), CleanString):
        sa.event.listen(attribute, "set", lambda target, value, old, initiator: strip_nul(value), retval=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(CleanString(16), index=True)
    key_hash: Mapped[str] = mapped_column(CleanString(64), unique=True)  # sha256 hex; the key itself is never stored
    role: Mapped[str] = mapped_column(CleanString(20))
    chains: Mapped[list[Any]] = mapped_column(default=list)
    name: Mapped[str] = mapped_column(CleanString(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[Optional[datetime]]


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    key_id: Mapped[Optional[int]]
    key_prefix: Mapped[Optional[str]] = mapped_column(CleanString(16))
    role: Mapped[Optional[str]] = mapped_column(CleanString(20))
    action: Mapped[str] = mapped_column(CleanString(64))
    target: Mapped[str] = mapped_column(CleanString(400), default="")
    request_id: Mapped[Optional[str]] = mapped_column(CleanString(64))
    detail: Mapped[Optional[dict[str, Any]]]


class RankedList(Base):
    """One distinct ranked list, stored once: the content hash of its inputs and items is its
    list version. ``items`` holds the part of the list that was served or shortlisted — its first
    ``n_stored`` of ``n_items`` candidates, each with its score and feature vector; a later page
    further down extends it (never shortens it)."""

    __tablename__ = "ranked_lists"

    list_version: Mapped[str] = mapped_column(CleanString(64), primary_key=True)
    artifact_version: Mapped[str] = mapped_column(CleanString(100), index=True)
    ranker: Mapped[str] = mapped_column(CleanString(200))
    gap_id: Mapped[Optional[str]] = mapped_column(CleanString(200), index=True)
    query_text: Mapped[str] = mapped_column(CleanText)
    filters: Mapped[dict[str, Any]]
    excluded: Mapped[list[Any]] = mapped_column(default=list)
    feature_names: Mapped[list[Any]]  # order of each item's feature vector
    n_items: Mapped[int]
    n_stored: Mapped[int]  # len(items)
    items: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # first stored: first served or shortlisted


class ServedList(Base):
    """One served page of a ranked list (who, when, which part)."""

    __tablename__ = "served_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    list_version: Mapped[str] = mapped_column(sa.ForeignKey("ranked_lists.list_version"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    key_id: Mapped[Optional[int]]
    route: Mapped[str] = mapped_column(CleanString(100))
    offset: Mapped[int]
    top: Mapped[int]
    request_id: Mapped[Optional[str]] = mapped_column(CleanString(64))


class Shortlist(Base):
    __tablename__ = "shortlists"

    id: Mapped[int] = mapped_column(primary_key=True)
    gap_id: Mapped[str] = mapped_column(CleanString(200), index=True)
    chain_id: Mapped[str] = mapped_column(CleanString(100), index=True)
    title: Mapped[str] = mapped_column(CleanString(200))
    filters: Mapped[dict[str, Any]]
    top: Mapped[int]
    status: Mapped[str] = mapped_column(CleanString(20), default="open", index=True)
    created_by_key_id: Mapped[Optional[int]]
    created_by: Mapped[str] = mapped_column(CleanString(250))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    data_version: Mapped[str] = mapped_column(CleanString(100))
    model_version: Mapped[str] = mapped_column(CleanString(200))
    snapshot_id: Mapped[str] = mapped_column(CleanString(100))
    list_version: Mapped[str] = mapped_column(sa.ForeignKey("ranked_lists.list_version"))
    request_id: Mapped[Optional[str]] = mapped_column(CleanString(64))


class ShortlistItem(Base):
    __tablename__ = "shortlist_items"
    __table_args__ = (sa.UniqueConstraint("shortlist_id", "enterprise_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shortlist_id: Mapped[int] = mapped_column(sa.ForeignKey("shortlists.id"), index=True)
    rank: Mapped[int]
    enterprise_id: Mapped[str] = mapped_column(CleanString(200))
    name: Mapped[str] = mapped_column(CleanString(500))
    score: Mapped[float]
    features: Mapped[dict[str, Any]]
    explanation_en: Mapped[dict[str, Any]]
    explanation_zh: Mapped[dict[str, Any]]
    model_version: Mapped[str] = mapped_column(CleanString(200))
    data_version: Mapped[str] = mapped_column(CleanString(100))
    snapshot_id: Mapped[str] = mapped_column(CleanString(100))
    list_version: Mapped[str] = mapped_column(sa.ForeignKey("ranked_lists.list_version"), index=True)
    status: Mapped[str] = mapped_column(CleanString(20), default="pending")
    reason_code: Mapped[Optional[str]] = mapped_column(CleanString(40))
    comment: Mapped[str] = mapped_column(CleanText, default="")
    reviewed_at: Mapped[Optional[datetime]]
    reviewed_by: Mapped[Optional[str]] = mapped_column(CleanString(250))
    version: Mapped[int] = mapped_column(default=0)


class Review(Base):
    __tablename__ = "reviews"
    # An Idempotency-Key is the caller's: two keys may use the same value independently.
    __table_args__ = (sa.UniqueConstraint("key_id", "idempotency_key", name="uq_reviews_key_id_idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("shortlist_items.id"), index=True)
    shortlist_id: Mapped[int] = mapped_column(index=True)
    gap_id: Mapped[str] = mapped_column(CleanString(200))
    enterprise_id: Mapped[str] = mapped_column(CleanString(200))
    verdict: Mapped[str] = mapped_column(CleanString(20))
    reason_code: Mapped[Optional[str]] = mapped_column(CleanString(40))
    comment: Mapped[str] = mapped_column(CleanText, default="")
    key_id: Mapped[Optional[int]]
    reviewer: Mapped[str] = mapped_column(CleanString(250))
    role: Mapped[str] = mapped_column(CleanString(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    item_version: Mapped[int]
    idempotency_key: Mapped[Optional[str]] = mapped_column(CleanString(200))
    request_hash: Mapped[Optional[str]] = mapped_column(CleanString(64))  # sha256 of what the keyed request asked for
    request_id: Mapped[Optional[str]] = mapped_column(CleanString(64))


class Exclusion(Base):
    """An enterprise a review rejected as not a chain fit for a gap (until lifted)."""

    __tablename__ = "exclusions"
    __table_args__ = (sa.UniqueConstraint("gap_id", "enterprise_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gap_id: Mapped[str] = mapped_column(CleanString(200), index=True)
    enterprise_id: Mapped[str] = mapped_column(CleanString(200))
    active: Mapped[bool] = mapped_column(default=True)
    review_id: Mapped[Optional[int]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_at: Mapped[Optional[datetime]]


class Outcome(Base):
    """One stage an approach reached (append-only; the latest per pair is its state)."""

    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(CleanString(200), index=True)
    gap_id: Mapped[str] = mapped_column(CleanString(200), index=True)
    stage: Mapped[str] = mapped_column(CleanString(20))
    previous_stage: Mapped[Optional[str]] = mapped_column(CleanString(20))
    date: Mapped[date] = mapped_column(sa.Date)
    reason: Mapped[Optional[str]] = mapped_column(CleanText)
    note: Mapped[str] = mapped_column(CleanText, default="")
    key_id: Mapped[Optional[int]]
    recorded_by: Mapped[str] = mapped_column(CleanString(250))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    request_id: Mapped[Optional[str]] = mapped_column(CleanString(64))


class Counter(Base):
    """Named monotonic counters (the exclusion revision workers poll)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(CleanString(64), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class Gap(Base):
    """A gap managed in the service: declared by a chain leader or admin (a segment, or a free-text
    need), or a chain map's gap edited, closed or reopened (the row overrides the map's, same
    ``gap_id``). Changed in place; every change is in the audit log with its before and after."""

    __tablename__ = "gaps"
    # An Idempotency-Key is the caller's: two keys may use the same value independently.
    __table_args__ = (sa.UniqueConstraint("gap_id", name="uq_gaps_gap_id"),
                      sa.UniqueConstraint("created_by_key_id", "idempotency_key", name="uq_gaps_created_by_key_id_idempotency_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    gap_id: Mapped[str] = mapped_column(CleanString(200))
    chain_id: Mapped[str] = mapped_column(CleanString(100), index=True)
    segment_id: Mapped[Optional[str]] = mapped_column(CleanString(100))
    text: Mapped[Optional[str]] = mapped_column(CleanText)  # a free-text need (None: a segment gap)
    # None: the chain map's gap had none (a missing or weak segment nobody prioritised)
    priority: Mapped[Optional[str]] = mapped_column(CleanString(20))
    note: Mapped[str] = mapped_column(CleanText, default="")
    status: Mapped[str] = mapped_column(CleanString(20), default="open")
    origin: Mapped[str] = mapped_column(CleanString(20))  # "service": declared here; "map": the chain map's, overridden
    revision: Mapped[int] = mapped_column(default=1)
    created_by_key_id: Mapped[Optional[int]]
    created_by: Mapped[str] = mapped_column(CleanString(250))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(CleanString(250))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[Optional[datetime]]
    request_id: Mapped[Optional[str]] = mapped_column(CleanString(64))
    idempotency_key: Mapped[Optional[str]] = mapped_column(CleanString(200))  # of the declaring request
    request_hash: Mapped[Optional[str]] = mapped_column(CleanString(64))  # sha256 of what the keyed declaration asked for
