"""The general chain leader's overview: per chain and for the district."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Optional

from pydantic import BaseModel, Field

from service.schemas.shortlists import ItemCounts


class GapSeverity(BaseModel):
    high: int = Field(0, description="severity at least 0.8 (missing segments, high priority)")
    medium: int = Field(0, description="severity 0.5 to 0.8")
    low: int = Field(0, description="severity under 0.5")
    total: int = 0


class ShortlistCounts(BaseModel):
    open: int = 0
    in_review: int = 0
    reviewed: int = 0


class Funnel(BaseModel):
    contacted: int = 0
    visited: int = 0
    negotiating: int = 0
    signed: int = 0
    landed: int = 0


class StageCounts(Funnel):
    declined: int = 0
    lost: int = 0


class OverviewRow(BaseModel):
    chain_id: Optional[str] = Field(None, description="None on the district row")
    name: str
    name_zh: str = ""
    open_gaps: GapSeverity
    shortlists: ShortlistCounts
    items: ItemCounts = Field(description="shortlisted prospects by review status")
    funnel: Funnel = Field(description="approaches that reached each stage (every approach was contacted)")
    current: StageCounts = Field(description="approaches by their latest stage")
    declined: int = Field(description="approaches declined or lost")
    landed_this_quarter: int
    stale_approved: int = Field(description="approved prospects not contacted within 30 days")
    stale_shortlists: int = Field(description="shortlists with unreviewed prospects and no review for 14 days")


class StaleApproval(BaseModel):
    enterprise_id: str
    name: str
    gap_id: str
    chain_id: str
    shortlist_id: int
    approved_at: datetime
    days: int


class StaleShortlist(BaseModel):
    shortlist_id: int
    title: str
    gap_id: str
    chain_id: str
    pending: int
    last_activity: datetime
    days: int


class OverviewResponse(BaseModel):
    version: str
    now: datetime
    quarter_start: dt.date
    stale_approved_days: int
    stale_shortlist_days: int
    chains: list[OverviewRow]
    district: Optional[OverviewRow] = Field(None, description="every chain together (not for a chain leader, who sees "
                                                              "their own chains' rows only)")
    stale_approved: list[StaleApproval] = Field(description="oldest first, at most 100")
    stale_shortlists: list[StaleShortlist] = Field(description="oldest first, at most 100")
