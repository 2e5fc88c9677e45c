"""Gaps: a chain's shortfalls, most severe first (listed alone, in chains and in shortlists)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


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


class GapList(BaseModel):
    version: str
    gaps: list[GapOut]
