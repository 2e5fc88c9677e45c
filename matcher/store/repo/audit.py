"""Who acts (:class:`Actor`: an API key's holder, or the command line) and the audit log every
write adds to in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from matcher.store.db import Store
from matcher.store.models import AuditEntry, utcnow


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


def audit(session: Session, actor: Actor, action: str, target: str = "", detail: dict | None = None) -> None:
    session.add(AuditEntry(at=utcnow(), key_id=actor.key_id, key_prefix=actor.prefix, role=actor.role, action=action,
                           target=target[:400], request_id=actor.request_id, detail=detail))


def list_audit(store: Store, limit: int = 100, offset: int = 0) -> list[dict]:
    with store.read() as s:
        rows = s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
        return [_audit_dict(r) for r in rows]


def _audit_dict(r: AuditEntry) -> dict:
    return {"id": r.id, "at": r.at, "key_id": r.key_id, "key_prefix": r.key_prefix, "role": r.role, "action": r.action,
            "target": r.target, "request_id": r.request_id, "detail": r.detail}
