"""Request and response shapes of the HTTP API (the OpenAPI document at ``/openapi.json`` is built
from these). Shapes are stable: fields may be added, never renamed or removed.

Every error, whatever the route, is an :class:`ErrorResponse`.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from matcher import domain
from matcher.domain import ITEM_STATUSES, REASON_CODES, ROLES, SEGMENT_STAGES, SHORTLIST_STATUSES, VERDICTS

Lang = Literal["en", "zh"]
# The vocabulary comes from matcher/domain.py; these are its types for requests and responses.
Role = Literal[ROLES]
Verdict = Literal[VERDICTS]
ItemStatus = Literal[ITEM_STATUSES]
ShortlistStatus = Literal[SHORTLIST_STATUSES]
ReasonCode = Literal[REASON_CODES]
Stage = Literal[domain.STAGES]

MAX_TOP = 200  # largest page / shortlist
MAX_OFFSET = 10_000
MAX_TEXT = 2_000  # free-text need, comment, note
MAX_ID = 200  # ids in paths and bodies
MAX_FILTER_VALUE = 200  # one filter value (a country, province or qualification)
NO_NUL = r"^[^\x00]*$"  # stored text: no NUL characters


def check_text(value: str, where: str = "value") -> str:
    """Text that is stored must be valid: no NUL characters, no unpaired surrogates."""
    if "\x00" in value:
        raise _invalid(where, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(where, "is not valid Unicode text") from None
    return value


def _invalid(where: str, reason: str) -> Exception:
    from matcher.store.errors import InvalidInputError

    return InvalidInputError(where, reason)


class Strict(BaseModel):
    """Request bodies: unknown fields are an error (a typo never silently does nothing); text is
    valid Unicode without NUL characters."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _valid_text(cls, value):
        # Stored text must encode as UTF-8 (JSON allows unpaired surrogates; databases do not).
        for text in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            try:
                str(text).encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not valid Unicode text (unpaired surrogate)") from None
        return value


# --- errors ---------------------------------------------------------------------------------

class ErrorField(BaseModel):
    field: str = Field(description="where: 'body.top', 'query.offset', 'path.gap_id', 'header.authorization'")
    reason: str


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable: validation_error, unauthorized, forbidden, not_found, conflict, "
                                  "payload_too_large, not_ready, internal_error, ...")
    message: str
    fields: list[ErrorField] = []
    request_id: str
    current: Optional[dict[str, Any]] = Field(None, description="on a 409: the current state of what was written")


class ErrorResponse(BaseModel):
    error: ErrorBody


# --- health ---------------------------------------------------------------------------------

class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    database: Optional[Literal["ok", "unavailable"]] = Field(None, description="whether the database answers now")
    version: Optional[str] = None
    ranker: Optional[str] = None
    loaded_at: Optional[datetime] = None
    message: str = ""


# --- chains and gaps ------------------------------------------------------------------------

class SegmentOut(BaseModel):
    segment_id: str
    name: str
    name_zh: str = ""
    stage: str
    strength: int = Field(description="local enterprises in the segment")
    status: str = Field(description="missing / weak / ok")
    weak_below: Optional[float] = None


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


class ChainSummary(BaseModel):
    chain_id: str
    name: str
    name_zh: str = ""
    kind: str
    leader: str
    segments: int
    gaps: int


class ChainList(BaseModel):
    version: str
    region: dict[str, Any]
    chains: list[ChainSummary]


class ChainDetail(BaseModel):
    version: str
    chain_id: str
    name: str
    name_zh: str = ""
    kind: str
    leader: str
    segments: list[SegmentOut]
    gaps: list[GapOut]


class GapList(BaseModel):
    version: str
    gaps: list[GapOut]


# --- chain structure map (产业链图谱) --------------------------------------------------------------

SegmentStatus = Literal["strong", "weak", "missing"]
SegmentStage = Literal[SEGMENT_STAGES]


class MapSegment(BaseModel):
    segment_id: str
    name: str
    name_zh: str = ""
    stage: SegmentStage
    strength: int = Field(description="local enterprises assigned to the segment")
    status: SegmentStatus
    weak_below: Optional[float] = Field(None, description="fewer local firms than this: weak")
    supplies: list[str] = Field([], description="segments of the chain this one supplies")
    gaps: list[GapOut] = Field([], description="the segment's open gaps, most severe first")


class MapLink(BaseModel):
    source: str = Field(description="the supplying segment")
    target: str = Field(description="the segment it supplies")


class ChainMapResponse(BaseModel):
    version: str
    chain_id: str
    name: str
    name_zh: str = ""
    kind: str
    leader: str
    stages: list[str] = Field(description="column order, upstream first")
    segments: list[MapSegment] = Field(description="in the chain map's order")
    links: list[MapLink] = Field(description="one per supplies relation")
    other_gaps: list[GapOut] = Field([], description="open free-text gaps of the chain (on no segment)")


class SegmentFirm(BaseModel):
    enterprise_id: str
    name: str
    z: Optional[float] = Field(None, description="how confidently the firm was assigned: its standardised similarity to "
                                                 "the segment (standard deviations above the universe's mean)")
    similarity: Optional[float] = Field(None, description="cosine similarity of profile and segment")
    employees: Optional[int] = None
    revenue_growth: Optional[float] = None
    employee_growth: Optional[float] = None
    growth_score: Optional[float] = None
    qualifications: list[str] = []
    city: Optional[str] = None


class SegmentDetail(BaseModel):
    version: str
    chain_id: str
    segment: MapSegment
    total_firms: int
    firms: list[SegmentFirm] = Field(description="most confidently assigned first")
    shortlists_visible: bool = Field(description="false: this key does not see the chain's shortlists")
    shortlists: list["ShortlistSummary"] = Field([], description="shortlists of the segment's gaps, newest first")


# --- the general chain leader's overview --------------------------------------------------------

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
    items: "ItemCounts" = Field(description="shortlisted prospects by review status")
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


# --- prospects ------------------------------------------------------------------------------

FilterValue = Annotated[str, Field(max_length=MAX_FILTER_VALUE, pattern=NO_NUL)]


class ProspectFilters(Strict):
    """Exact filters, as in the CLI (an unknown value does not pass a filter on that value)."""

    country: list[FilterValue] = Field([], max_length=50, description="any of these countries")
    province: list[FilterValue] = Field([], max_length=50, description="any of these provinces/states")
    min_employees: Optional[int] = Field(None, ge=0, le=10_000_000)
    max_employees: Optional[int] = Field(None, ge=0, le=10_000_000)
    founded_after: Optional[int] = Field(None, ge=1000, le=3000)
    qualification: list[FilterValue] = Field([], max_length=20, description="all of these qualifications")
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


# --- explanations ---------------------------------------------------------------------------

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


# --- shortlists and reviews -----------------------------------------------------------------

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


# --- outcomes -------------------------------------------------------------------------------

class OutcomeCreate(Strict):
    enterprise_id: str = Field(min_length=1, max_length=MAX_ID, pattern=NO_NUL)
    gap_id: str = Field(min_length=1, max_length=MAX_ID, pattern=NO_NUL)
    stage: Stage
    date: dt.date = Field(description="when the stage was reached")
    reason: Optional[str] = Field(None, max_length=MAX_TEXT, pattern=NO_NUL, description="required for declined / lost")
    note: str = Field("", max_length=MAX_TEXT, pattern=NO_NUL)


class OutcomeOut(BaseModel):
    outcome_id: int
    enterprise_id: str
    gap_id: str
    stage: Stage
    previous_stage: Optional[Stage] = None
    date: dt.date
    reason: Optional[str] = None
    note: str = ""
    recorded_by: str
    recorded_at: datetime


class OutcomeList(BaseModel):
    outcomes: list[OutcomeOut]


# --- identity and admin ---------------------------------------------------------------------

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


SegmentDetail.model_rebuild()
OverviewRow.model_rebuild()
OverviewResponse.model_rebuild()
