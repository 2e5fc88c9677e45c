"""Repository functions: every read and write the service and the CLI make.

Each write is one transaction (``Store.write``): a shortlist with all its items, a review with
the item's new status, the shortlist's status and any exclusion change, an outcome — all or
nothing, with its audit entry. Values come back as plain dicts.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from matcher.domain import (  # noqa: F401  (the vocabulary is also read as repo.ROLES, repo.STAGES, ...)
    CHAIN_ROLES, CLOSED_STAGES, EXCLUDING_REASON, FINAL_STATUSES, ITEM_STATUSES, OPEN_STAGES, REVIEW_REASONS, ROLES,
    SHORTLIST_STATUSES, STAGES, TERMINAL_STAGES, VERDICT_STATUS, VERDICTS,
)
from matcher.errors import UnknownEntityError
from matcher.store.db import Store
from matcher.store.errors import ConflictError, InvalidInputError, StaleWriteError
from matcher.store.models import (
    ApiKey, AuditEntry, Counter, Exclusion, Outcome, RankedList, Review, ServedList, Shortlist, ShortlistItem, utcnow,
)

KEY_PREFIX = "cmk_"
PREFIX_LENGTH = 12  # "cmk_" + 8 characters: enough to tell keys apart, useless to guess one


@dataclass(frozen=True)
class Actor:
    """Who is acting: an API key's id, prefix, name, role and chains (never the key itself)."""

    key_id: int | None
    prefix: str
    role: str
    chains: tuple[str, ...] = ()
    name: str = ""
    request_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.prefix} ({self.name})" if self.name else self.prefix


CLI_ACTOR = Actor(key_id=None, prefix="cli", role="admin", name="command line")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return utcnow()


def _insert(session: Session):
    """The dialect's ``insert`` (with ``ON CONFLICT``)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _insert_ignore(session: Session, model, rows: list[dict], keys: list[str]) -> None:
    """Insert rows, skipping those whose unique ``keys`` exist (another worker stored them)."""
    if not rows:
        return
    session.execute(_insert(session)(model).on_conflict_do_nothing(index_elements=keys), rows)


def audit(session: Session, actor: Actor, action: str, target: str = "", detail: dict | None = None) -> None:
    session.add(AuditEntry(at=_now(), key_id=actor.key_id, key_prefix=actor.prefix, role=actor.role, action=action,
                           target=target[:400], request_id=actor.request_id, detail=detail))


def list_audit(store: Store, limit: int = 100, offset: int = 0) -> list[dict]:
    with store.read() as s:
        rows = s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
        return [_audit_dict(r) for r in rows]


def _audit_dict(r: AuditEntry) -> dict:
    return {"id": r.id, "at": r.at, "key_id": r.key_id, "key_prefix": r.key_prefix, "role": r.role, "action": r.action,
            "target": r.target, "request_id": r.request_id, "detail": r.detail}


# --- API keys -------------------------------------------------------------------------------

def create_key(store: Store, role: str, chains: Iterable[str] = (), name: str = "", actor: Actor = CLI_ACTOR,
               known_chains: set[str] | None = None) -> tuple[str, dict]:
    """A new API key: returns (the key, shown once; its record). Only its sha256 is stored."""
    chains = tuple(dict.fromkeys(chains))
    if role not in ROLES:
        raise InvalidInputError("role", f"'{role}' is not a role; use one of {', '.join(ROLES)}")
    if role == "chain_leader" and not chains:
        raise InvalidInputError("chain", "a chain_leader key needs at least one --chain")
    if role not in CHAIN_ROLES and chains:
        raise InvalidInputError("chain", f"--chain applies to chain_leader keys only (and to general_leader keys; {role} "
                                         "keys see every chain)")
    unknown = [c for c in chains if known_chains is not None and c not in known_chains]
    if unknown:
        raise InvalidInputError("chain", f"unknown chain(s) {unknown}; known: {', '.join(sorted(known_chains or ()))}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with store.write() as s:
        row = ApiKey(prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key), role=role, chains=list(chains), name=name,
                     created_at=_now())
        s.add(row)
        s.flush()
        audit(s, actor, "key.create", f"key {row.id} {row.prefix}", {"role": role, "chains": list(chains)})
        return key, _key_dict(row)


def _key_dict(row: ApiKey) -> dict:
    return {"key_id": row.id, "prefix": row.prefix, "role": row.role, "chains": list(row.chains or []), "name": row.name,
            "created_at": row.created_at, "revoked_at": row.revoked_at}


def list_keys(store: Store) -> list[dict]:
    with store.read() as s:
        return [_key_dict(r) for r in s.scalars(sa.select(ApiKey).order_by(ApiKey.id))]


def revoke_key(store: Store, ident: str, actor: Actor = CLI_ACTOR) -> dict:
    """Revoke a key by id or prefix (it stops working at once for new lookups)."""
    with store.write() as s:
        query = sa.select(ApiKey)
        query = query.where(ApiKey.id == int(ident)) if str(ident).isdigit() else query.where(ApiKey.prefix == ident)
        rows = s.scalars(query).all()
        if not rows:
            raise UnknownEntityError(f"key '{ident}' not found; 'matcher keys list' shows ids and prefixes")
        if len(rows) > 1:
            raise InvalidInputError("key", f"prefix '{ident}' matches {len(rows)} keys; give the id")
        row = rows[0]
        if row.revoked_at is None:
            row.revoked_at = _now()
            audit(s, actor, "key.revoke", f"key {row.id} {row.prefix}")
        return _key_dict(row)


def authenticate(store: Store, key: str) -> Actor | None:
    """The actor of a valid, unrevoked key, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    with store.read() as s:
        row = s.scalar(sa.select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
        if row is None or row.revoked_at is not None:
            return None
        return Actor(key_id=row.id, prefix=row.prefix, role=row.role, chains=tuple(row.chains or ()), name=row.name)


# --- ranked lists ---------------------------------------------------------------------------

def save_ranked_lists(session: Session, lists: list[dict]) -> None:
    """Store ranked lists (keyed by list version): each record's ``items`` are the part of the list
    to keep (the served or shortlisted candidates, from the top). A list stored before keeps its
    first storing time and gets the longer of the two parts (one statement, so concurrent writers
    never shorten it)."""
    longest: dict[str, dict] = {}
    for r in lists:
        if r["list_version"] not in longest or len(r["items"]) > len(longest[r["list_version"]]["items"]):
            longest[r["list_version"]] = r
    if not longest:
        return
    rows = [{**r, "n_stored": len(r["items"]), "created_at": r.get("created_at") or _now()}
            for _, r in sorted(longest.items())]  # one order for every writer: no lock cycles on PostgreSQL
    statement = _insert(session)(RankedList)
    statement = statement.on_conflict_do_update(
        index_elements=["list_version"],
        set_={"items": statement.excluded["items"], "n_stored": statement.excluded["n_stored"]},
        where=RankedList.n_stored < statement.excluded["n_stored"])
    session.execute(statement, rows)


def log_served(store: Store, lists: list[dict], served: list[dict],
               restore: Callable[[str], dict | None] | None = None) -> int:
    """One batch of the served-list log: new ranked lists (or longer parts of stored ones, see
    :func:`save_ranked_lists`) first, then the served pages.

    A page of a list the database no longer holds (pruned while a worker still serves it) gets
    its list stored again from ``restore(list_version)``; when that gives nothing, its pages are
    left out. Returns the number of served rows written."""
    with store.write() as s:
        save_ranked_lists(s, lists)
        named = {r["list_version"] for r in served} - {r["list_version"] for r in lists}
        present = set()
        for chunk in _chunks(sorted(named)):
            present.update(s.scalars(sa.select(RankedList.list_version).where(RankedList.list_version.in_(chunk))))
        missing = named - present
        if missing:
            again = [r for r in (restore(v) if restore else None for v in sorted(missing)) if r is not None]
            save_ranked_lists(s, [{**r, "created_at": None} for r in again])
            missing -= {r["list_version"] for r in again}
            served = [r for r in served if r["list_version"] not in missing]
        if served:
            s.execute(sa.insert(ServedList), served)
        return len(served)


def _chunks(values: list, size: int = 500) -> Iterator[list]:
    """Slices of ``values`` small enough for an ``IN (...)`` on every backend."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def get_ranked_list(store: Store, list_version: str) -> dict:
    with store.read() as s:
        row = s.get(RankedList, list_version)
        if row is None:
            raise UnknownEntityError(f"list version '{list_version}' not found")
        return {c.name: getattr(row, c.name) for c in RankedList.__table__.columns}


def served_count(store: Store, list_version: str | None = None) -> int:
    with store.read() as s:
        query = sa.select(sa.func.count(ServedList.id))
        if list_version:
            query = query.where(ServedList.list_version == list_version)
        return int(s.scalar(query))


# --- shortlists -----------------------------------------------------------------------------

def create_shortlist(store: Store, actor: Actor, *, gap_id: str, chain_id: str, title: str, filters: dict, top: int,
                     data_version: str, model_version: str, snapshot_id: str, ranked_list: dict,
                     items: list[dict]) -> int:
    """Create a shortlist and all its items in one transaction; returns its id."""
    now = _now()
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


def _counts(s: Session, shortlist_ids: list[int]) -> dict[int, dict[str, int]]:
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


def get_shortlist(store: Store, shortlist_id: int) -> dict:
    """A shortlist with its items (rank order), each with its reviews (oldest first) and whether
    the enterprise is currently excluded from the gap's lists."""
    with store.read() as s:
        row = s.get(Shortlist, shortlist_id)
        if row is None:
            raise UnknownEntityError(f"shortlist {shortlist_id} not found")
        items = s.scalars(sa.select(ShortlistItem).where(ShortlistItem.shortlist_id == shortlist_id).order_by(ShortlistItem.rank)).all()
        reviews = s.scalars(sa.select(Review).where(Review.shortlist_id == shortlist_id).order_by(Review.id)).all()
        excluded = set(s.scalars(sa.select(Exclusion.enterprise_id).where(Exclusion.gap_id == row.gap_id, Exclusion.active)))
        out = _shortlist_dict(row, _counts(s, [row.id])[row.id])
        by_item: dict[int, list[dict]] = {}
        for r in reviews:
            by_item.setdefault(r.item_id, []).append(_review_dict(r))
        out["items"] = [{**_item_dict(i), "reviews": by_item.get(i.id, []), "excluded": i.enterprise_id in excluded} for i in items]
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
        counts = _counts(s, [r.id for r in rows])
        return total, [_shortlist_dict(r, counts[r.id]) for r in rows]


def shortlist_status(counts: dict[str, int]) -> str:
    """open: nothing reviewed; reviewed: every item approved or rejected; in_review otherwise."""
    total = sum(counts.values())
    if counts.get("pending", 0) == total:
        return "open"
    if sum(counts.get(s, 0) for s in FINAL_STATUSES) == total:
        return "reviewed"
    return "in_review"


def check_review(verdict: str, reason_code: str | None) -> None:
    if verdict not in VERDICT_STATUS:
        raise InvalidInputError("body.verdict", f"'{verdict}' is not a verdict; use {', '.join(VERDICTS[:-1])} or {VERDICTS[-1]}")
    if reason_code is None:
        if verdict == "reject":
            raise InvalidInputError("body.reason_code", "a rejection needs a reason code (GET /v1/review-reasons)")
        return
    if reason_code not in REVIEW_REASONS:
        raise InvalidInputError("body.reason_code", f"unknown reason code '{reason_code}'")
    if verdict not in REVIEW_REASONS[reason_code][2]:
        raise InvalidInputError("body.reason_code", f"reason '{reason_code}' does not go with '{verdict}'")


def review_item(store: Store, actor: Actor, shortlist_id: int, item_id: int, verdict: str, reason_code: str | None,
                comment: str = "", expected_version: int | None = None, idempotency_key: str | None = None) -> dict:
    """Record a verdict on a shortlist item.

    Concurrency: the shortlist row is locked first (an UPDATE; on SQLite the write transaction
    holds the database lock), so reviews of one shortlist are applied one after another and its
    status is always computed from committed items. With ``expected_version`` a review of an
    item that changed since is refused (:class:`StaleWriteError`, carrying the current item);
    without it the verdict is applied after the earlier ones — both are kept, in order.

    An ``idempotency_key`` belongs to the caller's API key (two keys may use the same value). Seen
    before with the same request (shortlist, item, verdict, reason, comment, expected version), it
    returns the earlier result instead of a second review; with a different request it is refused
    (:class:`InvalidInputError` on ``header.Idempotency-Key``, 422: the IETF idempotency-key rule),
    so a new verdict is never silently dropped.

    A rejection as ``not_chain_fit`` excludes the enterprise from the gap's lists; any later
    verdict on it (approve, defer, or a rejection for another reason) lifts the exclusion. Verdicts
    on one (gap, enterprise) are serialised (:func:`_lock_verdicts`), from any shortlist: the one
    recorded later (the higher review id) decides whether the enterprise is excluded.
    """
    check_review(verdict, reason_code)
    fingerprint = _request_hash(shortlist_id, item_id, verdict, reason_code, comment, expected_version)
    for attempt in range(2):
        try:
            review_id = _apply_review(store, actor, shortlist_id, item_id, verdict, reason_code, comment, expected_version,
                                      idempotency_key, fingerprint)
            break
        except _Replay as replay:
            return {**_review_result(store, shortlist_id, item_id, replay.review_id), "replayed": True}
        except sa.exc.IntegrityError:
            # The same caller's key committed meanwhile by a request on another shortlist (whose
            # lock this one does not wait for): the second attempt finds it and answers as above.
            if not idempotency_key or attempt:
                raise
    return {**_review_result(store, shortlist_id, item_id, review_id), "replayed": False}


def _request_hash(shortlist_id: int, item_id: int, verdict: str, reason_code: str | None, comment: str,
                  expected_version: int | None) -> str:
    """sha256 of what a review request asks for (stored with its Idempotency-Key)."""
    request = {"shortlist_id": shortlist_id, "item_id": item_id, "verdict": verdict, "reason_code": reason_code,
               "comment": comment, "expected_version": expected_version}
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _lock_verdicts(s: Session, gap_id: str, enterprise_id: str) -> None:
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


class _Replay(Exception):
    def __init__(self, review_id: int):
        self.review_id = review_id


def _apply_review(store: Store, actor: Actor, shortlist_id: int, item_id: int, verdict: str, reason_code: str | None,
                  comment: str, expected_version: int | None, idempotency_key: str | None, fingerprint: str) -> int:
    with store.write() as s:
        locked = s.execute(sa.update(Shortlist).where(Shortlist.id == shortlist_id).values(updated_at=_now()))
        if locked.rowcount == 0:
            raise UnknownEntityError(f"shortlist {shortlist_id} not found")
        if idempotency_key:
            earlier = s.scalar(sa.select(Review).where(Review.key_id == actor.key_id,
                                                       Review.idempotency_key == idempotency_key))
            if earlier is not None:
                same_target = earlier.item_id == item_id and earlier.shortlist_id == shortlist_id
                if not same_target or earlier.request_hash not in (None, fingerprint):  # None: stored before 0003
                    target = "" if same_target else f" (item {earlier.item_id} of shortlist {earlier.shortlist_id})"
                    raise InvalidInputError("header.Idempotency-Key",
                                            f"already used by this key for a different request{target}, recorded as review "
                                            f"{earlier.id} ({earlier.verdict}); send a new key for a new request")
                raise _Replay(earlier.id)  # leaves nothing written (the lock's touch rolls back)
        item = s.get(ShortlistItem, item_id)
        if item is None or item.shortlist_id != shortlist_id:
            raise UnknownEntityError(f"item {item_id} not found in shortlist {shortlist_id}")
        shortlist = s.get(Shortlist, shortlist_id)
        _lock_verdicts(s, shortlist.gap_id, item.enterprise_id)
        now = _now()  # after the lock: verdicts on the pair are timed in the order they apply
        if expected_version is not None and item.version != expected_version:
            raise StaleWriteError(
                f"item {item_id} is at version {item.version}, not {expected_version}: someone reviewed it meanwhile "
                f"({item.status}{', ' + item.reason_code if item.reason_code else ''}); reload and review again",
                current=_item_summary(item),
            )
        seen_version = item.version
        changed = s.execute(
            sa.update(ShortlistItem).where(ShortlistItem.id == item_id, ShortlistItem.version == seen_version)
            .values(status=VERDICT_STATUS[verdict], reason_code=reason_code, comment=comment, reviewed_at=now,
                    reviewed_by=actor.label, version=seen_version + 1)
        )
        if changed.rowcount != 1:  # cannot happen while the shortlist lock is held; never write blind
            raise StaleWriteError(f"item {item_id} changed during the review; reload and review again")
        review = Review(item_id=item_id, shortlist_id=shortlist_id, gap_id=shortlist.gap_id, enterprise_id=item.enterprise_id,
                        verdict=verdict, reason_code=reason_code, comment=comment, key_id=actor.key_id,
                        reviewer=actor.label, role=actor.role, created_at=now, item_version=seen_version + 1,
                        idempotency_key=idempotency_key or None, request_hash=fingerprint if idempotency_key else None,
                        request_id=actor.request_id)
        s.add(review)
        s.flush()
        excluded = verdict == "reject" and reason_code == EXCLUDING_REASON
        _set_exclusion(s, shortlist.gap_id, item.enterprise_id, excluded, review.id, now)
        counts = _counts(s, [shortlist_id])[shortlist_id]
        s.execute(sa.update(Shortlist).where(Shortlist.id == shortlist_id).values(status=shortlist_status(counts)))
        audit(s, actor, f"review.{verdict}", f"shortlist {shortlist_id} item {item_id} enterprise {item.enterprise_id}",
              {"reason_code": reason_code, "item_version": seen_version + 1})
        return review.id


def _item_summary(item: ShortlistItem) -> dict:
    return {"item_id": item.id, "status": item.status, "reason_code": item.reason_code, "comment": item.comment,
            "version": item.version, "reviewed_by": item.reviewed_by,
            "reviewed_at": item.reviewed_at.isoformat() if item.reviewed_at else None}


def _review_result(store: Store, shortlist_id: int, item_id: int, review_id: int) -> dict:
    shortlist = get_shortlist(store, shortlist_id)
    item = next(i for i in shortlist["items"] if i["item_id"] == item_id)
    review = next(r for r in item["reviews"] if r["review_id"] == review_id)
    return {"review": review, "item": item, "shortlist": shortlist, "shortlist_status": shortlist["status"]}


# --- exclusions -----------------------------------------------------------------------------

def _bump(s: Session, name: str) -> None:
    s.execute(sa.update(Counter).where(Counter.name == name).values(value=Counter.value + 1))


def _set_exclusion(s: Session, gap_id: str, enterprise_id: str, excluded: bool, review_id: int | None, now: datetime) -> bool:
    """Exclude (or lift the exclusion of) an enterprise for a gap; True when something changed."""
    row = s.scalar(sa.select(Exclusion).where(Exclusion.gap_id == gap_id, Exclusion.enterprise_id == enterprise_id))
    if excluded:
        if row is None:
            _insert_ignore(s, Exclusion, [{"gap_id": gap_id, "enterprise_id": enterprise_id, "active": False,
                                           "review_id": review_id, "created_at": now}], ["gap_id", "enterprise_id"])
        s.execute(sa.update(Exclusion).where(Exclusion.gap_id == gap_id, Exclusion.enterprise_id == enterprise_id)
                  .values(active=True, review_id=review_id, created_at=now, lifted_at=None))
        _bump(s, "exclusions")
        return True
    if row is not None and row.active:
        row.active, row.lifted_at = False, now
        _bump(s, "exclusions")
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
        _lock_verdicts(s, gap_id, enterprise_id)
        if not _set_exclusion(s, gap_id, enterprise_id, False, None, _now()):
            raise UnknownEntityError(f"enterprise '{enterprise_id}' is not excluded from gap '{gap_id}'")
        audit(s, actor, "exclusion.lift", f"gap {gap_id} enterprise {enterprise_id}")
        row = s.scalar(sa.select(Exclusion).where(Exclusion.gap_id == gap_id, Exclusion.enterprise_id == enterprise_id))
        return {c.name: getattr(row, c.name) for c in Exclusion.__table__.columns}


# --- outcomes -------------------------------------------------------------------------------

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
        _bump(s, "outcomes")  # serialises outcome writes: two clients cannot both move one approach
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
                      reason=reason, note=note, key_id=actor.key_id, recorded_by=actor.label, recorded_at=_now(),
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


# --- the general chain leader's overview ---------------------------------------------------

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
    now = now or _now()
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


# --- training data --------------------------------------------------------------------------

def outcome_records(store: Store, with_recorded_at: bool = False) -> list[dict]:
    """One row per approach (enterprise, gap) in the outcome file vocabulary: ``contacted_at`` is
    the first stage's date, ``outcome`` the latest stage; ``with_recorded_at`` adds
    ``recorded_at``, when the first stage was recorded (server time, UTC)."""
    with store.read() as s:
        rows = s.scalars(sa.select(Outcome).order_by(Outcome.id)).all()
    pairs: dict[tuple[str, str], dict] = {}
    for r in rows:
        pair = pairs.setdefault((r.enterprise_id, r.gap_id), {"enterprise_id": r.enterprise_id, "gap_id": r.gap_id,
                                                               "contacted_at": r.date.isoformat()})
        if with_recorded_at:
            pair.setdefault("recorded_at", r.recorded_at)
        pair["outcome"] = r.stage
    return list(pairs.values())


def review_records(store: Store) -> list[dict]:
    """The latest verdict on each (enterprise, gap) pair, with its date, when it was recorded
    (``recorded_at``, UTC) and the list version its shortlist item froze."""
    with store.read() as s:
        rows = s.execute(sa.select(Review, ShortlistItem.list_version).join(ShortlistItem, ShortlistItem.id == Review.item_id)
                         .order_by(Review.id)).all()
    latest: dict[tuple[str, str], dict] = {}
    for r, list_version in rows:
        latest[(r.enterprise_id, r.gap_id)] = {"enterprise_id": r.enterprise_id, "gap_id": r.gap_id, "verdict": r.verdict,
                                               "reason_code": r.reason_code, "reviewed_at": r.created_at.date().isoformat(),
                                               "recorded_at": r.created_at, "list_version": list_version}
    return list(latest.values())


def logged_vectors(store: Store, requests: list[dict], feature_names: list[str] | None = None) -> dict:
    """The feature vector each labelled pair was served with, from the served-list log.

    For a request (``key``, ``enterprise_id``, ``gap_id``, ``before``: when its label was recorded,
    and optionally ``list_version``: the list a shortlist item froze), the list is the named one
    when it holds the enterprise with ``feature_names``; otherwise the latest list of that gap
    first served (stored) before ``before`` that holds the enterprise and whose feature names are
    ``feature_names`` (any names when None). Each list's items are read at most once.

    Returns
    -------
    dict
        key -> (list version, feature vector: list of float or None, in ``feature_names`` order),
        for the requests a list was found for.
    """
    found: dict = {}
    wanted = [list(feature_names)] if feature_names is not None else None
    with store.read() as s:
        named = sorted({r["list_version"] for r in requests if r.get("list_version")})
        for chunk in _chunks(named):
            for version, names, items in s.execute(sa.select(RankedList.list_version, RankedList.feature_names, RankedList.items)
                                                   .where(RankedList.list_version.in_(chunk))):
                if wanted is not None and list(names or []) not in wanted:
                    continue
                vectors = {i["enterprise_id"]: i["features"] for i in items or []}
                for r in requests:
                    if r.get("list_version") == version and r["enterprise_id"] in vectors:
                        found[r["key"]] = (version, vectors[r["enterprise_id"]])
        pending: dict[str, list[dict]] = {}
        for r in requests:
            if r["key"] not in found:
                pending.setdefault(r["gap_id"], []).append(r)
        for gap_id, open_requests in pending.items():
            latest_before = max(r["before"] for r in open_requests)
            lists = s.execute(sa.select(RankedList.list_version, RankedList.created_at, RankedList.feature_names)
                              .where(RankedList.gap_id == gap_id, RankedList.created_at < latest_before)
                              .order_by(RankedList.created_at.desc(), RankedList.list_version)).all()
            enterprises = {r["enterprise_id"] for r in open_requests}
            for version, created_at, names in lists:  # newest first: the first list to hold a pair is its latest
                if not open_requests:
                    break
                if wanted is not None and list(names or []) not in wanted:
                    continue
                if not any(created_at < r["before"] for r in open_requests):
                    continue
                items = s.scalar(sa.select(RankedList.items).where(RankedList.list_version == version)) or []
                vectors = {i["enterprise_id"]: i["features"] for i in items if i["enterprise_id"] in enterprises}
                still = []
                for r in open_requests:
                    if created_at < r["before"] and r["enterprise_id"] in vectors:
                        found[r["key"]] = (version, vectors[r["enterprise_id"]])
                    else:
                        still.append(r)
                open_requests = still
    return found


# --- served-list log retention ------------------------------------------------------------------

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
    cutoff = (now or _now()) - timedelta(days=older_than_days)
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
            for chunk in _chunks(prunable_served):
                counts["served_deleted"] += int(s.scalar(sa.select(sa.func.count(ServedList.id)).where(
                    ServedList.at < cutoff, ServedList.list_version.in_(chunk))))
            for chunk in _chunks(prunable_lists):
                fresh = sa.exists().where(ServedList.list_version == RankedList.list_version, ServedList.at >= cutoff)
                counts["lists_deleted"] += int(s.scalar(sa.select(sa.func.count()).select_from(RankedList).where(
                    RankedList.list_version.in_(chunk), ~fresh,
                    ~sa.exists().where(Shortlist.list_version == RankedList.list_version),
                    ~sa.exists().where(ShortlistItem.list_version == RankedList.list_version))))
    else:
        for chunk in _chunks(prunable_served):
            with store.write() as s:
                counts["served_deleted"] += s.execute(sa.delete(ServedList).where(
                    ServedList.at < cutoff, ServedList.list_version.in_(chunk))).rowcount
        for chunk in _chunks(prunable_lists):
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
