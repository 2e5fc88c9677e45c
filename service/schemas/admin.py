"""The calling key, published versions and reloads."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

from service.schemas.base import MAX_ID, NO_NUL, Role, Strict


class MeResponse(BaseModel):
    key_id: int
    prefix: str
    name: str = ""
    role: Role
    chains: list[str] = Field(description="chains a chain leader reviews (empty for staff and admin: all chains)")
    permissions: list[str]


class VersionInfo(BaseModel):
    version: str
    created_at: Optional[str] = None
    ranker: Optional[str] = None
    enterprises: Optional[int] = None
    current: bool = Field(description="named by models/matcher/CURRENT")
    loaded: bool = Field(description="serving requests in this worker")


class VersionsResponse(BaseModel):
    current: Optional[str] = None
    loaded: Optional[str] = None
    versions: list[VersionInfo]


class ReloadRequest(Strict):
    version: Optional[str] = Field(None, min_length=1, max_length=MAX_ID, pattern=NO_NUL,
                                   description="make this published version current first (rollback); default: reload CURRENT")


class ReloadResponse(BaseModel):
    loaded: str
    previous: Optional[str] = None
    changed: bool
    seconds: float
