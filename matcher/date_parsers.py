"""Date parsers for registry exports: a calendar date or its year from the usual spellings
(``2015-03-12``, ``2015/3/12``, ``2015年3月12日``, ``20150312``, Excel serial days). Like
:mod:`matcher.parsers`, each returns a clean value, ``None`` for a missing cell, or a
:class:`matcher.parsers.ParseFailure` with the reason.

Examples
--------
>>> parse_date("2015年3月12日")
Timestamp('2015-03-12 00:00:00')
>>> parse_year("1987-12-22")
1987
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from matcher.parsers import ParseFailure, is_missing, number_or_none

_EXCEL_EPOCH = datetime(1899, 12, 30)
# Excel serial day numbers accepted as dates: 1900-01-01 .. 2099-12-31.
_SERIAL_RANGE = (2, 73050)
_YEAR_RANGE = (1800, 2100)
_DATE_PATTERNS = (
    # 2015-03-12, 2015/3/12, 2015.03.12, 2015年3月12日 (optionally followed by a time)
    re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),  # 20150312
)
_MONTH_PATTERN = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?$")  # 2015-03, 2015年3月
_YEAR_PATTERN = re.compile(r"^(\d{4})\s*年?$")


def parse_date(value: Any) -> pd.Timestamp | ParseFailure | None:
    """A calendar date (midnight ``Timestamp``) from the usual export spellings.

    Accepts ``2015-03-12``, ``2015/3/12``, ``2015.03.12``, ``2015年3月12日``, ``20150312``,
    a trailing time, ``datetime``/``date`` objects, and Excel serial day numbers (``42075``,
    as a number or as digits). A bare year (``2015``) or month (``2015年3月``) gives its first day.
    """
    parts = _date_parts(value)
    if parts is None or isinstance(parts, ParseFailure):
        return parts
    return pd.Timestamp(*parts)


def _date_parts(value: Any) -> tuple[int, int, int] | ParseFailure | None:
    """(year, month, day) of a date cell; see :func:`parse_date`."""
    if type(value) is str and len(value) == 10 and value[4] == "-" and value[7] == "-" and value[:4].isdigit():
        try:  # the common YYYY-MM-DD, without regular expressions
            return _make_date(value, int(value[:4]), int(value[5:7]), int(value[8:]))
        except ValueError:
            pass
    if is_missing(value):
        return None
    if isinstance(value, (pd.Timestamp, datetime, date)):
        stamp = pd.Timestamp(value)
        return (stamp.year, stamp.month, stamp.day)
    number = number_or_none(value)
    text = str(value).strip()
    if number is None and re.fullmatch(r"\d{5}(\.\d+)?", text):
        number = float(text)
    if number is not None:
        if not math.isfinite(number):
            return ParseFailure(value, "not a date")
        if float(number).is_integer() and _YEAR_RANGE[0] <= number <= _YEAR_RANGE[1]:
            return (int(number), 1, 1)
        if _SERIAL_RANGE[0] <= number <= _SERIAL_RANGE[1]:
            day = _EXCEL_EPOCH + timedelta(days=int(number))
            return (day.year, day.month, day.day)
        if 10_000_000 <= number <= 99_999_999 and float(number).is_integer():
            text = str(int(number))
        else:
            return ParseFailure(value, "not a date (a number outside the Excel serial-date range)")
    for pattern in _DATE_PATTERNS:
        found = pattern.match(text)
        if found:
            return _make_date(value, *(int(g) for g in found.groups()))
    found = _MONTH_PATTERN.match(text)
    if found:
        return _make_date(value, int(found.group(1)), int(found.group(2)), 1)
    found = _YEAR_PATTERN.match(text)
    if found:
        return _make_date(value, int(found.group(1)), 1, 1)
    return ParseFailure(value, "not a date (use YYYY-MM-DD, YYYY/M/D, YYYY年M月D日 or an Excel date)")


def _make_date(value: Any, year: int, month: int, day: int) -> tuple[int, int, int] | ParseFailure:
    if not _YEAR_RANGE[0] <= year <= _YEAR_RANGE[1]:
        return ParseFailure(value, f"year {year} out of range {_YEAR_RANGE[0]}-{_YEAR_RANGE[1]}")
    try:
        date(year, month, day)
    except ValueError:
        return ParseFailure(value, "not a valid calendar date")
    return (year, month, day)


def parse_year(value: Any) -> int | ParseFailure | None:
    """The year of a date in any form :func:`parse_date` reads (``1987-12-22`` -> 1987)."""
    parts = _date_parts(value)
    if parts is None or isinstance(parts, ParseFailure):
        return parts
    return parts[0]
