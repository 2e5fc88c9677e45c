"""Chain maps: the region (with its general chain leader and policies), its chains (their leaders,
segments from upstream to downstream with their ``supplies`` links, and declared gaps), read from a
YAML file such as ``data/chains/yangpu.yaml``. The analysis of local strength is
:mod:`matcher.chains`.

A chain names one leader (``leader: ...``) or several (``leaders: [...]``, the lead one first), each
optionally in Chinese (``leader_zh`` / ``leaders_zh``, one name per leader in the same order); the
region may name the general chain leader over them (``general_leader`` / ``general_leader_zh``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from matcher.domain import SEGMENT_STAGES
from matcher.errors import UnknownEntityError
from matcher.yaml_config import load_yaml_model

PRIORITY_SEVERITY = {"high": 0.9, "medium": 0.6, "low": 0.3}
INDUSTRY_CODE = re.compile(r"[A-T](\d{2}|\d{3}|\d{4})?")
# A leader's name or title: not blank.
Leader = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    name_zh: str = ""
    requires_qualifications: list[str] = []
    chains: list[str] = []


class Region(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    name_zh: str = ""
    city: str
    province: str
    country: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # The general chain leader (总链长) over the chain leaders: in Yangpu the District Mayor.
    general_leader: str = ""
    general_leader_zh: str = ""
    metro_area: list[str] = []
    nearby_provinces: list[str] = []
    policies: list[Policy] = []


class Segment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    name_zh: str = ""
    stage: Literal[SEGMENT_STAGES]
    description: str = Field(min_length=20)
    keywords: list[str] = []
    # Chinese text, written the way Chinese firms describe their business in 经营范围 / 主营业务:
    # what Chinese profiles are matched against.
    description_zh: str = ""
    keywords_zh: list[str] = []
    # GB/T 4754-2017 codes typical of the segment, any level ("C39", "C3971", "I65"); a firm's
    # industry code matches by prefix.
    industry_codes: list[str] = []
    supplies: list[str] = []

    @field_validator("industry_codes")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        bad = [c for c in codes if not INDUSTRY_CODE.fullmatch(c)]
        if bad:
            raise ValueError(f"industry codes {bad} are not GB/T 4754 codes (a letter A-T and 0, 2, 3 or 4 digits, e.g. C39, I6513)")
        return codes

    @property
    def text(self) -> str:
        """The text a segment is matched by (embedded and lexically searched)."""
        keywords = f" Keywords: {', '.join(self.keywords)}." if self.keywords else ""
        return f"{self.name}. {self.description.strip()}{keywords}"

    @property
    def text_zh(self) -> str:
        """The Chinese text a segment is matched by ("" when the map has none)."""
        if not self.description_zh:
            return ""
        keywords = f"关键词：{'、'.join(self.keywords_zh)}。" if self.keywords_zh else ""
        return f"{self.name_zh or self.name}。{self.description_zh.strip()}{keywords}"


class DeclaredGap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    segment: str | None = None
    text: str | None = None
    text_zh: str | None = None  # the Chinese wording of a free-text gap
    priority: Literal["high", "medium", "low"] = "medium"
    note: str = ""

    @model_validator(mode="after")
    def _segment_or_text(self) -> "DeclaredGap":
        if (self.segment is None) == (self.text is None):
            raise ValueError("give exactly one of 'segment' or 'text'")
        return self


class Chain(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    name_zh: str = ""
    kind: Literal["pillar", "emerging"]
    # The chain's leaders (链长), first the lead one: ``leaders: [..]``, or ``leader:`` for one.
    # After validation ``leaders`` holds them all and ``leader`` the first.
    leaders: list[Leader] = []
    leaders_zh: list[Leader] = []
    leader: Leader | None = None
    leader_zh: Leader | None = None
    segments: list[Segment] = Field(min_length=1)
    gaps: list[DeclaredGap] = []

    @model_validator(mode="after")
    def _leaders(self) -> "Chain":
        for many, one in (("leaders", "leader"), ("leaders_zh", "leader_zh")):
            names, name = getattr(self, many), getattr(self, one)
            if name is not None and names and names[0] != name:
                raise ValueError(f"chain '{self.id}': '{one}' ({name}) is not the first of '{many}'; give '{one}' for one "
                                 f"leader or '{many}' for several, not both")
            if name is not None and not names:
                setattr(self, many, [name])
            names = getattr(self, many)
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"chain '{self.id}': '{many}' names {dup} twice")
            setattr(self, one, names[0] if names else None)
        if not self.leaders:
            raise ValueError(f"chain '{self.id}' has no leader: give 'leaders' (a list) or 'leader' (one)")
        if self.leaders_zh and len(self.leaders_zh) != len(self.leaders):
            raise ValueError(f"chain '{self.id}': 'leaders_zh' has {len(self.leaders_zh)} names for {len(self.leaders)} "
                             "leaders; give one Chinese name per leader, in the same order")
        return self

    @model_validator(mode="after")
    def _references(self) -> "Chain":
        ids = [s.id for s in self.segments]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate segment ids {dup}")
        for segment in self.segments:
            unknown = sorted(set(segment.supplies) - set(ids))
            if unknown:
                raise ValueError(f"segment '{segment.id}' supplies unknown segments {unknown}")
        for gap in self.gaps:
            if gap.segment is not None and gap.segment not in ids:
                raise ValueError(f"declared gap '{gap.id}' names unknown segment '{gap.segment}'")
        return self


class ChainMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: Region
    chains: list[Chain] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "ChainMap":
        for what, ids in (
            ("chain", [c.id for c in self.chains]),
            ("segment", [s.id for c in self.chains for s in c.segments]),
            ("declared gap", [g.id for c in self.chains for g in c.gaps]),
        ):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"duplicate {what} ids {dup}")
        return self

    def chain(self, chain_id: str) -> Chain:
        for chain in self.chains:
            if chain.id == chain_id:
                return chain
        raise UnknownEntityError(
            f"chain '{chain_id}' not found; known chains: {', '.join(c.id for c in self.chains)}"
        )

    def segments(self) -> list[tuple[Chain, Segment]]:
        return [(c, s) for c in self.chains for s in c.segments]


def load_chain_map(path: str | Path) -> ChainMap:
    """Read and validate a chain map YAML; errors name the file and the offending key."""
    return load_yaml_model(path, ChainMap, "chain map")
