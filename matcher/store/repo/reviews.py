"""Review verdicts on shortlist items: validated against the reason codes, applied one at a time
per shortlist, idempotent per API key, and excluding (or readmitting) the enterprise."""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa

from matcher.domain import EXCLUDING_REASON, REVIEW_REASONS, VERDICT_STATUS, VERDICTS
from matcher.errors import UnknownEntityError
from matcher.store.db import Store
from matcher.store.errors import InvalidInputError, StaleWriteError
from matcher.store.models import Review, Shortlist, ShortlistItem, utcnow
from matcher.store.repo.audit import Actor, audit
from matcher.store.repo.exclusions import lock_verdicts, set_exclusion
from matcher.store.repo.shortlists import get_shortlist, item_counts, shortlist_status


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
    on one (gap, enterprise) are serialised (:func:`lock_verdicts`), from any shortlist: the one
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


class _Replay(Exception):
    def __init__(self, review_id: int):
        self.review_id = review_id


def _apply_review(store: Store, actor: Actor, shortlist_id: int, item_id: int, verdict: str, reason_code: str | None,
                  comment: str, expected_version: int | None, idempotency_key: str | None, fingerprint: str) -> int:
    with store.write() as s:
        locked = s.execute(sa.update(Shortlist).where(Shortlist.id == shortlist_id).values(updated_at=utcnow()))
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
        lock_verdicts(s, shortlist.gap_id, item.enterprise_id)
        now = utcnow()  # after the lock: verdicts on the pair are timed in the order they apply
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
        set_exclusion(s, shortlist.gap_id, item.enterprise_id, excluded, review.id, now)
        counts = item_counts(s, [shortlist_id])[shortlist_id]
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
