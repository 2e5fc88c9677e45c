"""The served-list log: ranked lists (with the features each candidate was scored on) and the
pages served from them."""

from __future__ import annotations

from typing import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from matcher.errors import UnknownEntityError
from matcher.store.db import Store
from matcher.store.models import RankedList, ServedList, utcnow
from matcher.store.repo.sql import chunks, dialect_insert


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
    rows = [{**r, "n_stored": len(r["items"]), "created_at": r.get("created_at") or utcnow()}
            for _, r in sorted(longest.items())]  # one order for every writer: no lock cycles on PostgreSQL
    statement = dialect_insert(session)(RankedList)
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
        for chunk in chunks(sorted(named)):
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
