"""Administration: published versions, reloads and rollbacks, the audit log."""

from __future__ import annotations

import json
from datetime import timezone
from typing import Annotated, Optional

from fastapi import APIRouter, Body, Depends, Query, Request

from matcher import artifacts
from matcher.errors import UnknownEntityError
from matcher.store import repo
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import need
from service.routes.common import ERRORS, PREFIX, WRITE_ERRORS, OffsetQuery, svc

router = APIRouter(prefix=PREFIX, responses=ERRORS)


@router.get("/admin/versions", response_model=api.VersionsResponse, summary="Published artifact versions")
def versions(request: Request, actor: Actor = Depends(need("admin"))):
    state = svc(request)
    directory = state.settings.artifacts_dir
    current = state.holder.published()
    loaded = state.holder.current.version if state.holder.current else None
    out = []
    for version in artifacts.list_versions(directory):
        try:
            manifest = json.loads((directory / version / artifacts.MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = {}
        out.append({"version": version, "created_at": manifest.get("created_at"),
                    "ranker": (manifest.get("ranker") or {}).get("kind", "cold-start"),
                    "enterprises": (manifest.get("counts") or {}).get("enterprises"),
                    "current": version == current, "loaded": version == loaded})
    return {"current": current, "loaded": loaded, "versions": out}


@router.post("/admin/reload", response_model=api.ReloadResponse, responses=WRITE_ERRORS,
             summary="Load CURRENT (or roll back to a version) without a restart")
def reload(request: Request, body: Annotated[Optional[api.ReloadRequest], Body()] = None, actor: Actor = Depends(need("admin"))):
    state = svc(request)
    version = body.version if body else None
    if version is not None and version not in artifacts.list_versions(state.settings.artifacts_dir):
        raise UnknownEntityError(f"version '{version}' is not published; GET /v1/admin/versions lists them")
    loaded, previous, changed, seconds = state.holder.reload(version)
    with state.store.write() as session:
        repo.audit(session, actor, "artifact.reload", loaded.version, {"previous": previous, "changed": changed})
    return {"loaded": loaded.version, "previous": previous, "changed": changed, "seconds": round(seconds, 3)}


@router.get("/admin/audit", response_model=list[dict], summary="The audit log, newest first")
def audit_log(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: OffsetQuery = 0,
              actor: Actor = Depends(need("admin"))):
    rows = repo.list_audit(svc(request).store, limit, offset)
    return [{**r, "at": r["at"].astimezone(timezone.utc).isoformat()} for r in rows]
