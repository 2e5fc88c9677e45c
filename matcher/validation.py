"""Row-level validation of mapped enterprise data.

Nothing is silently lost: a row with any invalid value goes to the quarantine table with the
file, row, column, value and reason, and the caller decides (by the bad-row share) whether the
source as a whole is fit to publish.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from matcher import schemas as S

QUARANTINE_COLUMNS = ["file", "row", "enterprise_id", "column", "value", "reason"]
_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}


@dataclass
class ValidationResult:
    """Valid, de-duplicated enterprises plus every problem found."""

    enterprises: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int

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

    return values.map(blank).astype(bool)


def _check_column(frame: pd.DataFrame, column: S.Column, problems: _Problems) -> pd.Series:
    raw = frame[column.name]
    blank = _is_blank(raw)
    if column.required:
        problems.add(blank, column.name, raw, "missing required value")
    if column.kind == "str":
        return raw.where(~blank, None).map(lambda v: v if v is None else str(v).strip())
    if column.kind == "list":
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
    table = {k.casefold(): v for k, v in {**S.DEFAULT_STATUS_MAP, **status_map}.items()}
    return status.map(lambda v: "unknown" if v is None else table.get(str(v).strip().casefold(), "unknown"))


def validate_enterprises(
    mapped: pd.DataFrame, source_name: str, status_map: dict[str, str] | None = None
) -> ValidationResult:
    """Convert types, check ranges and ids, and de-duplicate mapped enterprise rows.

    Parameters
    ----------
    mapped : DataFrame
        Output of :func:`matcher.mapping.apply_mapping`: canonical columns, ``source_row``,
        and any extra columns.
    source_name : str
        File name used in every quarantine record.
    status_map : dict, optional
        Source status string -> one of ``schemas.STATUS_CLASSES``, on top of the defaults.

    Returns
    -------
    ValidationResult
        ``enterprises``: one row per valid enterprise id (the latest ``updated_at`` wins,
        then the last row); ``quarantine``: one record per problem.
    """
    problems = _Problems(source_name, mapped)
    clean = pd.DataFrame(index=mapped.index)
    clean[S.SOURCE_ROW] = mapped[S.SOURCE_ROW]
    for column in S.COLUMNS:
        clean[column.name] = _check_column(mapped, column, problems)
    for extra in [c for c in mapped.columns if c not in clean.columns]:
        clean[extra] = mapped[extra]
    clean[S.STATUS_CLASS] = _status_class(clean[S.STATUS], status_map or {})

    table = problems.table()
    bad_rows = set(table["row"]) if len(table) else set()
    valid = clean[~clean[S.SOURCE_ROW].isin(bad_rows)]

    order = valid.sort_values([S.UPDATED_AT, S.SOURCE_ROW], na_position="first", kind="stable")
    dup = order.duplicated(S.ENTERPRISE_ID, keep="last")
    if dup.any():
        kept = order[~dup].set_index(S.ENTERPRISE_ID)[S.SOURCE_ROW]
        dups = order[dup]
        table = pd.concat(
            [
                table,
                pd.DataFrame(
                    {
                        "file": source_name,
                        "row": dups[S.SOURCE_ROW].to_numpy(),
                        "enterprise_id": dups[S.ENTERPRISE_ID].to_numpy(),
                        "column": S.ENTERPRISE_ID,
                        "value": dups[S.ENTERPRISE_ID].to_numpy(),
                        "reason": [
                            f"duplicate enterprise_id; kept row {kept[e]} (latest updated_at)"
                            for e in dups[S.ENTERPRISE_ID]
                        ],
                    }
                ),
            ],
            ignore_index=True,
        )
    enterprises = order[~dup].sort_values(S.SOURCE_ROW).reset_index(drop=True)
    return ValidationResult(enterprises=enterprises, quarantine=table.reset_index(drop=True), rows_in=len(mapped))
