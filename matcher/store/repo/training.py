"""What training reads from the database: outcomes per approach, the latest verdict per pair, and
the feature vectors each labelled pair was served with."""

from __future__ import annotations

import sqlalchemy as sa

from matcher.store.db import Store
from matcher.store.models import Outcome, RankedList, Review, ShortlistItem
from matcher.store.repo.sql import chunks


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
        for chunk in chunks(named):
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
