"""Request and response shapes of the HTTP API (the OpenAPI document at ``/openapi.json`` is built
from these). Shapes are stable: fields may be added, never renamed or removed.

Every error, whatever the route, is an :class:`ErrorResponse`. One module per resource: ``base``
(the vocabulary as types, limits, strict bodies), ``status`` (errors, health), ``gaps``,
``prospects``, ``shortlists``, ``chains``, ``overview``, ``outcomes``, ``partners`` and ``admin``; every shape
is importable from here (``from service import schemas as api; api.ProspectPage``).
"""

from service.schemas.base import (
    Lang, Role, Verdict, ItemStatus, ShortlistStatus, ReasonCode, Stage, MAX_TOP, MAX_OFFSET, MAX_TEXT, MAX_ID,
    MAX_FILTER_VALUE, NO_NUL, check_text, Strict,
)
from service.schemas.status import (
    ErrorField, ErrorBody, ErrorResponse, HealthResponse, ReadyResponse,
)
from service.schemas.gaps import (
    GapOut, GapList, GapCreate, GapEdit, ChainGaps, GapResponse,
)
from service.schemas.prospects import (
    FilterValue, ProspectFilters, StoredFilters, Reasons, ProspectOut, ProspectQuery, ProspectPage, SearchRequest,
    Contribution, GapClosure, Partner, SimilarLanded, Freshness, Explanation, ExplanationResponse, Factor,
    LastShortlisted, WhyNotResponse, SegmentMembership, EnterpriseOut,
)
from service.schemas.shortlists import (
    ShortlistCreate, ReviewRequest, ReviewOut, ShortlistItemOut, ItemCounts, ShortlistSummary, ShortlistDetail,
    ShortlistList, ReviewResponse, ReviewReason, ReviewReasonsResponse, ExclusionOut, ExclusionList,
)
from service.schemas.chains import (
    SegmentOut, ChainSummary, ChainList, ChainDetail, SegmentStatus, SegmentStage, MapSegment, MapLink,
    ChainMapResponse, SegmentFirm, SegmentDetail,
)
from service.schemas.overview import (
    GapSeverity, ShortlistCounts, Funnel, StageCounts, OverviewRow, StaleApproval, StaleShortlist, OverviewResponse,
)
from service.schemas.outcomes import (
    OutcomeCreate, OutcomeOut, OutcomeList,
)
from service.schemas.partners import (
    Relation, SegmentRef, PartnerSegment, PartnerOut, PartnerPage,
)
from service.schemas.admin import (
    MeResponse, VersionInfo, VersionsResponse, ReloadRequest, ReloadResponse,
)

__all__ = [
    "Lang", "Role", "Verdict", "ItemStatus", "ShortlistStatus", "ReasonCode", "Stage", "MAX_TOP", "MAX_OFFSET",
    "MAX_TEXT", "MAX_ID", "MAX_FILTER_VALUE", "NO_NUL", "check_text", "Strict", "ErrorField", "ErrorBody",
    "ErrorResponse", "HealthResponse", "ReadyResponse", "GapOut", "GapList", "GapCreate", "GapEdit", "ChainGaps", "GapResponse",
    "FilterValue", "ProspectFilters",
    "StoredFilters", "Reasons", "ProspectOut", "ProspectQuery", "ProspectPage", "SearchRequest", "Contribution",
    "GapClosure", "Partner", "SimilarLanded", "Freshness", "Explanation", "ExplanationResponse", "Factor",
    "LastShortlisted", "WhyNotResponse", "SegmentMembership", "EnterpriseOut", "ShortlistCreate", "ReviewRequest",
    "ReviewOut", "ShortlistItemOut", "ItemCounts", "ShortlistSummary", "ShortlistDetail", "ShortlistList",
    "ReviewResponse", "ReviewReason", "ReviewReasonsResponse", "ExclusionOut", "ExclusionList", "SegmentOut",
    "ChainSummary", "ChainList", "ChainDetail", "SegmentStatus", "SegmentStage", "MapSegment", "MapLink",
    "ChainMapResponse", "SegmentFirm", "SegmentDetail", "GapSeverity", "ShortlistCounts", "Funnel", "StageCounts",
    "OverviewRow", "StaleApproval", "StaleShortlist", "OverviewResponse", "OutcomeCreate", "OutcomeOut",
    "OutcomeList", "MeResponse", "VersionInfo", "VersionsResponse", "ReloadRequest", "ReloadResponse",
    "Relation", "SegmentRef", "PartnerSegment", "PartnerOut", "PartnerPage",
]
