"""Gaps managed in the service: a chain's gaps (open and closed), declared, edited, closed and
reopened by the chain's leaders and admins; and how every worker picks the changes up.

The stored rows (``matcher/store/repo/gaps.py``) are applied over the published gap list of the
version a worker serves (:meth:`matcher.catalog.Catalog.use_gap_rows`). Every ``/v1`` request
passes :func:`sync_gaps` first: at most every ``service_gap_poll_s`` it reads the ``gaps`` counter
(one row) and, when it moved, the rows; the worker that made a change applies it at once. So a
gap declared on one worker is listed and ranked on every worker within that time, without a
rebuild; a free-text gap's text is embedded when the gap is first ranked.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated

from typing import Optional

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool

from matcher.domain import CHAIN_ROLES
from matcher.errors import UnknownEntityError
from matcher.store import repo
from matcher.store.errors import ConflictError, InvalidInputError
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import check_own_chain, need, permissions
from service.errors import database_unavailable
from service.holder import Loaded
from service.routes.common import ERRORS, PREFIX, WRITE_ERRORS, svc
from service.state import ServiceState

log = logging.getLogger("service.gaps")
router = APIRouter(prefix=PREFIX, responses=ERRORS)
ChainId = Annotated[str, Path(max_length=api.MAX_ID)]
GapId = Annotated[str, Path(max_length=api.MAX_ID)]


class GapSync:
    """This worker's copy of the stored gap rows, re-read when their revision moves."""

    def __init__(self, poll_s: float):
        self.poll_s = poll_s
        self.revision = -1
        self.rows: list[dict] = []
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def due(self) -> bool:
        return time.monotonic() - self._checked >= self.poll_s

    def refresh(self, state: ServiceState, force: bool = False) -> None:
        """Re-read the rows if their revision moved (the database down: keep what we have)."""
        with self._lock:
            if not force and not self.due():
                return
            try:
                if force or repo.gap_revision(state.store) != self.revision:
                    self.revision, self.rows = repo.gap_rows(state.store)
            except Exception as exc:  # noqa: BLE001 - ranking and lists go on with the gaps known so far
                if not database_unavailable(exc):
                    raise
                log.warning("gaps not re-read (database unavailable): %s", str(exc).splitlines()[0])
            self._checked = time.monotonic()

    def apply(self, loaded: Loaded) -> None:
        """Apply the rows to ``loaded``'s catalog if it has older ones; cached lists of gaps that
        changed are dropped (ranked again on next request)."""
        catalog = loaded.catalog
        if catalog.gap_revision == self.revision:
            return
        before = {g["gap_id"]: g for g in catalog.listed_gaps()}
        catalog.use_gap_rows(self.rows, self.revision)
        after = {g["gap_id"]: g for g in catalog.listed_gaps()}
        for gap_id in set(before) | set(after):
            old, new = before.get(gap_id), after.get(gap_id)
            if old is None or new is None or (old["text"], old.get("kind"), old.get("severity")) != \
                    (new["text"], new.get("kind"), new.get("severity")):
                loaded.forget_gap(gap_id)


def gap_sync(request: Request) -> GapSync:
    sync = getattr(request.app.state, "gap_sync", None)
    if sync is None:
        sync = request.app.state.gap_sync = GapSync(svc(request).settings.service_gap_poll_s)
    return sync


async def sync_gaps(request: Request) -> None:
    """Router dependency of every ``/v1`` route: the served version knows the stored gaps.
    Costs nothing between polls (no thread hop); a poll reads one counter row."""
    state = svc(request)
    loaded = state.holder.current
    if loaded is None:
        return
    sync = gap_sync(request)
    if sync.due():
        await run_in_threadpool(sync.refresh, state)
    sync.apply(loaded)


def _after_write(request: Request, loaded: Loaded, gap_id: str) -> dict:
    """This worker applies its own change at once and answers with the gap as now listed."""
    sync = gap_sync(request)
    sync.refresh(svc(request), force=True)
    sync.apply(loaded)
    return {"version": loaded.version, "gap": loaded.catalog.gap_entry(gap_id)}


def _chain_gap(loaded: Loaded, chain_id: str, gap_id: str) -> dict | None:
    """The served gap ``gap_id`` of ``chain_id`` a change applies to (None when it is not one:
    404 from the repository unless a row exists). A gap of another chain is 404 here."""
    if repo.chain_of_gap(gap_id) != chain_id:
        raise UnknownEntityError(f"gap '{gap_id}' is not a gap of chain '{chain_id}'; GET /v1/chains/{chain_id}/gaps lists them")
    return loaded.catalog.managed_base(gap_id)


@router.get("/chains/{chain_id}/gaps", response_model=api.ChainGaps, summary="A chain's gaps: open (most severe first), then closed")
def chain_gaps(request: Request, chain_id: ChainId, actor: Actor = Depends(need("prospects:read"))):
    state = svc(request)
    loaded = state.loaded()
    chain = loaded.catalog.chain_map.chain(chain_id)
    open_gaps = [g for g in loaded.catalog.listed_gaps() if g["chain_id"] == chain.id]
    known = {g["gap_id"] for g in open_gaps}
    closed = []
    for row in gap_sync(request).rows:
        if row["chain_id"] == chain.id and row["status"] == "closed" and row["gap_id"] not in known:
            try:
                closed.append(loaded.catalog.gap_entry(row["gap_id"]))
            except UnknownEntityError:  # a row of a segment this version's map lacks
                continue
    can_manage = "gaps:write" in permissions(actor) and (actor.role not in CHAIN_ROLES or chain.id in actor.chains)
    segments = [{"segment_id": s.id, "name": s.name, "name_zh": s.name_zh} for s in chain.segments]
    return {"version": loaded.version, "chain_id": chain.id, "can_manage": can_manage, "segments": segments,
            "gaps": open_gaps + closed}


@router.post("/chains/{chain_id}/gaps", response_model=api.GapResponse, status_code=201, responses=WRITE_ERRORS,
             summary="Declare a gap: a segment of the chain, or a free-text need")
def declare_gap(request: Request, chain_id: ChainId, body: api.GapCreate,
                idempotency_key: Annotated[Optional[str], Header(alias="Idempotency-Key", max_length=200,
                                                                 description="repeat a declaration safely: the same key "
                                                                             "declares one gap; keys are per API key; "
                                                                             "reused with another declaration: 422")] = None,
                actor: Actor = Depends(need("gaps:write"))):
    state = svc(request)
    loaded = state.loaded()
    chain = loaded.catalog.chain_map.chain(chain_id)
    check_own_chain(actor, chain.id, f"chain '{chain.id}'")
    if (body.segment_id is None) == (body.text is None):
        raise InvalidInputError("body.segment_id", "give exactly one of a segment (segment_id) or a free-text need (text)")
    if body.segment_id is not None:
        if body.segment_id not in {s.id for s in chain.segments}:
            raise InvalidInputError("body.segment_id", f"'{body.segment_id}' is not a segment of chain '{chain.id}'; "
                                                       f"GET /v1/chains/{chain.id}/map lists them")
        gap_id = f"{chain.id}.{body.segment_id}"
        current = next((g for g in loaded.catalog.listed_gaps() if g["gap_id"] == gap_id), None)
        if current is not None and repo.get_gap_row(state.store, gap_id) is None:
            raise ConflictError(f"segment '{body.segment_id}' is already an open gap ({gap_id}, {current['kind']}); edit it "
                                f"with PATCH /v1/chains/{chain.id}/gaps/{gap_id}",
                                current=api.GapOut.model_validate(current).model_dump(mode="json"))
    row = repo.declare_gap(state.store, actor, chain.id, segment_id=body.segment_id, text=body.text, priority=body.priority,
                           note=body.note, taken=loaded.catalog.known_gap_ids(), idempotency_key=idempotency_key)
    return {**_after_write(request, loaded, row["gap_id"]), "replayed": row["replayed"]}


@router.patch("/chains/{chain_id}/gaps/{gap_id}", response_model=api.GapResponse, responses=WRITE_ERRORS,
              summary="Edit a gap's priority, note or (a free-text gap's) text")
def edit_gap(request: Request, chain_id: ChainId, gap_id: GapId, body: api.GapEdit, actor: Actor = Depends(need("gaps:write"))):
    state = svc(request)
    loaded = state.loaded()
    check_own_chain(actor, loaded.catalog.chain_map.chain(chain_id).id, f"gap '{gap_id}'")
    base = _chain_gap(loaded, chain_id, gap_id)
    repo.edit_gap(state.store, actor, gap_id, base=base, priority=body.priority, note=body.note, text=body.text)
    return _after_write(request, loaded, gap_id)


def _set_status(request: Request, chain_id: str, gap_id: str, status: str, actor: Actor) -> dict:
    state = svc(request)
    loaded = state.loaded()
    check_own_chain(actor, loaded.catalog.chain_map.chain(chain_id).id, f"gap '{gap_id}'")
    base = _chain_gap(loaded, chain_id, gap_id)
    repo.set_gap_status(state.store, actor, gap_id, status, base=base)
    return _after_write(request, loaded, gap_id)


@router.post("/chains/{chain_id}/gaps/{gap_id}/close", response_model=api.GapResponse, responses=WRITE_ERRORS,
             summary="Close a gap (it leaves the gap lists; closing a closed gap is 409 with its state)")
def close_gap(request: Request, chain_id: ChainId, gap_id: GapId, actor: Actor = Depends(need("gaps:write"))):
    return _set_status(request, chain_id, gap_id, "closed", actor)


@router.post("/chains/{chain_id}/gaps/{gap_id}/reopen", response_model=api.GapResponse, responses=WRITE_ERRORS,
             summary="Reopen a closed gap (reopening an open gap is 409 with its state)")
def reopen_gap(request: Request, chain_id: ChainId, gap_id: GapId, actor: Actor = Depends(need("gaps:write"))):
    return _set_status(request, chain_id, gap_id, "open", actor)
