"""Reading enterprise exports as staff have them: CSV (UTF-8, UTF-8 with BOM, GB18030/GBK),
XLSX and other workbooks, Parquet and JSONL.

Every reader returns the cells as the source has them: a CSV as text, a workbook's cells as the
text a CSV export of it would hold (numbers without a spurious ``.0``, dates as ``YYYY-MM-DD``),
Parquet and JSONL with their own types. Converting values is the mapping's and validation's job.

Encodings are never guessed silently: a CSV that is not UTF-8 is detected with charset-normalizer
(Chinese GB18030 preferred when it is a plausible reading), or named by the mapping's
``encoding:``; a file that does not decode, or that holds U+FFFD replacement characters (text
damaged by an earlier wrong decoding), is an error naming the file, the encoding and the place.

:func:`read_source_chunks` reads the same files in bounded memory (for ingest). One module on
purpose, over the usual length: the whole and the chunked reads share every check and message.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import itertools
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pandas as pd

from matcher.errors import SchemaError

TEXT_SUFFIXES = (".csv", ".csv.gz", ".tsv")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
REPLACEMENT_CHAR = "\ufffd"
# charset-normalizer reads this much of a file to decide its encoding.
DETECT_BYTES = 256 * 1024
_GB_FAMILY = {"gb18030", "gbk", "gb2312", "cp936", "hz", "euc_cn", "gb_2312_80"}


@dataclass(frozen=True)
class SourceFormat:
    """How a source file was read, recorded in the snapshot manifest."""

    kind: str  # csv / workbook / parquet / jsonl
    encoding: str | None = None
    sheet: str | None = None
    header_row: int = 1

    def where(self, path: Path) -> str:
        return f"{path}" + (f" (sheet '{self.sheet}')" if self.sheet else "")


def source_suffix(path: Path) -> str:
    return "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()


def read_source(
    path: str | Path,
    sheet: str | None = None,
    encoding: str | None = None,
    header_row: int = 1,
) -> pd.DataFrame:
    """Read a CSV, workbook, Parquet or JSONL export exactly as the source has it.

    Parameters
    ----------
    path : path
        ``.csv`` / ``.tsv`` / ``.csv.gz``, ``.xlsx`` (and ``.xlsm``, ``.xlsb``, ``.xls``,
        ``.ods``), ``.parquet``, ``.jsonl`` / ``.ndjson``.
    sheet : str, optional
        Workbook sheet; the first sheet when omitted.
    encoding : str, optional
        Text encoding of a CSV; detected when omitted.
    header_row : int
        1-based line (CSV) or row (workbook) holding the column names; lines above it (a title
        row, an export note) are skipped.

    Returns
    -------
    DataFrame
        One row per data row; ``frame.attrs["source_format"]`` is the :class:`SourceFormat`.

    Raises
    ------
    SchemaError
        The file is missing, of an unknown type, does not decode, holds replacement characters,
        or the workbook or sheet cannot be read; the message names the file (and sheet).
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: source file not found")
    if header_row < 1:
        raise SchemaError(f"{path}: header_row must be 1 or more, not {header_row}")
    suffix = source_suffix(path)
    if suffix in TEXT_SUFFIXES:
        frame, fmt = _read_csv(path, suffix, encoding, header_row)
    elif suffix in WORKBOOK_SUFFIXES:
        frame, fmt = _read_workbook(path, sheet, header_row)
    else:
        if header_row != 1:
            raise SchemaError(f"{path}: header_row applies to CSV and workbook sources only")
        try:
            if suffix == ".parquet":
                frame, fmt = pd.read_parquet(path), SourceFormat("parquet")
            elif suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
                frame, fmt = pd.read_json(path, lines=True, dtype=False), SourceFormat("jsonl")
            else:
                raise SchemaError(
                    f"{path}: unsupported source type '{path.suffix}'; use .csv, .xlsx, .parquet or .jsonl"
                )
        except (ValueError, OSError) as exc:
            raise SchemaError(f"{path}: cannot be read as {suffix.lstrip('.')}: {exc}") from None
    if sheet is not None and fmt.kind != "workbook":
        raise SchemaError(f"{path}: --sheet applies to workbooks (.xlsx) only, this is a {fmt.kind} file")
    frame.attrs["source_format"] = fmt
    return frame


def read_source_chunks(
    path: str | Path,
    chunk_rows: int,
    sheet: str | None = None,
    encoding: str | None = None,
    header_row: int = 1,
) -> tuple[SourceFormat, Iterator[pd.DataFrame]]:
    """:func:`read_source` in frames of at most ``chunk_rows`` rows, so memory does not grow with
    the file: Parquet by record batches, CSV by the parser's chunks (the same checks, and rows
    named by their place in the file); a workbook (at most 1,048,576 rows a sheet) or JSONL is
    read whole and then sliced. Errors found while reading are raised during the iteration."""
    path = Path(path)
    if chunk_rows < 1:
        raise SchemaError(f"{path}: chunk size must be 1 row or more, not {chunk_rows}")
    if not path.is_file():
        raise SchemaError(f"{path}: source file not found")
    suffix = source_suffix(path)
    if suffix in TEXT_SUFFIXES and header_row >= 1 and sheet is None:
        return _csv_chunks(path, suffix, encoding, header_row, chunk_rows)
    if suffix == ".parquet" and header_row == 1 and sheet is None:
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
        except (ValueError, OSError) as exc:
            raise SchemaError(f"{path}: cannot be read as parquet: {exc}") from None
        return SourceFormat("parquet"), (batch.to_pandas() for batch in batches)
    frame = read_source(path, sheet=sheet, encoding=encoding, header_row=header_row)  # its own checks and errors
    return frame.attrs["source_format"], (frame.iloc[i:i + chunk_rows] for i in range(0, len(frame), chunk_rows))


# ---------------------------------------------------------------------------------------- CSV


def _read_sample(path: Path, suffix: str) -> bytes:
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return handle.read(DETECT_BYTES)


def detect_encoding(path: Path, sample: bytes) -> str:
    """The encoding of a text file from its first bytes: UTF-8 (``utf-8-sig`` with a BOM) when
    they decode as UTF-8, else charset-normalizer's reading, GB18030 preferred when plausible."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        # A sample may end inside a multi-byte character: decode incrementally, not final.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = [m.encoding.lower() for m in from_bytes(sample)]
    if any(e in _GB_FAMILY for e in matches):
        return "gb18030"  # the superset of GBK and GB2312: one codec for every Chinese export
    if not matches:
        raise SchemaError(
            f"{path}: cannot detect the text encoding; set 'encoding:' in the mapping (for example gb18030 or utf-8)"
        )
    return matches[0]


def _looks_chinese_legacy(sample: bytes) -> bool:
    try:
        text = codecs.getincrementaldecoder("gb18030")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text) >= 2


def _csv_encoding(path: Path, suffix: str, encoding: str | None) -> tuple[str, str, bytes]:
    """(encoding, how it was chosen, the first bytes) of a CSV."""
    sample = _read_sample(path, suffix)
    if encoding is None:
        return detect_encoding(path, sample), "detected", sample
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise SchemaError(
            f"{path}: unknown encoding '{encoding}' in the mapping; use for example gb18030 or utf-8"
        ) from None
    if encoding == "utf-8" and sample.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    return encoding, "from the mapping", sample


def _read_csv(path: Path, suffix: str, encoding: str | None, header_row: int) -> tuple[pd.DataFrame, SourceFormat]:
    fmt, chunks = _csv_chunks(path, suffix, encoding, header_row, None)
    return next(chunks), fmt


def _csv_chunks(
    path: Path, suffix: str, encoding: str | None, header_row: int, chunk_rows: int | None
) -> tuple[SourceFormat, Iterator[pd.DataFrame]]:
    """The CSV's rows, whole (``chunk_rows`` None: one frame) or in frames of ``chunk_rows``; every
    frame checked as a whole file is (errors name the file's row, counted from the first data row)."""
    encoding, how, sample = _csv_encoding(path, suffix, encoding)
    sep = "\t" if suffix == ".tsv" else ","
    fmt = SourceFormat("csv", encoding=encoding, header_row=header_row)

    def frames() -> Iterator[pd.DataFrame]:
        first_row = 1
        try:
            parts = None
            while True:
                with warnings.catch_warnings():
                    # Data lines longer than the header (a title line read as the header) must not
                    # silently become an index or lose fields.
                    warnings.simplefilter("error", pd.errors.ParserWarning)
                    if parts is None:
                        reader = pd.read_csv(
                            path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], encoding=encoding,
                            encoding_errors="strict", skiprows=header_row - 1, index_col=False, chunksize=chunk_rows,
                        )
                        parts = iter([reader]) if chunk_rows is None else reader
                    frame = next(parts, None)
                if frame is None:
                    return
                frame.columns = _clean_header(frame.columns)
                _refuse_replacement_chars(path, frame, fmt, how, first_row)
                first_row += len(frame)
                yield frame
        except pd.errors.ParserWarning:
            raise SchemaError(
                f"{path}: data lines have more fields than the header on line {header_row}"
                + _header_line_hint(path, suffix, encoding, sep, header_row)
            ) from None
        except UnicodeDecodeError as exc:
            hint = ""
            if encoding.replace("_", "-").startswith("utf") and _looks_chinese_legacy(sample):
                hint = "; it looks like a GBK/GB18030 export: set 'encoding: gb18030' in the mapping"
            raise SchemaError(
                f"{path}: does not decode as {encoding} ({how}): {exc.reason} at byte {exc.start}{hint}"
            ) from None
        except (ValueError, pd.errors.ParserError, OSError) as exc:
            raise SchemaError(f"{path}: cannot be read as {suffix.lstrip('.')} ({encoding}): {exc}") from None

    return fmt, frames()


def _header_line_hint(path: Path, suffix: str, encoding: str, sep: str, header_row: int) -> str:
    """Suggest the header line: the first of the widest lines near the top of the file."""
    opener = gzip.open if suffix.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding=encoding, errors="replace", newline="") as handle:
            lines = list(csv.reader(itertools.islice(handle, 50), delimiter=sep))
    except (OSError, csv.Error):
        return ""
    widths = [len(line) for line in lines]
    if not widths:
        return ""
    best = widths.index(max(widths)) + 1
    if best == header_row:
        return ""
    return f" (a title row above it?); the header looks like line {best}: set 'header_row: {best}' in the mapping"


def _clean_header(columns: pd.Index) -> list[str]:
    # Exports often pad header cells or break them over two lines inside the cell.
    return [" ".join(str(c).split()) if isinstance(c, str) else str(c) for c in columns]


def _refuse_replacement_chars(path: Path, frame: pd.DataFrame, fmt: SourceFormat, how: str = "", first_row: int = 1) -> None:
    """U+FFFD in a strictly decoded file means the text was damaged before: refuse the file."""
    bad_header = [c for c in frame.columns if REPLACEMENT_CHAR in str(c)]
    if bad_header:
        raise SchemaError(
            f"{fmt.where(path)}: header {bad_header[0]!r} contains U+FFFD replacement characters"
            f"{_encoding_note(fmt, how)}; re-export the file in its original encoding"
        )
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        if values.dtype != object:  # a string dtype: pyarrow scans it
            if not values.str.contains(REPLACEMENT_CHAR, regex=False, na=False).any():
                continue
            cells = values.to_numpy(dtype=object)
        else:
            cells = values.to_numpy(dtype=object)
            if REPLACEMENT_CHAR not in "\n".join(v for v in cells if type(v) is str):
                continue
        hits = pd.Series([isinstance(v, str) and REPLACEMENT_CHAR in v for v in cells], index=values.index)
        if hits.any():
            row = int(hits.to_numpy().argmax()) + first_row
            raise SchemaError(
                f"{fmt.where(path)}: row {row}, column '{column}' contains U+FFFD replacement characters "
                f"({int(hits.sum())} rows in that column){_encoding_note(fmt, how)}: the text was damaged by "
                "a wrong decoding before this export; re-export it in its original encoding "
                "(for a GBK export, set 'encoding: gb18030' in the mapping)"
            )


def _encoding_note(fmt: SourceFormat, how: str) -> str:
    return f" when read as {fmt.encoding}" + (f" ({how})" if how else "") if fmt.encoding else ""


# ----------------------------------------------------------------------------------- workbooks


def sheet_to_read(path: Path, sheet: str | None) -> str | None:
    """The sheet a read of ``path`` takes: ``sheet``, else a workbook's first sheet; None for a
    file that is not a workbook (or cannot be opened as one: reading it will say why)."""
    if sheet is not None or path.suffix.lower() not in (".xlsx", ".xlsm", ".xls", ".ods"):
        return sheet
    from python_calamine import CalamineWorkbook

    try:
        names = list(CalamineWorkbook.from_path(str(path)).sheet_names)
    except Exception:  # noqa: BLE001 - the read itself reports a damaged file
        return None
    return names[0] if names else None


def _read_workbook(path: Path, sheet: str | None, header_row: int) -> tuple[pd.DataFrame, SourceFormat]:
    # python-calamine (Rust) is what pandas' engine="calamine" runs; calling it directly reads the
    # sheet once and also gives its merged-cell ranges.
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
        names = list(workbook.sheet_names)
    except Exception as exc:  # noqa: BLE001 - calamine raises several types for damaged files
        raise SchemaError(f"{path}: cannot be read as a workbook: {_calamine_reason(exc)}") from None
    if not names:
        raise SchemaError(f"{path}: the workbook has no sheets")
    name = names[0] if sheet is None else sheet
    where = f"{path} (sheet '{name}')"
    if name not in names:
        raise SchemaError(f"{path}: no sheet named '{name}'; the workbook has sheets {names}")
    try:
        ws = workbook.get_sheet_by_name(name)
        rows = ws.to_python(skip_empty_area=False)
        merged = ws.merged_cell_ranges or []
        del ws
        workbook.close()  # the Rust-side cells are no longer needed: free them before the frame is built
    except (CalamineError, Exception) as exc:  # noqa: BLE001
        raise SchemaError(
            f"{where}: the sheet cannot be read ({_calamine_reason(exc)}); the file may be damaged or cut off: "
            "export it again, or open it in a spreadsheet program and save a copy"
        ) from None
    fmt = SourceFormat("workbook", sheet=name, header_row=header_row)
    if len(rows) < header_row:
        raise SchemaError(f"{where}: the sheet has {len(rows)} rows, so there is no header on row {header_row}")
    blocking = [(start, end) for start, end in merged if end[0] >= header_row - 1]
    if blocking:
        (r0, c0), (r1, c1) = blocking[0]
        raise SchemaError(
            f"{where}: merged cells {_cell(r0, c0)}:{_cell(r1, c1)} in the header or data rows "
            f"({len(blocking)} merged ranges); unmerge them and fill every cell, or set header_row below them"
        )
    header = [_header_text(v, i) for i, v in enumerate(rows[header_row - 1])]
    width = len(header)
    while width and header[width - 1].startswith("Unnamed: ") and all(
        _is_empty(r[width - 1]) for r in rows[header_row:] if len(r) >= width
    ):
        width -= 1  # trailing empty columns of a formatted sheet
    header = _dedupe(header[:width])
    data = rows[header_row:]
    del rows
    for i, r in enumerate(data):
        # Text cells (nearly all of an export) pass as they are; others become CSV-like text.
        data[i] = [v if type(v) is str and v else _cell_text(v) for v in r[:width]]
        if len(data[i]) < width:
            data[i].extend([None] * (width - len(data[i])))
    while data and all(v is None for v in data[-1]):
        data.pop()  # trailing empty rows of a formatted sheet
    frame = pd.DataFrame(data, columns=header, dtype=object)
    _refuse_replacement_chars(path, frame, fmt)
    return frame, fmt


def _calamine_reason(exc: Exception) -> str:
    text = str(exc).strip()
    if "password" in text.lower() or type(exc).__name__ == "PasswordError":
        return "it is password-protected; save an unprotected copy"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cell(row: int, col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{row + 1}"


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _header_text(value: Any, index: int) -> str:
    text = _cell_text(value)
    return " ".join(text.split()) if text is not None and text.strip() else f"Unnamed: {index}"


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


def _cell_text(value: Any) -> str | None:
    """A workbook cell as the text a CSV export would hold."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d") if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)
