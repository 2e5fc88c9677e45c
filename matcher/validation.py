"""Row-level validation of mapped enterprise data.

Nothing is silently lost: a row with any invalid value goes to the quarantine table with the
file, row, column, value and reason, and the caller decides (by the bad-row share) whether the
source as a whole is fit to publish. Values a declared parser could not read
(:class:`matcher.parsers.ParseFailure`) are quarantined with the parser's reason.

Text is made safe to store: control characters (NUL and the other C0 controls except tab and
line breaks; PostgreSQL rejects NUL) are removed and each removal is recorded in ``repairs``; a
text longer than its cap (:data:`MAX_TEXT_CHARS`) is quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from matcher import parsers as P
from matcher import schemas as S

QUARANTINE_COLUMNS = ["file", "row", "enterprise_id", "column", "value", "reason"]
# Longest text accepted per column (characters); others get DEFAULT_MAX_TEXT_CHARS.
MAX_TEXT_CHARS = {S.ENTERPRISE_ID: 200, S.NAME: 1_000, S.DESCRIPTION: 100_000}
DEFAULT_MAX_TEXT_CHARS = 100_000
_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}


@dataclass
class ValidationResult:
    """Valid, de-duplicated enterprises plus every problem found."""

    enterprises: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    # Values kept after a repair (control characters removed): same columns as the quarantine.
    repairs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS))

    @property
    def rows_quarantined(self) -> int:
        return int(self.quarantine["row"].nunique()) if len(self.quarantine) else 0

    @property
    def bad_share(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0


class _Problems:
    def __init__(self, source_name: str, frame: pd.DataFrame) -> None:
        self.source_name = source_name
        self.frame = frame
        self.records: list[pd.DataFrame] = []

    def add(self, mask: pd.Series | np.ndarray, column: str, values: pd.Series, reason: str | pd.Series) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        rows = self.frame.loc[mask]
        self.records.append(
            pd.DataFrame(
                {
                    "file": self.source_name,
                    "row": rows[S.SOURCE_ROW].to_numpy(),
                    "enterprise_id": rows[S.ENTERPRISE_ID].astype(str).to_numpy(),
                    "column": column,
                    "value": values[mask].astype(str).str.slice(0, 200).to_numpy(),
                    "reason": reason[mask].to_numpy() if isinstance(reason, pd.Series) else reason,
                }
            )
        )

    def table(self) -> pd.DataFrame:
        if not self.records:
            return pd.DataFrame(columns=QUARANTINE_COLUMNS)
        return pd.concat(self.records, ignore_index=True).sort_values(["row", "column"], kind="stable")


def _is_blank(values: pd.Series) -> pd.Series:
    def blank(v: object) -> bool:
        if isinstance(v, str):
            return not v.strip()
        if isinstance(v, (list, tuple, np.ndarray)):
            return False
        return bool(pd.isna(v))  # None, NaN, pd.NA, NaT

    cells = values.to_numpy(dtype=object)
    kinds = _kinds(cells)
    if kinds <= {type(None), float}:
        return pd.Series(pd.isna(cells), index=values.index)
    if kinds == {str}:
        return pd.Series([not v.strip() for v in cells], index=values.index, dtype=bool)
    return pd.Series(np.fromiter((blank(v) for v in cells), dtype=bool, count=len(cells)), index=values.index)


def _kinds(cells: np.ndarray) -> set[type]:
    """The types of the cells (map and set run in C: a cheap first look at a column)."""
    return set(map(type, cells))


def _cells_where(values: pd.Series, test) -> np.ndarray:
    cells = values.to_numpy(dtype=object)
    return np.fromiter((test(v) for v in cells), dtype=bool, count=len(cells))


def _take_failures(raw: pd.Series, column: str, problems: _Problems) -> pd.Series:
    """Quarantine the values a parser could not read, and blank them for the checks below."""
    if raw.dtype != object or P.ParseFailure not in _kinds(raw.to_numpy(dtype=object)):
        return raw
    failed = _cells_where(raw, lambda v: type(v) is P.ParseFailure)
    if failed.any():
        failed = pd.Series(failed, index=raw.index)
        problems.add(failed, column, raw.map(str), raw.map(lambda v: getattr(v, "reason", "")))
        raw = raw.where(~failed, None)
    return raw


def _texts(values: pd.Series) -> list[str]:
    cells = values.to_numpy(dtype=object)
    return list(cells) if _kinds(cells) == {str} else [v for v in cells if type(v) is str]


def _clean_texts(values: pd.Series, column: str, problems: _Problems, repairs: _Problems) -> pd.Series:
    """Remove control characters (recorded as repairs) and quarantine texts over the cap."""
    if values.dtype != object and not pd.api.types.is_string_dtype(values):
        return values
    texts = _texts(values)
    # One scan of the joined column finds whether any cell needs a closer look (most never do).
    if P.CONTROL_CHARS.search("\n".join(texts)):
        mask = pd.Series(_cells_where(values, lambda v: type(v) is str and P.CONTROL_CHARS.search(v) is not None),
                         index=values.index)
        repairs.add(mask, column, values.map(lambda v: repr(v)[1:-1] if isinstance(v, str) else v),
                    "control characters removed")
        values = values.astype(object).where(~mask, values.map(lambda v: P.clean_text(v) if isinstance(v, str) else v))
    cap = MAX_TEXT_CHARS.get(column, DEFAULT_MAX_TEXT_CHARS)
    if max(map(len, texts), default=0) > cap:
        long = pd.Series(_cells_where(values, lambda v: type(v) is str and len(v) > cap), index=values.index)
        if long.any():
            reasons = values.map(lambda v: f"text of {len(v):,} characters is longer than the limit of {cap:,}"
                                 if isinstance(v, str) else "")
            problems.add(long, column, values, reasons)
    return values


def _clean_list_items(values: pd.Series, column: str, problems: _Problems, repairs: _Problems) -> pd.Series:
    if values.dtype != object:
        return values
    cells = values.to_numpy(dtype=object)
    if list not in _kinds(cells):
        return values
    joined = "\n".join(["\n".join(map(str, v)) for v in cells if type(v) is list])
    if not P.CONTROL_CHARS.search(joined):
        return values
    dirty = pd.Series(_cells_where(values, lambda v: type(v) is list and any(
        P.CONTROL_CHARS.search(str(x)) for x in v)), index=values.index)
    repairs.add(dirty, column, values.map(lambda v: repr(v)), "control characters removed")
    return values.where(~dirty, values.map(
        lambda v: [c for c in (P.clean_text(str(x)).strip() for x in v) if c] if isinstance(v, list) else v))


def _check_column(frame: pd.DataFrame, column: S.Column, problems: _Problems, repairs: _Problems) -> pd.Series:
    raw = _take_failures(frame[column.name], column.name, problems)
    if column.kind == "str":
        raw = _clean_texts(raw, column.name, problems, repairs)
    blank = _is_blank(raw)
    if column.required:
        problems.add(blank, column.name, raw, "missing required value")
    if column.kind == "str":
        cells = raw.to_numpy(dtype=object)
        return pd.Series([None if b else str(v).strip() for v, b in zip(cells, blank.to_numpy())],
                         index=raw.index, dtype=object)
    if blank.all() and column.kind in ("int", "float"):
        # An unmapped or empty numeric column: nothing to convert (most exports lack several).
        return pd.Series(pd.NA, index=raw.index, dtype="Int64" if column.kind == "int" else "Float64")
    if column.kind == "list":
        raw = _clean_list_items(raw, column.name, problems, repairs)
        bad = ~blank & ~raw.map(lambda v: isinstance(v, list))
        problems.add(bad, column.name, raw, "not a list (use the mapping's 'list' option)")
        return raw.map(lambda v: v if isinstance(v, list) else [])
    if column.kind == "bool":
        text = raw.map(lambda v: str(v).strip().casefold() if not isinstance(v, bool) else str(v).casefold())
        is_true, is_false = text.isin(_TRUE), text.isin(_FALSE)
        bad = ~blank & ~is_true & ~is_false
        problems.add(bad, column.name, raw, "not a boolean (true/false)")
        return pd.Series(np.where(is_true, True, False), index=frame.index, dtype=bool)
    if column.kind == "date":
        parsed = pd.to_datetime(raw.where(~blank, None), errors="coerce", format="mixed", utc=True)
        bad = ~blank & parsed.isna()
        problems.add(bad, column.name, raw, "not a date (use YYYY-MM-DD)")
        return parsed.dt.tz_localize(None).dt.normalize()
    numbers = pd.to_numeric(raw.where(~blank, None).map(_clean_number), errors="coerce").astype(float)
    bad = ~blank & ~np.isfinite(numbers.fillna(0)) | (~blank & numbers.isna())
    problems.add(bad, column.name, raw, "not a number")
    numbers = numbers.where(~bad)
    invalid = bad.copy()
    if column.kind == "int":
        fractional = numbers.notna() & (numbers != np.floor(numbers))
        problems.add(fractional, column.name, raw, "not a whole number")
        invalid |= fractional
    if column.min is not None:
        low = numbers < column.min
        problems.add(low, column.name, raw, f"below the minimum {column.min:g}")
        invalid |= low
    if column.max is not None:
        high = numbers > column.max
        problems.add(high, column.name, raw, f"above the maximum {column.max:g}")
        invalid |= high
    # Rows with an invalid value are quarantined above; blank the value so the cast is safe.
    numbers = numbers.where(~invalid)
    if column.kind == "int":
        return numbers.where(numbers.abs() < 2**53).round().astype("Int64")
    return numbers.astype("Float64")


def _clean_number(value: object) -> object:
    if isinstance(value, str):
        return value.replace(",", "").replace("%", "").strip()
    return value


def _status_class(status: pd.Series, status_map: dict[str, str]) -> pd.Series:
    table = P.status_table(status_map)
    return P.map_cells(status, lambda v: "unknown" if v is None else (P.status_class_of(v, table) or "unknown"))


def _check_extra(values: pd.Series, name: str, problems: _Problems, repairs: _Problems) -> pd.Series:
    """Extra columns are carried as the source (or its declared parser) gives them, made safe."""
    values = _take_failures(values, name, problems)
    values = _clean_texts(values, name, problems, repairs)
    return _clean_list_items(values, name, problems, repairs)


def validate_enterprises(
    mapped: pd.DataFrame, source_name: str, status_map: dict[str, str] | None = None, dedupe: bool = True
) -> ValidationResult:
    """Convert types, check ranges and ids, and de-duplicate mapped enterprise rows.

    Parameters
    ----------
    mapped : DataFrame
        Output of :func:`matcher.mapping_apply.apply_mapping`: canonical columns, ``source_row``,
        and any extra columns.
    source_name : str
        File name used in every quarantine record.
    status_map : dict, optional
        Source status string -> one of ``schemas.STATUS_CLASSES``, on top of the defaults.
    dedupe : bool
        False for one chunk of a larger source: duplicate ids are then found over the whole
        source by :func:`find_duplicates`.

    Returns
    -------
    ValidationResult
        ``enterprises``: one row per valid enterprise id (the latest ``updated_at`` wins,
        then the last row); ``quarantine``: one record per problem.
    """
    problems = _Problems(source_name, mapped)
    repairs = _Problems(source_name, mapped)
    clean = pd.DataFrame(index=mapped.index)
    clean[S.SOURCE_ROW] = mapped[S.SOURCE_ROW]
    for column in S.COLUMNS:
        clean[column.name] = _check_column(mapped, column, problems, repairs)
    for extra in [c for c in mapped.columns if c not in clean.columns]:
        clean[extra] = _check_extra(mapped[extra], extra, problems, repairs)
    clean[S.STATUS_CLASS] = _status_class(clean[S.STATUS], status_map or {})

    table = problems.table()
    bad_rows = set(table["row"]) if len(table) else set()
    valid = clean[~clean[S.SOURCE_ROW].isin(bad_rows)].reset_index(drop=True)
    if dedupe:
        dropped, duplicates = find_duplicates(valid[[S.ENTERPRISE_ID, S.UPDATED_AT, S.SOURCE_ROW]], source_name)
        table = pd.concat([table, duplicates], ignore_index=True) if len(duplicates) else table
        valid = valid[~valid[S.SOURCE_ROW].isin(dropped)].reset_index(drop=True)
    return ValidationResult(enterprises=valid, quarantine=table.reset_index(drop=True), rows_in=len(mapped),
                            repairs=repairs.table().reset_index(drop=True))


def find_duplicates(keys: pd.DataFrame, source_name: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The rows that lose to another row of the same ``enterprise_id`` (the latest ``updated_at``
    wins, then the last row), and their quarantine records naming the row kept.

    ``keys`` holds ``enterprise_id``, ``updated_at`` and ``source_row`` of the valid rows (of a
    whole source: a streamed ingest collects them chunk by chunk)."""
    order = keys.sort_values([S.UPDATED_AT, S.SOURCE_ROW], na_position="first", kind="stable")
    dup = order.duplicated(S.ENTERPRISE_ID, keep="last").to_numpy()
    if not dup.any():
        return np.array([], dtype=np.int64), pd.DataFrame(columns=QUARANTINE_COLUMNS)
    dups = order[dup]
    kept = order[~dup & order[S.ENTERPRISE_ID].isin(set(dups[S.ENTERPRISE_ID])).to_numpy()]
    kept = kept.set_index(S.ENTERPRISE_ID)[S.SOURCE_ROW]
    ids = dups[S.ENTERPRISE_ID].to_numpy(dtype=object)
    records = pd.DataFrame(
        {
            "file": source_name,
            "row": dups[S.SOURCE_ROW].to_numpy(),
            "enterprise_id": ids,
            "column": S.ENTERPRISE_ID,
            "value": ids,
            "reason": [f"duplicate enterprise_id; kept row {kept[e]} (latest updated_at)" for e in ids],
        }
    )
    return dups[S.SOURCE_ROW].to_numpy(), records
