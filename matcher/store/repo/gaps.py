"""Gaps managed in the service: declared, edited, closed and reopened by chain leaders and admins.

The chain map's gaps (missing and weak segments, the YAML's declared gaps) stay the starting set.
A row here overrides the map's gap of the same ``gap_id``: editing or closing a map gap stores a
row for it (``origin`` "map"), so the map itself is never rewritten. New gaps (``origin``
"service") are a segment — gap id ``chain_id.segment_id``, as the build names segment gaps — or a
free-text need — gap id ``chain_id.<slug of its text>``, unique in the chain. Every change is one
transaction with its audit entry (``before`` and ``after``) and moves the ``gaps`` counter that
service workers poll.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import date, datetime

import sqlalchemy as sa

from matcher.chain_map import PRIORITY_SEVERITY
from matcher.errors import UnknownEntityError
from matcher.store.db import Store
from matcher.store.errors import ConflictError, InvalidInputError
from matcher.store.models import Counter, Gap, utcnow
from matcher.store.repo.audit import Actor, audit
from matcher.store.repo.sql import bump_counter

GAP_PRIORITIES = tuple(PRIORITY_SEVERITY)  # high, medium, low: the chain map's priorities
GAP_STATUSES = ("open", "closed")
GAP_TEXT_MAX = 1000  # characters of a free-text need
GAP_NOTE_MAX = 2000  # characters of a note
SLUG_WORDS = 6
SLUG_MAX = 40


def check_gap_fields(*, text: str | None = None, note: str | None = None, priority: str | None = None,
                     where: str = "body.") -> None:
    """The one check of what a person enters for a gap (API and CLI): a free-text need neither
    empty nor over ``GAP_TEXT_MAX`` characters, a note of at most ``GAP_NOTE_MAX``, a known
    priority. ``where`` prefixes the field names of the error ("body." or "--")."""
    if text is not None:
        if not text.strip():
            raise InvalidInputError(f"{where}text", "must not be empty")
        if len(text) > GAP_TEXT_MAX:
            raise InvalidInputError(f"{where}text", f"at most {GAP_TEXT_MAX} characters (got {len(text)})")
    if note is not None and len(note) > GAP_NOTE_MAX:
        raise InvalidInputError(f"{where}note", f"at most {GAP_NOTE_MAX} characters (got {len(note)})")
    if priority is not None and priority not in GAP_PRIORITIES:
        raise InvalidInputError(f"{where}priority", f"'{priority}' is not a priority; use one of {', '.join(GAP_PRIORITIES)}")
    for name, value in (("text", text), ("note", note)):
        if value is not None and "\x00" in value:
            raise InvalidInputError(f"{where}{name}", "must not contain NUL characters")


def gap_slug(text: str) -> str:
    """A readable id part from a need's first words ("Battery recycling plants nearby" ->
    "battery-recycling-plants-nearby"); "need" for a text without Latin letters or digits."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = re.findall(r"[a-z0-9]+", ascii_text)[:SLUG_WORDS]
    slug = "-".join(words)[:SLUG_MAX].strip("-")
    return slug or "need"


def _jsonable(value):
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def gap_row_dict(row: Gap) -> dict:
    hidden = ("id", "idempotency_key", "request_hash")
    return {c.name: getattr(row, c.name) for c in Gap.__table__.columns if c.name not in hidden}


def _state(d: dict | None) -> dict | None:
    """What the audit log and a 409 body show of a gap: JSON values only."""
    if d is None:
        return None
    keys = ("gap_id", "chain_id", "segment_id", "text", "priority", "note", "status", "origin", "revision", "updated_by",
            "updated_at", "closed_at")
    return {k: _jsonable(d.get(k)) for k in keys if k in d}


def gap_revision(store: Store) -> int:
    """Changes whenever a gap is declared, edited, closed or reopened (workers poll it)."""
    with store.read() as s:
        return int(s.scalar(sa.select(Counter.value).where(Counter.name == "gaps")) or 0)


def gap_rows(store: Store, chain_id: str | None = None) -> tuple[int, list[dict]]:
    """(revision, every stored gap row, oldest first), read in one transaction."""
    with store.read() as s:
        revision = int(s.scalar(sa.select(Counter.value).where(Counter.name == "gaps")) or 0)
        query = sa.select(Gap).order_by(Gap.id)
        if chain_id is not None:
            query = query.where(Gap.chain_id == chain_id)
        return revision, [gap_row_dict(r) for r in s.scalars(query)]


def get_gap_row(store: Store, gap_id: str) -> dict | None:
    with store.read() as s:
        row = s.scalar(sa.select(Gap).where(Gap.gap_id == gap_id))
        return None if row is None else gap_row_dict(row)


def declare_gap(store: Store, actor: Actor, chain_id: str, *, segment_id: str | None = None, text: str | None = None,
                priority: str = "medium", note: str = "", taken: set[str] = frozenset(), where: str = "body.",
                idempotency_key: str | None = None) -> dict:
    """Declare a new gap of a chain: a segment (``segment_id``) or a free-text need (``text``).

    ``taken``: gap ids the chain map already uses (its gaps and every ``chain_id.segment_id``); a
    free-text gap's id avoids them and every stored one. The caller checks that the chain and
    segment exist and that the segment is not already one of the map's open gaps.

    ``idempotency_key`` (the caller's, per API key): the same key with the same declaration
    returns the gap it declared (``replayed`` True) instead of a second one; with another
    declaration it is an InvalidInputError on ``header.Idempotency-Key``.

    Raises
    ------
    InvalidInputError
        Neither or both of segment and text; empty or over-long text or note; unknown priority.
    ConflictError
        The segment's gap is stored already (open or closed), with its current state.
    """
    if (segment_id is None) == (text is None):
        raise InvalidInputError(f"{where}segment_id", "give exactly one of a segment or a free-text need (text)")
    check_gap_fields(text=text, note=note, priority=priority, where=where)
    fingerprint = hashlib.sha256(json.dumps([chain_id, segment_id, text, priority, note], ensure_ascii=False).encode()).hexdigest()
    with store.write() as s:
        bump_counter(s, "gaps")  # serialises gap writers: two declarations cannot take one id
        if idempotency_key:
            earlier = s.scalar(sa.select(Gap).where(Gap.created_by_key_id == actor.key_id, Gap.idempotency_key == idempotency_key))
            if earlier is not None:
                if earlier.request_hash != fingerprint:
                    raise InvalidInputError("header.Idempotency-Key", "this key already declared another gap "
                                                                      f"({earlier.gap_id}); use a new key for a new request")
                return {**gap_row_dict(earlier), "replayed": True}
        if segment_id is not None:
            gap_id = f"{chain_id}.{segment_id}"
            row = s.scalar(sa.select(Gap).where(Gap.gap_id == gap_id))
            if row is not None:
                state = "closed: reopen it" if row.status == "closed" else "open: edit it"
                raise ConflictError(f"segment '{segment_id}' of chain '{chain_id}' is already a gap ({gap_id}, {state})",
                                    current=_state(gap_row_dict(row)))
        else:
            stored = set(s.scalars(sa.select(Gap.gap_id).where(Gap.chain_id == chain_id)))
            base = gap_slug(text)
            gap_id, n = f"{chain_id}.{base}", 1
            while gap_id in taken or gap_id in stored:
                n += 1
                gap_id = f"{chain_id}.{base}-{n}"
        now = utcnow()
        row = Gap(gap_id=gap_id, chain_id=chain_id, segment_id=segment_id, text=text.strip() if text else None,
                  priority=priority, note=note, status="open", origin="service", revision=1, created_by_key_id=actor.key_id,
                  created_by=actor.label, created_at=now, updated_by=actor.label, updated_at=now, request_id=actor.request_id,
                  idempotency_key=idempotency_key or None, request_hash=fingerprint if idempotency_key else None)
        s.add(row)
        s.flush()
        after = gap_row_dict(row)
        audit(s, actor, "gap.declare", f"gap {gap_id}", {"before": None, "after": _state(after)})
        return {**after, "replayed": False}


def _row_or_base(s, gap_id: str, base: dict | None) -> tuple[Gap | None, dict]:
    row = s.scalar(sa.select(Gap).where(Gap.gap_id == gap_id))
    if row is not None:
        return row, gap_row_dict(row)
    if base is None:
        raise UnknownEntityError(f"gap '{gap_id}' not found; GET /v1/chains/{{chain_id}}/gaps (or 'matcher gaps') lists them")
    return None, {"gap_id": gap_id, "chain_id": base["chain_id"], "segment_id": base.get("segment_id"),
                  "text": None if base.get("segment_id") else base.get("text"), "priority": base.get("priority"),
                  "note": base.get("note") or "", "status": "open", "origin": "map", "revision": 0}


def _override(s, actor: Actor, state: dict, now: datetime) -> Gap:
    """The row that makes a chain map gap's new state (its first change)."""
    row = Gap(gap_id=state["gap_id"], chain_id=state["chain_id"], segment_id=state["segment_id"], text=state["text"],
              priority=state["priority"], note=state["note"], status=state["status"], origin="map", revision=0,
              created_by_key_id=actor.key_id, created_by=actor.label, created_at=now, updated_by=actor.label, updated_at=now)
    s.add(row)
    return row


def edit_gap(store: Store, actor: Actor, gap_id: str, *, base: dict | None = None, priority: str | None = None,
             note: str | None = None, text: str | None = None, where: str = "body.") -> dict:
    """Change a gap's priority, note or (a free-text gap's) text; fields left None stay.

    ``base``: the chain map's gap of that id as the published version has it (None: not a map
    gap), whose first edit stores a row overriding it.
    """
    check_gap_fields(text=text, note=note, priority=priority, where=where)
    if priority is None and note is None and text is None:
        raise InvalidInputError(f"{where}priority", "nothing to change: give a priority, a note or a text")
    with store.write() as s:
        bump_counter(s, "gaps")
        row, before = _row_or_base(s, gap_id, base)
        if text is not None and before["segment_id"] is not None:
            raise InvalidInputError(f"{where}text", f"gap '{gap_id}' is a segment gap: its text is the segment's; "
                                                    "change its priority or note")
        now = utcnow()
        if row is None:
            row = _override(s, actor, before, now)
        if priority is not None:
            row.priority = priority
        if note is not None:
            row.note = note
        if text is not None:
            row.text = text.strip()
        row.revision, row.updated_by, row.updated_at, row.request_id = row.revision + 1, actor.label, now, actor.request_id
        s.flush()
        after = gap_row_dict(row)
        audit(s, actor, "gap.edit", f"gap {gap_id}", {"before": _state(before), "after": _state(after)})
        return after


def set_gap_status(store: Store, actor: Actor, gap_id: str, status: str, *, base: dict | None = None) -> dict:
    """Close or reopen a gap (``status`` "closed" / "open"); a gap already in that state is a
    ConflictError carrying its current state. ``base`` as for :func:`edit_gap`."""
    if status not in GAP_STATUSES:
        raise InvalidInputError("body.status", f"'{status}' is not a gap status; use one of {', '.join(GAP_STATUSES)}")
    with store.write() as s:
        bump_counter(s, "gaps")
        row, before = _row_or_base(s, gap_id, base)
        if before["status"] == status:
            verb = "closed" if status == "closed" else "open"
            raise ConflictError(f"gap '{gap_id}' is already {verb}", current=_state(before))
        now = utcnow()
        if row is None:
            row = _override(s, actor, before, now)
        row.status, row.closed_at = status, (now if status == "closed" else None)
        row.revision, row.updated_by, row.updated_at, row.request_id = row.revision + 1, actor.label, now, actor.request_id
        s.flush()
        after = gap_row_dict(row)
        audit(s, actor, "gap.close" if status == "closed" else "gap.reopen", f"gap {gap_id}",
              {"before": _state(before), "after": _state(after)})
        return after
