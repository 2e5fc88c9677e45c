"""Chains, their segments and structure maps (产业链图谱), and a segment's firms and shortlists."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from matcher.domain import SEGMENT_STAGES
from service.schemas.gaps import GapOut
from service.schemas.shortlists import ShortlistSummary


class SegmentOut(BaseModel):
    segment_id: str
    name: str
    name_zh: str = ""
    stage: str
    strength: int = Field(description="local enterprises in the segment")
    status: str = Field(description="missing / weak / ok")
    weak_below: Optional[float] = None


class ChainLeaders(BaseModel):
    """The leaders every chain response carries."""

    leader: str = Field(description="the chain's lead leader: the first of leaders (kept for older clients)")
    leaders: list[str] = Field(description="the chain's leaders (链长), the lead one first")
    leaders_zh: list[str] = Field([], description="their Chinese titles, in the same order (empty when the map has none)")


class ChainSummary(ChainLeaders):
    chain_id: str
    name: str
    name_zh: str = ""
    kind: str
    segments: int
    gaps: int


class ChainList(BaseModel):
    version: str
    region: dict[str, Any]
    general_leader: str = Field("", description="the general chain leader (总链长) over the chain leaders")
    general_leader_zh: str = Field("", description="the general chain leader's Chinese title")
    chains: list[ChainSummary]


class ChainDetail(ChainLeaders):
    version: str
    chain_id: str
    name: str
    name_zh: str = ""
    kind: str
    segments: list[SegmentOut]
    gaps: list[GapOut]


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


class ChainMapResponse(ChainLeaders):
    version: str
    chain_id: str
    name: str
    name_zh: str = ""
    kind: str
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
    shortlists: list[ShortlistSummary] = Field([], description="shortlists of the segment's gaps, newest first")
