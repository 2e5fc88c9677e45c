"""Partners for a local firm: outside firms of the segments directly upstream (suppliers) and
downstream (customers) of its own, ranked and explained as prospects."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

from service.schemas.base import Lang
from service.schemas.prospects import Explanation, ProspectFilters, ProspectOut

Relation = Literal["supplier", "customer"]


class SegmentRef(BaseModel):
    chain_id: str
    segment_id: str
    name: str
    name_zh: str = ""


class PartnerSegment(BaseModel):
    chain_id: str
    segment_id: str
    name: str
    name_zh: str = ""
    relation: Relation = Field(description="supplier: the segment supplies the firm's; customer: the firm's supplies it")
    via: str = Field(description="the firm's own segment it is next to")


class PartnerOut(ProspectOut):
    relation: Relation
    partner_chain_id: str
    partner_segment_id: str = Field(description="the neighbouring segment the firm scored best in (its score and reasons)")
    partner_segments: list[str] = Field([], description="every neighbouring segment it was found in")
    via: str
    firm_similarity: float = Field(description="cosine similarity of its profile to the local firm's")
    explanation: Optional[Explanation] = Field(None, description="the full explanation, with explain=true")


class PartnerPage(BaseModel):
    version: str
    enterprise_id: str
    name: str
    segments: list[str] = Field(description="the local firm's own segments")
    firm_segments: list[SegmentRef] = Field([], description="the same segments with their chains and names")
    neighbours: list[PartnerSegment] = Field(description="the segments upstream and downstream of them")
    filters: ProspectFilters
    lang: Lang = "en"
    total: int = Field(description="partners found")
    offset: int
    top: int
    results: list[PartnerOut]
