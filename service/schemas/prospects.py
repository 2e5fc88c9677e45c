"""Prospect filters, ranked pages, free-text search, explanations, why-not reports and
enterprises."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field

from matcher.filters import FIRST_YEAR, LAST_YEAR, MAX_EMPLOYEES, MAX_FILTER_VALUE, MAX_PLACES, MAX_QUALIFICATIONS
from service.schemas.base import MAX_OFFSET, MAX_TEXT, MAX_TOP, NO_NUL, Lang, Strict

FilterValue = Annotated[str, Field(max_length=MAX_FILTER_VALUE, pattern=NO_NUL)]


class ProspectFilters(Strict):
    """Exact filters, as in the CLI (an unknown value does not pass a filter on that value)."""

    country: list[FilterValue] = Field([], max_length=MAX_PLACES, description="any of these countries")
    province: list[FilterValue] = Field([], max_length=MAX_PLACES, description="any of these provinces/states")
    min_employees: Optional[int] = Field(None, ge=0, le=MAX_EMPLOYEES)
    max_employees: Optional[int] = Field(None, ge=0, le=MAX_EMPLOYEES)
    founded_after: Optional[int] = Field(None, ge=FIRST_YEAR, le=LAST_YEAR)
    qualification: list[FilterValue] = Field([], max_length=MAX_QUALIFICATIONS, description="all of these qualifications")
    include_local: bool = Field(False, strict=True)
    include_closed: bool = Field(False, strict=True)


class StoredFilters(BaseModel):
    """The filters a shortlist was made with, as stored (older ones may predate today's limits)."""

    country: list[str] = []
    province: list[str] = []
    min_employees: Optional[int] = None
    max_employees: Optional[int] = None
    founded_after: Optional[int] = None
    qualification: list[str] = []
    include_local: bool = False
    include_closed: bool = False


class Reasons(BaseModel):
    positive: list[str] = []
    negative: list[str] = []


class ProspectOut(BaseModel):
    enterprise_id: str
    name: str
    rank: int
    score: float = Field(description="ranker score in [0, 1]")
    percentile: float
    growth_score: Optional[float] = None
    fit_score: Optional[float] = None
    regional_score: Optional[float] = None
    ranker: str
    retrieval_score: float
    similarity: float
    lexical_score: Optional[float] = None
    dense_rank: Optional[int] = None
    lexical_rank: Optional[int] = None
    is_local: Optional[bool] = None
    city: Optional[str] = None
    province: Optional[str] = None
    country: Optional[str] = None
    employees: Optional[int] = None
    founded_year: Optional[int] = None
    status: Optional[str] = None
    qualifications: list[str] = []
    reasons: Reasons = Field(default_factory=Reasons, description="top reasons for and against, from the explanation")


class ProspectQuery(BaseModel):
    gap_id: Optional[str] = None
    text: str
    chain_id: Optional[str] = None
    segment_id: Optional[str] = None


class ProspectPage(BaseModel):
    version: str = Field(description="artifact (data) version that served this list")
    list_version: str = Field(description="content hash of the full ranked list (logged with its feature vectors)")
    ranker: str
    query: ProspectQuery
    filters: ProspectFilters
    lang: Lang = "en"
    total: int = Field(description="ranked candidates in the list")
    offset: int
    top: int
    excluded: int = Field(0, description="enterprises left out because a review rejected them as not a chain fit")
    results: list[ProspectOut]


class SearchRequest(Strict):
    text: str = Field(min_length=1, max_length=MAX_TEXT, pattern=NO_NUL, description="free-text description of the need")
    top: int = Field(20, ge=1, le=MAX_TOP)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    lang: Lang = "en"
    filters: ProspectFilters = Field(default_factory=ProspectFilters)


class Contribution(BaseModel):
    feature: str
    value: Optional[float] = None
    contribution: float
    text: str
    source: dict[str, Any] = Field(description="{kind: observed, column, updated_at} or {kind: derived}")


class GapClosure(BaseModel):
    segment_id: str
    strength_before: int
    strength_after: int
    status_before: str
    status_after: str


class Partner(BaseModel):
    enterprise_id: str
    name: str
    segment_id: Optional[str] = None
    similarity: float


class SimilarLanded(BaseModel):
    enterprise_id: str
    name: str
    landed_for: Optional[str] = None
    similarity: float


class Freshness(BaseModel):
    source_updated_at: str
    snapshot_id: str
    version: str


class Explanation(BaseModel):
    enterprise_id: str
    name: str
    gap_id: Optional[str] = None
    rank: int
    score: float
    ranker: str
    lang: Lang
    output_space: str
    base_value: float
    model_output: float
    contributions: list[Contribution] = Field(description="base_value + sum(contribution) == model_output")
    reasons: Reasons
    facts: list[str] = []
    gap_closure: Optional[GapClosure] = None
    evidence: list[str] = []
    local_partners: list[Partner] = []
    similar_landed: list[SimilarLanded] = []
    risk_flags: list[str] = []
    eligible_policies: list[str] = []
    freshness: Freshness


class ExplanationResponse(BaseModel):
    version: str
    list_version: str
    explanation: Explanation


class Factor(BaseModel):
    factor: str
    a_contribution: float
    b_contribution: float
    difference: float
    same_value: Optional[bool] = None
    a_value: Optional[float] = None
    b_value: Optional[float] = None
    a_text: Optional[str] = None
    b_text: Optional[str] = None


class LastShortlisted(BaseModel):
    enterprise_id: str
    name: str
    rank: int
    score: float


class WhyNotResponse(BaseModel):
    version: str
    gap_id: str
    enterprise_id: str
    name: str
    ranker: str
    shortlist_size: int
    similarity: float
    excluded_by: list[str] = []
    retrieved: bool
    rank: Optional[int] = None
    candidates_ranked: int
    retrieval: Optional[str] = None
    score: Optional[float] = None
    last_shortlisted: Optional[LastShortlisted] = None
    holding_it_back: list[Factor] = []
    in_its_favour: list[Factor] = []
    interactions: Optional[float] = None


class SegmentMembership(BaseModel):
    chain_id: str
    segment_id: str
    similarity: Optional[float] = None


class EnterpriseOut(BaseModel):
    version: str
    enterprise_id: str
    name: str
    description: str
    tags: list[str] = []
    industry_code: Optional[str] = None
    city: Optional[str] = None
    province: Optional[str] = None
    country: Optional[str] = None
    lat: Optional[float] = None
    lon: Optional[float] = None
    founded_year: Optional[int] = None
    employees: Optional[int] = None
    registered_capital: Optional[float] = None
    revenue: Optional[float] = None
    revenue_growth: Optional[float] = None
    employee_growth: Optional[float] = None
    patents: Optional[int] = None
    rd_intensity: Optional[float] = None
    last_funding_date: Optional[str] = None
    qualifications: list[str] = []
    risk_flags: list[str] = []
    status: Optional[str] = None
    status_class: Optional[str] = None
    is_local: Optional[bool] = None
    updated_at: Optional[str] = None
    segments: list[SegmentMembership] = Field([], description="segments a local enterprise belongs to")
