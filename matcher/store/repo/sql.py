"""SQL building blocks the repository modules share: the dialect's upsert, chunked ``IN``
lists and counters."""

from __future__ import annotations

from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from matcher.store.models import Counter


def dialect_insert(session: Session):
    """The dialect's ``insert`` (with ``ON CONFLICT``)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def insert_ignore(session: Session, model, rows: list[dict], keys: list[str]) -> None:
    """Insert rows, skipping those whose unique ``keys`` exist (another worker stored them)."""
    if not rows:
        return
    session.execute(dialect_insert(session)(model).on_conflict_do_nothing(index_elements=keys), rows)


def chunks(values: list, size: int = 500) -> Iterator[list]:
    """Slices of ``values`` small enough for an ``IN (...)`` on every backend."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def bump_counter(s: Session, name: str) -> None:
    """Add one to a named counter; the row lock it takes also serialises writers of that kind."""
    s.execute(sa.update(Counter).where(Counter.name == name).values(value=Counter.value + 1))
