"""Applying a source mapping (:mod:`matcher.mapping`) to a source frame: each output column taken,
joined or coalesced from the source columns, its declared parser run over the cells, the money
columns' currencies split off, ``is_local`` and ``updated_at`` derived; the result keeps each row's
``source_row`` for validation's messages."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from matcher import code_parsers as C
from matcher import date_parsers as D
from matcher import parsers as P
from matcher import schemas as S
from matcher.errors import SchemaError
from matcher.mapping import CURRENCY_SUFFIX, FieldSpec, Mapping


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


_SENTENCE_END = ("。", "；", ";", ".", "!", "?", "！", "？")


def _blank_to_none(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None)


def _join(parts: list[pd.Series], sep: str, sentences: bool) -> pd.Series:
    texts = [p.astype(object).where(p.notna(), "").astype(str).str.strip() for p in parts]
    joined = texts[0]
    for part in texts[1:]:
        glue = pd.Series(sep, index=joined.index, dtype=object)
        if sentences and sep.strip():
            # 主营业务 often ends with 。 already: do not write 。。
            glue = glue.where(~joined.str.endswith(_SENTENCE_END), sep.replace(sep.strip(), "", 1))
        # A blank earlier part must not leave the separator in front.
        joined = joined.where(part == "", (joined + glue + part).where(joined != "", part)).str.strip()
    return joined.where(joined != "", None)


def _source_values(source: pd.DataFrame, spec: FieldSpec) -> pd.Series:
    def column(name: str) -> pd.Series:
        if name in source.columns:
            return source[name]
        return pd.Series(None, index=source.index, dtype=object)  # an optional column absent

    if spec.constant is not None:
        return pd.Series([spec.constant] * len(source), index=source.index, dtype=object)
    if spec.column is not None:
        return column(spec.column).astype(object)
    if spec.concat is not None:
        return _join([column(c) for c in spec.concat], spec.sep, spec.sentences)
    if spec.coalesce is not None:
        values = pd.Series(None, index=source.index, dtype=object)
        for name in spec.coalesce:
            values = values.where(~P.map_cells(values, P.is_missing).astype(bool), _blank_to_none(column(name)))
        return values.astype(object)
    return pd.Series(None, index=source.index, dtype=object)  # flags only


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _parse_values(source: pd.DataFrame, values: pd.Series, spec: FieldSpec, mapping: Mapping) -> pd.Series:
    """Run the spec's parser over its values (ParseFailure where a value does not parse)."""
    kind = spec.parse
    if kind == "text":
        return P.map_cells(values, lambda v: None if P.is_missing(v) else str(v).strip())
    if kind == "year":
        return P.map_cells(values, D.parse_year)
    if kind == "date":
        return P.map_cells(values, D.parse_date)
    if kind == "count":
        return P.map_cells(values, P.parse_count)
    if kind == "number":
        return P.map_cells(values, P.parse_number)
    if kind == "industry_code":
        return P.map_cells(values, C.parse_industry_code)
    if kind == "country":
        names = {k: str(v).upper() for k, v in spec.values.items()}
        return P.map_cells(values, lambda v: C.parse_country(v, names))
    if kind == "status":
        table = P.status_table(mapping.status_map)
        return P.map_cells(values, lambda v: P.parse_status(v, table))
    if kind == "money":
        words, rates = P.currency_table(mapping.currency_rates)
        unit, currency = spec.unit_multiplier(), spec.currency.upper()
        return P.map_cells(values, lambda v: P.parse_money(v, unit, currency, words, rates))
    # list
    table = {k: _as_list(v) for k, v in spec.values.items()}
    items = P.map_cells(values, lambda v: P.translate_items(P.split_list(v) or [], table))
    for flag_column, flag_values in spec.flags.items():
        if flag_column not in source.columns:
            continue  # optional spec, column absent
        held = P.map_cells(source[flag_column], P.is_flag_set).astype(bool)
        if held.any():
            add = _as_list(flag_values)
            items = items.copy()
            items[held] = items[held].map(lambda current: [*current, *(x for x in add if x not in current)])
    return items.map(lambda v: v if v else None).astype(object)


def _apply_spec(
    source: pd.DataFrame, spec: FieldSpec, list_column: bool, mapping: Mapping
) -> tuple[pd.Series, pd.Series | None]:
    """(values, currencies): the output column, and for ``parse: money`` the currency codes."""
    values = _source_values(source, spec)
    if spec.parse is not None:
        values = _parse_values(source, values, spec, mapping)
        if spec.parse == "money":
            currencies = values.map(lambda v: v.currency if isinstance(v, P.MoneyValue) else None).astype(object)
            amounts = values.map(lambda v: v.amount_cny if isinstance(v, P.MoneyValue) else v).astype(object)
            return amounts, currencies
        return values, None
    if spec.as_list is not None or list_column:
        values = values.map(lambda v: parse_list(v, spec.as_list))
    return values, None


def _header_hint(source: pd.DataFrame, missing: list[str], header_row: int) -> str:
    """Where the missing columns' names are, when they sit in a data row (a title row above the
    header that ``header_row`` does not skip)."""
    for offset, (_, row) in enumerate(source.head(20).iterrows()):
        cells = {" ".join(str(v).split()) for v in row.to_numpy() if isinstance(v, str)}
        if set(missing) <= cells:
            line = header_row + offset + 1
            return f"; they are on line {line}: set 'header_row: {line}' in the mapping"
    return ""


def apply_mapping(source: pd.DataFrame, mapping: Mapping, source_name: str, first_row: int = 1) -> pd.DataFrame:
    """Map a source frame onto canonical (and extra) columns; values are not yet type-checked.

    The result keeps ``source_row`` (1-based data row in the file, header excluded) so every
    validation message can point at the row a person would open. Declared parsers have run:
    a value that did not parse is a :class:`matcher.parsers.ParseFailure` for validation to
    quarantine. ``first_row`` is the ``source_row`` of the frame's first row (a chunk of a larger
    source starts where the previous one ended).
    """
    specs = [*mapping.columns.values(), *mapping.extra.values()]
    needed = {c for spec in specs for c in spec.required_columns()}
    if mapping.is_local is not None:
        needed.add(mapping.is_local.column)
    missing = sorted(needed - set(source.columns))
    if missing:
        raise SchemaError(
            f"{source_name}: missing columns {missing} named by the mapping; "
            f"the source has {sorted(map(str, source.columns))[:20]}"
            + (_header_hint(source, missing, mapping.header_row) if first_row == 1 else "")
        )
    out = pd.DataFrame(index=source.index)
    out[S.SOURCE_ROW] = range(first_row, first_row + len(source))
    currencies: dict[str, pd.Series] = {}
    for name in S.CANONICAL_COLUMNS:
        spec = mapping.columns.get(name)
        if spec is not None:
            out[name], currency = _apply_spec(source, spec, name in S.LIST_COLUMNS, mapping)
            if currency is not None:
                currencies[name + CURRENCY_SUFFIX] = currency
        else:
            out[name] = None
    for name, spec in mapping.extra.items():
        out[name], currency = _apply_spec(source, spec, False, mapping)
        if currency is not None:
            currencies[name + CURRENCY_SUFFIX] = currency
    for name, currency in currencies.items():
        out[name] = currency
    if mapping.is_local is not None and S.IS_LOCAL not in mapping.columns:
        rule = mapping.is_local
        wanted = {v.casefold() for v in rule.values}
        parts = [p.casefold() for p in rule.contains]

        def local(v: object) -> bool:
            if not isinstance(v, str):
                return False
            text = v.strip().casefold()
            return text in wanted or any(p in text for p in parts)

        out[S.IS_LOCAL] = source[rule.column].map(local)
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
