"""Gaps: a chain's shortfalls, most severe first (listed alone, in chains and in shortlists), and
the gaps chain leaders and admins manage in the service (declare, edit, close, reopen)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from pydantic import BaseModel, Field

from matcher.store.repo.gaps import GAP_NOTE_MAX, GAP_PRIORITIES, GAP_STATUSES, GAP_TEXT_MAX
from service.schemas.base import MAX_ID, NO_NUL, Strict

Priority = Literal[GAP_PRIORITIES]
GapStatus = Literal[GAP_STATUSES]


class GapOut(BaseModel):
    gap_id: str
    chain_id: str
    segment_id: Optional[str] = None
    kind: str = Field(description="missing / weak / declared")
    severity: float
    text: str
    title: str
    stage: Optional[str] = None
    strength: Optional[int] = None
    declared: bool = False
    priority: Optional[str] = None
    note: str = ""
    status: GapStatus = Field("open", description="closed gaps leave the gap lists, the maps and the overview")
    origin: Literal["map", "service"] = Field("map", description="map: the published analysis and chain map; "
                                                                 "service: declared in the service")
    created_by: Optional[str] = Field(None, description="who first declared or changed it in the service")
    created_at: Optional[datetime] = None
    updated_by: Optional[str] = Field(None, description="who changed it last in the service")
    updated_at: Optional[datetime] = None
    closed_at: Optional[datetime] = None
    revision: Optional[int] = Field(None, description="changes made in the service")


class GapList(BaseModel):
    version: str
    gaps: list[GapOut]


class GapCreate(Strict):
    """A new gap: a segment of the chain, or a free-text need (exactly one)."""

    segment_id: Optional[str] = Field(None, min_length=1, max_length=MAX_ID, pattern=NO_NUL)
    text: Optional[str] = Field(None, max_length=GAP_TEXT_MAX, description="a free-text need")
    priority: Priority = "medium"
    note: str = Field("", max_length=GAP_NOTE_MAX)


class GapEdit(Strict):
    """What changes (fields left out stay): priority, note, and a free-text gap's text."""

    priority: Optional[Priority] = None
    note: Optional[str] = Field(None, max_length=GAP_NOTE_MAX)
    text: Optional[str] = Field(None, max_length=GAP_TEXT_MAX)


class ChainGaps(BaseModel):
    version: str
    chain_id: str
    can_manage: bool = Field(description="whether this key may declare, edit, close and reopen the chain's gaps")
    segments: list[dict] = Field(description="the chain's segments a gap can be declared on (segment_id, name, name_zh)")
    gaps: list[GapOut] = Field(description="open gaps most severe first, then closed ones")


class GapResponse(BaseModel):
    version: str
    gap: GapOut
    replayed: bool = Field(False, description="true: an Idempotency-Key seen before; the gap it declared then")
