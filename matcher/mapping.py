"""Source mappings: turn any CSV / XLSX / Parquet / JSONL export into the canonical enterprise columns.

A mapping is a small YAML file (see ``data/mappings/``)::

    columns:                      # canonical column -> how to get it
      enterprise_id: company_id            # a source column
      description: {concat: [short_description, long_description]}
      tags: {column: keywords, list: ";"}  # a delimited list ("python" / "json" literals too)
      country: {column: 所属省份, parse: country}           # 上海市 -> CN, 德国 -> DE
      founded_year: {column: 成立日期, parse: year}          # value parsers, see matcher/parsers.py
      registered_capital: {column: 注册资本, parse: money}   # -> CNY, + registered_capital_currency
      employees: {column: 参保人数, parse: count}            # -, 未公开, 暂无 stay missing
      industry_code: {coalesce: [国标行业小类, 国标行业大类], parse: industry_code}
    extra:                        # carried into the snapshot, never indexed or embedded
      yc_tags: {column: tags, list: python}
    is_local: {column: district, in: [Yangpu, 杨浦区]}   # or a canonical ``is_local`` column
    updated_at_from_filename: '(\\d{4}-\\d{2}-\\d{2})'
    status_map: {Public: listed}
    encoding: gb18030             # CSV encoding (detected when omitted)
    header_row: 2                 # 1-based line of the header (a title row above it is skipped)
    sheet: 企业列表                # workbook sheet (the first when omitted; --sheet overrides)
    currency_rates: {USD: 7.1}    # CNY per unit, on top of matcher.parsers.DEFAULT_CURRENCY_RATES

:func:`matcher.mapping_apply.apply_mapping` applies a mapping to a source frame. Without ``parse``
values are kept as the source gives them; :mod:`matcher.validation` converts and checks types. A
value a parser cannot read becomes a :class:`matcher.parsers.ParseFailure`, which validation
quarantines with its reason. Value parsers: :mod:`matcher.parsers`, :mod:`matcher.date_parsers`,
:mod:`matcher.code_parsers`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from matcher import parsers as P
from matcher import schemas as S
from matcher.yaml_config import load_yaml_model

Parse = Literal["text", "year", "date", "money", "count", "number", "status", "list", "industry_code", "country"]
# What each parser yields, and the canonical column kinds it may fill.
PARSE_KINDS: dict[str, tuple[str, ...]] = {
    "text": ("str",), "industry_code": ("str",), "country": ("str",), "status": ("str",), "year": ("int", "float"),
    "count": ("int", "float"), "number": ("float", "int"), "money": ("float",), "date": ("date",),
    "list": ("list",),
}
CURRENCY_SUFFIX = "_currency"


class FieldSpec(BaseModel):
    """How one output column is made from the source.

    One source: ``column``, ``concat`` (parts joined by ``sep``), ``coalesce`` (the first
    non-blank of several columns, e.g. the most specific industry level) or ``constant``. Then
    optionally a value parser (``parse``, see :mod:`matcher.parsers`) and its options.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    column: str | None = None
    concat: list[str] | None = None
    coalesce: list[str] | None = None
    sep: str = " "
    # concat: leave the separator out after a part that already ends a sentence (。；;.!?).
    sentences: bool = False
    constant: Any = None
    as_list: str | None = Field(None, alias="list")  # "python", "json" or a delimiter like ";"
    parse: Parse | None = None
    # money: the scale of a bare number (万 for a column in 万元) and its currency.
    unit: str | float | None = None
    currency: str = "CNY"
    # list: items equal to (or containing) a key become its value(s), e.g. 高新技术企业 -> high-tech enterprise;
    # country: place names the built-in table lacks, to their ISO code, e.g. 塞舌尔: SC.
    values: dict[str, str | list[str]] = {}
    # list: flag columns (是/否) whose value, when set, joins the list.
    flags: dict[str, str | list[str]] = {}
    # Source columns that may be absent from a file (platform exports differ), read as blank:
    # true for all of this spec's columns, or a list of them.
    optional: bool | list[str] = False

    @model_validator(mode="after")
    def _one_source(self) -> "FieldSpec":
        given = [self.column is not None, self.concat is not None, self.coalesce is not None,
                 self.constant is not None]
        if sum(given) > 1 or (sum(given) == 0 and not self.flags):
            raise ValueError("give exactly one of 'column', 'concat', 'coalesce' or 'constant'")
        if self.flags and self.parse != "list":
            raise ValueError("'flags' need 'parse: list'")
        if self.values and self.parse not in ("list", "country"):
            raise ValueError("'values' need 'parse: list' or 'parse: country'")
        if self.parse == "country" and any(not isinstance(v, str) for v in self.values.values()):
            raise ValueError("'values' of 'parse: country' map a name to one ISO code")
        if self.unit is not None:
            if self.parse != "money":
                raise ValueError("'unit' applies to 'parse: money' only")
            self.unit_multiplier()
        if self.parse is not None and self.as_list is not None:
            raise ValueError("give either 'list' or 'parse', not both")
        if isinstance(self.optional, list):
            unknown = sorted(set(self.optional) - set(self.source_columns()))
            if unknown:
                raise ValueError(f"optional columns {unknown} are not source columns of this field")
        return self

    def unit_multiplier(self) -> float:
        if self.unit is None or self.unit in ("元", ""):
            return 1.0
        if isinstance(self.unit, (int, float)):
            return float(self.unit)
        word = self.unit.removesuffix("元")
        if word not in P.MONEY_UNITS:
            raise ValueError(f"unknown money unit '{self.unit}'; use one of {['元', *P.MONEY_UNITS]} or a number")
        return P.MONEY_UNITS[word]

    def source_columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        return [*(self.concat or self.coalesce or []), *self.flags]

    def required_columns(self) -> list[str]:
        """The source columns a file must have (all but the optional ones)."""
        if self.optional is True:
            return []
        optional = set(self.optional or [])
        return [c for c in self.source_columns() if c not in optional]


class LocalRule(BaseModel):
    """``is_local`` derived from a location column: true when its value is in ``in``, or when it
    contains one of ``contains`` (an address: ``contains: [上海市杨浦区]``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    column: str
    values: list[str] = Field(default_factory=list, alias="in")
    contains: list[str] = []


class Mapping(BaseModel):
    """A validated source mapping."""

    model_config = ConfigDict(extra="forbid")

    name: str = "source"
    description: str = ""
    columns: dict[str, FieldSpec]
    extra: dict[str, FieldSpec] = {}
    is_local: LocalRule | None = None
    updated_at_from_filename: str | None = None
    status_map: dict[str, str] = {}
    encoding: str | None = None
    header_row: int = Field(1, ge=1)
    sheet: str | None = None
    currency_rates: dict[str, float] = {}

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            import codecs

            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding '{value}'; use for example gb18030 or utf-8") from None
        return value

    @field_validator("currency_rates")
    @classmethod
    def _positive_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, v in rates.items() if not v > 0)
        if bad:
            raise ValueError(f"currency rates must be positive CNY amounts; check {bad}")
        return rates

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("columns", "extra"):
                specs = data.get(key) or {}
                data[key] = {
                    out: ({"column": spec} if isinstance(spec, str) else spec)
                    for out, spec in specs.items()
                }
        return data

    @model_validator(mode="after")
    def _check_filename_pattern(self) -> "Mapping":
        if self.updated_at_from_filename is not None:
            try:
                groups = re.compile(self.updated_at_from_filename).groups
            except re.error as exc:
                raise ValueError(f"updated_at_from_filename is not a valid regular expression: {exc}") from None
            if groups != 1:
                raise ValueError("updated_at_from_filename needs exactly one capture group, around the date")
        return self

    @model_validator(mode="after")
    def _check_names(self) -> "Mapping":
        unknown = sorted(set(self.columns) - set(S.CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(
                f"unknown canonical columns {unknown}; canonical columns are listed in "
                "matcher/schemas.py (put other columns under 'extra')"
            )
        missing = [c for c in S.REQUIRED_COLUMNS if c not in self.columns]
        if missing:
            raise ValueError(f"required canonical columns not mapped: {missing}")
        clash = sorted(set(self.extra) & set(S.CANONICAL_COLUMNS))
        if clash:
            raise ValueError(f"extra columns may not reuse canonical names: {clash}")
        bad_status = sorted(v for v in self.status_map.values() if v not in S.STATUS_CLASSES)
        if bad_status:
            raise ValueError(f"status_map values {bad_status} not in {list(S.STATUS_CLASSES)}")
        for name, spec in self.columns.items():
            kind = S.COLUMN_BY_NAME[name].kind
            if spec.parse is not None and kind not in PARSE_KINDS[spec.parse]:
                raise ValueError(f"{name}: 'parse: {spec.parse}' cannot fill a {kind} column")
        outputs = set(self.columns) | set(self.extra)
        for name, spec in [*self.columns.items(), *self.extra.items()]:
            if spec.parse == "money" and name + CURRENCY_SUFFIX in outputs | set(S.CANONICAL_COLUMNS):
                raise ValueError(f"{name + CURRENCY_SUFFIX} is written by '{name}: parse: money'; rename that column")
        return self

    def currency_columns(self) -> list[str]:
        """The extra columns the money parsers add (``registered_capital_currency``, ...)."""
        return [n + CURRENCY_SUFFIX for n, s in [*self.columns.items(), *self.extra.items()] if s.parse == "money"]


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping YAML file."""
    return load_yaml_model(path, Mapping, "mapping file")
