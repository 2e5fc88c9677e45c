"""Spreadsheet exports that carry data, never code: the one place every CSV and XLSX the product
writes goes through.

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Sheets ("CSV injection", OWASP). So:

- CSV (:func:`write_csv`, :func:`safe_frame` for pandas writers): such text gets a leading single
  quote (``'=1+2``), the OWASP rule; the value stays visible, nothing is dropped.
- XLSX (:func:`write_xlsx`): every text cell is written as a string (never a formula, whatever it
  starts with) with Excel's own quote prefix on risky text, so editing the cell keeps it text;
  characters XML cannot hold are written as the format's ``_xHHHH_`` escapes.

Numbers, booleans, dates and empty cells are written as they are: a negative score stays a number.
``defusedcsv`` was considered: it leaves tabs and carriage returns alone and rewrites ``|`` inside
values, so it neither meets the rule nor keeps the data.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from numbers import Number
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# XML 1.0 cannot hold these (openpyxl refuses them); OOXML writes them as _xHHHH_.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_OOXML_ESCAPE = re.compile(r"_x[0-9A-Fa-f]{4}_")
XLSX_CELL_LIMIT = 32_767  # Excel's longest cell text


def is_formula_like(value: Any) -> bool:
    """Whether ``value`` is text a spreadsheet would read as a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_START)


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell: risky text gets a leading ``'``; anything else is returned unchanged.

    >>> safe_cell("=1+2"), safe_cell("-3 staff"), safe_cell(-0.25), safe_cell("Acme")
    ("'=1+2", "'-3 staff", -0.25, 'Acme')
    """
    return "'" + value if is_formula_like(value) else value


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]], *, bom: bool = True) -> str:
    """A CSV document (``header`` then ``rows``) with every cell through :func:`safe_cell`.

    ``bom``: start with a UTF-8 byte-order mark, so Excel reads the text as UTF-8.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(h) for h in header])
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    return ("\ufeff" if bom else "") + buffer.getvalue()


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) pass :func:`safe_cell`, for
    ``DataFrame.to_csv``; numeric columns are untouched."""
    out = frame.copy()
    for column in out.columns:
        if not (pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column])):
            continue
        out[column] = out[column].map(safe_cell)
    out.columns = [safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def _xlsx_text(value: str) -> str:
    # A literal "_x0041_" would be read back as "A": its underscore is escaped first (_x005F_).
    value = _OOXML_ESCAPE.sub(lambda m: "_x005F_" + m.group(0)[1:], value)
    return _XML_ILLEGAL.sub(lambda m: f"_x{ord(m.group(0)):04X}_", value)


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()  # Excel has no time zones: the offset stays visible as text
    if value is None or isinstance(value, (bool, Number, datetime, date)):
        if isinstance(value, float) and value != value:  # NaN: an empty cell
            return None
        return value
    return _xlsx_text(str(value))


def write_xlsx(sheets: Mapping[str, tuple[Sequence[str] | None, Iterable[Sequence[Any]]]]) -> bytes:
    """An XLSX workbook, one sheet per ``{title: (header, rows)}`` (header None: rows only); every
    text cell is a string.

    Returns
    -------
    bytes : the workbook file
    """
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, (header, rows) in sheets.items():
        sheet = book.create_sheet(title)
        for r, row in enumerate([*([header] if header is not None else []), *rows], start=1):
            for c, raw in enumerate(row, start=1):
                value = _xlsx_value(raw)
                if isinstance(value, str):
                    if len(value) > XLSX_CELL_LIMIT:
                        raise ValueError(f"sheet '{title}' row {r} column {c}: {len(value)} characters, "
                                         f"above Excel's cell limit of {XLSX_CELL_LIMIT}")
                    cell = sheet.cell(row=r, column=c)
                    cell.value = value
                    cell.data_type = "s"  # openpyxl would make '=...' a formula and '#N/A' an error
                    if is_formula_like(value):
                        cell.quotePrefix = True  # Excel's "'": the text stays text when edited
                else:
                    sheet.cell(row=r, column=c, value=value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
