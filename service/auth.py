"""API keys (``Authorization: Bearer <key>``), roles and chain access.

| role | may |
|---|---|
| staff | read everything, create shortlists and export those their key created, record outcomes, read the overview |
| chain_leader | read everything; shortlists of their own chains only: see, create, review, export, lift exclusions; record outcomes and read the overview of their own chains; declare, edit, close and reopen their own chains' gaps |
| general_leader | read every chain: shortlists, exports, outcomes, the whole overview; with chains given, also what a chain leader does on those |
| admin | everything, including every chain's gaps, reloads and the audit log |

A checked key is trusted for ``service_auth_cache_s`` seconds (so a revocation takes effect within
that time); only its sha256 is kept in memory, never the key. Each request of a key counts against
its quota (``service/quotas.py``; admin keys have none).
"""

from __future__ import annotations

import threading
import time

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from matcher.store import repo
from matcher.store.db import Store
from matcher.domain import CHAIN_ROLES
from matcher.store.repo import Actor
from service.errors import AuthenticationError, PermissionDeniedError

bearer = HTTPBearer(auto_error=False, description="an API key from 'matcher keys create'")

# What a chain leader does on their own chains (``check_own_chain``); a general chain leader does
# it on the chains their key names, and nothing of it without any.
LEADER_WRITES = ["shortlists:create", "shortlists:review", "exclusions:lift", "outcomes:write", "gaps:write"]
PERMISSIONS = {
    "staff": ["prospects:read", "shortlists:read", "shortlists:create", "shortlists:export", "outcomes:read", "outcomes:write",
              "overview:read"],
    "chain_leader": ["prospects:read", "shortlists:read", "shortlists:export", "outcomes:read", "overview:read",
                     *LEADER_WRITES],
    "general_leader": ["prospects:read", "shortlists:read", "shortlists:export", "outcomes:read", "overview:read"],
    "admin": ["prospects:read", "shortlists:read", "shortlists:create", "shortlists:review", "shortlists:export",
              "exclusions:lift", "outcomes:read", "outcomes:write", "overview:read", "gaps:write", "admin"],
}


def permissions(actor: Actor) -> list[str]:
    """What the caller's role allows; a general chain leader given chains leads those as well."""
    granted = PERMISSIONS.get(actor.role, [])
    if actor.role == "general_leader" and actor.chains:
        granted = granted + [p for p in LEADER_WRITES if p not in granted]
    return list(granted)


class KeyCache:
    def __init__(self, store: Store, ttl_s: float):
        self.store, self.ttl_s = store, ttl_s
        self._cache: dict[str, tuple[Actor, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> Actor | None:
        """The actor of a key checked within the last ``ttl_s`` seconds, or None."""
        with self._lock:
            hit = self._cache.get(repo.hash_key(key))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def actor(self, key: str) -> Actor | None:
        digest = repo.hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        actor = repo.authenticate(self.store, key)
        if actor is not None and self.ttl_s > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (actor, now + self.ttl_s)
        return actor


async def current_actor(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Actor:
    """The caller, from a valid key (401 otherwise). Async: a key checked recently costs no
    thread hop; otherwise the database lookup runs in the thread pool."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>' (keys come from 'matcher keys create')")
    keys = request.app.state.keys
    actor = keys.cached(credentials.credentials) or await run_in_threadpool(keys.actor, credentials.credentials)
    if actor is None:
        raise AuthenticationError("unknown or revoked API key")
    rid = getattr(request.state, "request_id", None)
    actor = Actor(key_id=actor.key_id, prefix=actor.prefix, role=actor.role, chains=actor.chains, name=actor.name, request_id=rid)
    request.state.actor = actor
    quotas = getattr(request.app.state, "quotas", None)
    if quotas is not None:
        await quotas.check(actor)  # 429 with Retry-After over the key's quota (service/quotas.py)
    return actor


def need(permission: str):
    """Dependency: the caller, who must hold ``permission`` (403 otherwise)."""
    async def check(actor: Actor = Depends(current_actor)) -> Actor:
        if permission not in permissions(actor):
            raise PermissionDeniedError(f"role '{actor.role}' may not do this ({permission} is needed)")
        return actor

    return check


def check_chain(actor: Actor, chain_id: str, what: str) -> None:
    """A chain leader reads their own chains' shortlists only (a general chain leader reads all)."""
    if actor.role == "chain_leader" and chain_id not in actor.chains:
        raise PermissionDeniedError(f"{what} belongs to chain '{chain_id}'; this key leads {', '.join(actor.chains)}")


def check_own_chain(actor: Actor, chain_id: str, what: str) -> None:
    """Chain leaders and a general chain leader act (create, review, lift, record) on the chains
    their key names only."""
    if actor.role in CHAIN_ROLES and chain_id not in actor.chains:
        leads = ", ".join(actor.chains) if actor.chains else "no chain"
        raise PermissionDeniedError(f"{what} belongs to chain '{chain_id}'; this key leads {leads}")


def check_export(actor: Actor, shortlist: dict) -> None:
    """Staff export the shortlists their key created (they put them forward to the chain leaders);
    chain leaders, the general chain leader and admins export every shortlist they see."""
    if actor.role == "staff" and shortlist["created_by_key_id"] != actor.key_id:
        raise PermissionDeniedError(f"shortlist {shortlist['shortlist_id']} was created by {shortlist['created_by']}; "
                                    "staff export the shortlists their own key created")


def visible_chains(actor: Actor) -> tuple[str, ...] | None:
    """Chains whose shortlists, exclusions and overview rows the caller sees (None: all)."""
    return actor.chains if actor.role == "chain_leader" else None
