"""API keys: created with a role (and chains), stored as a sha256 only, revoked by id or prefix."""

from __future__ import annotations

import hashlib
import secrets
from typing import Iterable

import sqlalchemy as sa

from matcher.domain import CHAIN_ROLES, ROLES
from matcher.errors import UnknownEntityError
from matcher.store.db import Store
from matcher.store.errors import InvalidInputError
from matcher.store.models import ApiKey, utcnow
from matcher.store.repo.audit import CLI_ACTOR, Actor, audit

KEY_PREFIX = "cmk_"
PREFIX_LENGTH = 12  # "cmk_" + 8 characters: enough to tell keys apart, useless to guess one


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


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
                     created_at=utcnow())
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
            row.revoked_at = utcnow()
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
