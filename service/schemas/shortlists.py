"""Shortlists, their items and reviews, review reasons and exclusions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from pydantic import BaseModel, Field

from service.schemas.base import (
    MAX_ID, MAX_TEXT, MAX_TOP, NO_NUL, ItemStatus, Lang, ReasonCode, Role, ShortlistStatus, Stage, Strict, Verdict,
)
from service.schemas.gaps import GapOut
from service.schemas.prospects import Explanation, ProspectFilters, StoredFilters


class ShortlistCreate(Strict):
    gap_id: str = Field(min_length=1, max_length=MAX_ID, pattern=NO_NUL)
    top: int = Field(20, ge=1, le=MAX_TOP, description="the gap's current top N become the items")
    title: Optional[str] = Field(None, max_length=200, pattern=NO_NUL)
    filters: ProspectFilters = Field(default_factory=ProspectFilters)


class ReviewRequest(Strict):
    verdict: Verdict
    reason_code: Optional[ReasonCode] = Field(None, description="required when rejecting; see GET /v1/review-reasons")
    comment: str = Field("", max_length=MAX_TEXT, pattern=NO_NUL)
    expected_version: Optional[int] = Field(
        None, ge=0, description="the item version the reviewer saw; if the item changed since, 409 with the current "
                                "state (omit to record the verdict after any earlier one)")


class ReviewOut(BaseModel):
    review_id: int
    item_id: int
    verdict: Verdict
    reason_code: Optional[str] = None
    comment: str = ""
    reviewer: str = Field(description="prefix of the reviewer's key, and its name")
    role: Role
    created_at: datetime
    item_version: int = Field(description="item version after this review")


class ShortlistItemOut(BaseModel):
    item_id: int
    shortlist_id: int
    rank: int
    enterprise_id: str
    name: str
    score: float = Field(description="frozen at creation")
    status: ItemStatus
    reason_code: Optional[str] = None
    comment: str = ""
    reviewed_at: Optional[datetime] = None
    reviewed_by: Optional[str] = None
    version: int = Field(description="increments with every review; send it back as expected_version")
    model_version: str = Field(description="ranker that produced the score")
    data_version: str = Field(description="artifact version the score and explanation came from")
    snapshot_id: str
    list_version: str
    excluded: bool = Field(False, description="currently excluded from the gap's lists (not a chain fit)")
    outreach_stage: Optional[Stage] = Field(
        None, description="the latest outreach outcome recorded for this enterprise and the shortlist's gap; null: none yet")
    outreach_date: Optional[date] = Field(None, description="the date of that outcome")
    explanation: Explanation
    reviews: list[ReviewOut] = []


class ItemCounts(BaseModel):
    pending: int = 0
    approved: int = 0
    rejected: int = 0
    deferred: int = 0


class ShortlistSummary(BaseModel):
    shortlist_id: int
    gap_id: str
    chain_id: str
    title: str
    status: ShortlistStatus
    top: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    data_version: str
    model_version: str
    list_version: str
    counts: ItemCounts
    can_export: bool = Field(False, description="whether the calling key may export it (staff: the shortlists their key created)")


class ShortlistDetail(ShortlistSummary):
    filters: StoredFilters
    gap: Optional[GapOut] = None
    lang: Lang = "en"
    items: list[ShortlistItemOut]


class ShortlistList(BaseModel):
    total: int
    offset: int
    limit: int
    shortlists: list[ShortlistSummary]


class ReviewResponse(BaseModel):
    review: ReviewOut
    item: ShortlistItemOut
    shortlist_status: ShortlistStatus
    replayed: bool = Field(False, description="true when an Idempotency-Key repeated an earlier request")


class ReviewReason(BaseModel):
    code: ReasonCode
    label_en: str
    label_zh: str
    verdicts: list[Verdict] = Field(description="verdicts this reason may accompany")
    excludes: bool = Field(False, description="rejecting with it removes the enterprise from the gap's future lists")


class ReviewReasonsResponse(BaseModel):
    reasons: list[ReviewReason]


class ExclusionOut(BaseModel):
    gap_id: str
    enterprise_id: str
    active: bool
    review_id: Optional[int] = None
    created_at: datetime
    lifted_at: Optional[datetime] = None


class ExclusionList(BaseModel):
    gap_id: str
    exclusions: list[ExclusionOut]
