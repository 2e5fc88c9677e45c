"""Source mappings: turn any CSV / Parquet / JSONL export into the canonical enterprise columns.

A mapping is a small YAML file (see ``data/mappings/``)::

    columns:                      # canonical column -> how to get it
      enterprise_id: company_id            # a source column
      description: {concat: [short_description, long_description]}
      tags: {column: keywords, list: ";"}  # a delimited list ("python" / "json" literals too)
      country: {constant: CN}
    extra:                        # carried into the snapshot, never indexed or embedded
      yc_tags: {column: tags, list: python}
    is_local: {column: district, in: [Yangpu, 杨浦区]}   # or a canonical ``is_local`` column
    updated_at_from_filename: '(\\d{4}-\\d{2}-\\d{2})'
    status_map: {Public: listed}

Values are kept as the source gives them; :mod:`matcher.validation` converts and checks types.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from matcher import schemas as S
from matcher.yaml_config import load_yaml_model
from matcher.errors import SchemaError


class FieldSpec(BaseModel):
    """How one output column is made from the source."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    column: str | None = None
    concat: list[str] | None = None
    sep: str = " "
    constant: Any = None
    as_list: str | None = Field(None, alias="list")  # "python", "json" or a delimiter like ";"

    @model_validator(mode="after")
    def _one_source(self) -> "FieldSpec":
        given = [self.column is not None, self.concat is not None, self.constant is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of 'column', 'concat' or 'constant'")
        return self

    def source_columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        return list(self.concat or [])


class LocalRule(BaseModel):
    """``is_local`` derived from a location column: true when its value is in ``in``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    column: str
    values: list[str] = Field(default_factory=list, alias="in")


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
        return self


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping YAML file."""
    return load_yaml_model(path, Mapping, "mapping file")


def read_source(path: str | Path) -> pd.DataFrame:
    """Read a CSV, Parquet or JSONL file as strings/objects, exactly as the source has it."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: source file not found")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
            return pd.read_json(path, lines=True, dtype=False)
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise SchemaError(f"{path}: cannot be read as {suffix.lstrip('.')}: {exc}") from None
    raise SchemaError(f"{path}: unsupported source type '{path.suffix}'; use .csv, .parquet or .jsonl")


def parse_list(value: Any, how: str | None) -> Any:
    """Parse one list cell. Returns a list, ``None`` for empty, or the raw value if unparseable."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif hasattr(value, "tolist"):
        items = value.tolist()
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            if how == "python" or (how is None and text.startswith("[")):
                items = ast.literal_eval(text)
            elif how == "json":
                items = json.loads(text)
            else:
                items = re.split(re.escape(how) if how else r"[;|，、]", text)
        except (ValueError, SyntaxError):
            return value  # validation reports it with row and column
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, (list, tuple)):
            return value
    return [str(x).strip() for x in items if str(x).strip()]


def _apply_spec(source: pd.DataFrame, spec: FieldSpec, list_column: bool) -> pd.Series:
    if spec.constant is not None:
        values = pd.Series([spec.constant] * len(source), index=source.index, dtype=object)
    elif spec.column is not None:
        values = source[spec.column].astype(object)
    else:
        parts = [source[c].astype(object).where(source[c].notna(), "") for c in spec.concat or []]
        joined = parts[0].astype(str).str.strip()
        for part in parts[1:]:
            part = part.astype(str).str.strip()
            # A blank earlier part must not leave the separator in front.
            joined = joined.where(part == "", (joined + spec.sep + part).where(joined != "", part)).str.strip()
        values = joined.where(joined != "", None)
    if spec.as_list is not None or list_column:
        values = values.map(lambda v: parse_list(v, spec.as_list))
    return values


def apply_mapping(source: pd.DataFrame, mapping: Mapping, source_name: str) -> pd.DataFrame:
    """Map a source frame onto canonical (and extra) columns; values are not yet type-checked.

    The result keeps ``source_row`` (1-based data row in the file, header excluded) so every
    validation message can point at the row a person would open.
    """
    needed = {c for spec in [*mapping.columns.values(), *mapping.extra.values()] for c in spec.source_columns()}
    if mapping.is_local is not None:
        needed.add(mapping.is_local.column)
    missing = sorted(needed - set(source.columns))
    if missing:
        raise SchemaError(
            f"{source_name}: missing columns {missing} named by the mapping; "
            f"the source has {sorted(map(str, source.columns))[:20]}"
        )
    out = pd.DataFrame(index=source.index)
    out[S.SOURCE_ROW] = range(1, len(source) + 1)
    for name in S.CANONICAL_COLUMNS:
        spec = mapping.columns.get(name)
        if spec is not None:
            out[name] = _apply_spec(source, spec, name in S.LIST_COLUMNS)
        else:
            out[name] = None
    for name, spec in mapping.extra.items():
        out[name] = _apply_spec(source, spec, False)
    if mapping.is_local is not None and S.IS_LOCAL not in mapping.columns:
        wanted = {v.casefold() for v in mapping.is_local.values}
        column = source[mapping.is_local.column]
        out[S.IS_LOCAL] = column.map(lambda v: isinstance(v, str) and v.strip().casefold() in wanted)
    elif S.IS_LOCAL not in mapping.columns:
        out[S.IS_LOCAL] = False
    if mapping.updated_at_from_filename and S.UPDATED_AT not in mapping.columns:
        found = re.search(mapping.updated_at_from_filename, Path(source_name).name)
        if not found:
            raise SchemaError(
                f"{source_name}: file name does not match updated_at_from_filename "
                f"'{mapping.updated_at_from_filename}'"
            )
        out[S.UPDATED_AT] = found.group(1)
    return out.reset_index(drop=True)
