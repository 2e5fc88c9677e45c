"""A version's enterprise table on disk: one Arrow IPC file, memory-mapped when loaded.

At national scale the table is most of a worker's memory if it is read into pandas: 10M rows are
~12 GB from Parquet (names, descriptions, ids and hashes as strings; three list columns as Python
lists), and every worker holds its own copy. Here the text columns stay in the file's pages —
zero-copy Arrow strings (``large_string``, one chunk per column, so taking rows never concatenates
chunks), read from disk only where a request touches them and shared by every worker that maps
the same version — while numbers become ordinary pandas columns and each list cell a Python list,
one object per distinct value (a universe repeats few qualification, risk-flag and tag sets).
The frame has the same columns and dtypes as the enterprise table read from Parquet.

List cells are shared between rows: treat them as read-only (nothing in the product changes a
cell in place).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from matcher import schemas as S
from matcher.index import enterprise_faiss_ids
from matcher.mapped import release_columns

ENTERPRISES_FILE = "enterprises.arrow"
_SEPARATOR = "\x1f"  # joins a list cell's values into one string to group equal cells


def _large(field: pa.Field) -> pa.Field:
    """``field`` with 64-bit offsets: one chunk of a 10M-row description column passes 2 GB."""
    if field.type == pa.string():
        return field.with_type(pa.large_string())
    if pa.types.is_list(field.type) and field.type.value_type == pa.string():
        return field.with_type(pa.large_list(pa.large_string()))
    return field


def write_enterprise_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (row ``i`` is live position ``i``) as an uncompressed Arrow IPC file with
    one record batch, keeping pandas' dtype metadata."""
    _write(pa.Table.from_pandas(frame, preserve_index=False), path)


def stage_enterprise_table(snapshot_parquet: Path, path: Path) -> pd.DataFrame:
    """A snapshot's enterprises (its Parquet file) written as a version's table at ``path`` with
    the FAISS id column first, and read back memory-mapped: the build never holds the table in
    pandas (at 10M rows ~12 GB), only its Arrow form while writing it."""
    parquet = pq.ParquetFile(snapshot_parquet)
    fields, columns = [], []
    for field in parquet.schema_arrow:  # a column at a time: one copy of the table, not two
        fields.append(_large(field))
        columns.append(parquet.read(columns=[field.name]).column(0).cast(fields[-1].type).combine_chunks())
    ids = enterprise_faiss_ids(columns[[f.name for f in fields].index(S.ENTERPRISE_ID)].to_pylist())
    schema = pa.schema([pa.field(S.FAISS_ID, pa.int64()), *fields], metadata=parquet.schema_arrow.metadata)
    _write(pa.Table.from_arrays([pa.array(ids, type=pa.int64()), *columns], schema=schema), path)
    del columns
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed pages otherwise
    return read_enterprise_table(path)


def _write(table: pa.Table, path: Path) -> None:
    table = table.cast(pa.schema([_large(f) for f in table.schema], metadata=table.schema.metadata))
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks(), max_chunksize=max(1, table.num_rows))


def read_enterprise_table(path: Path, columns: list[str] | None = None,
                          stored_lists: dict[str, tuple[np.ndarray, list]] | None = None) -> pd.DataFrame:
    """The table at ``path`` (only ``columns`` when given, in the file's order), text columns
    memory-mapped, list cells as shared Python lists (``[]`` for a missing list).

    ``stored_lists``: a list column's :func:`list_codes` saved with the version (its firm arrays,
    :func:`stored_list_codes`), so the cells are one fancy index instead of grouping every row's
    list again (4 s at 10M rows).
    """
    table = ipc.open_file(pa.memory_map(str(path))).read_all()
    if columns is not None:
        table = table.select([c for c in table.column_names if c in set(columns)])
    lists = [c for c in S.LIST_COLUMNS if c in table.column_names]
    frame = table.drop_columns(lists).to_pandas()
    for column in lists:
        stored = (stored_lists or {}).get(column)
        if stored is not None and len(stored[0]) == table.num_rows:
            codes, distinct = stored
            cells = _cell_table(distinct)[codes]
        else:
            cells = list_cells(table.column(column))
        frame.insert(table.column_names.index(column), column, cells)
    release_columns(table)  # the numbers and lists are copied into the frame; the text stays mapped
    return frame


def list_cells(column: pa.ChunkedArray) -> np.ndarray:
    """The cells of an Arrow list column as Python lists (an object array), equal cells one
    shared object (:func:`list_codes`)."""
    codes, distinct = list_codes(column)
    return _cell_table(distinct)[codes]


def _cell_table(distinct: list[list]) -> np.ndarray:
    table = np.empty(len(distinct), dtype=object)
    table[:] = [list(cell) for cell in distinct]
    return table


def list_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[list]]:
    """A code per row (int32) and the distinct cells the codes index (Python lists; a missing
    list is the empty one). Rows are grouped by Arrow (each list joined into one string, dictionary
    encoded); only one list per distinct value is made in Python (at 10M rows: seconds, not a
    minute)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(array)
    textual = pa.types.is_string(array.type.value_type) or pa.types.is_large_string(array.type.value_type)
    if n == 0 or not textual or pc.any(pc.match_substring(pc.list_flatten(array), _SEPARATOR)).as_py():
        return _list_codes_slow(array)  # no text (all lists empty), or a value holding the separator
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
    joined = pc.binary_join(array, pa.scalar(_SEPARATOR, array.type.value_type)).dictionary_encode()
    n_codes = len(joined.dictionary)
    # the empty list (and a missing one) gets the last code; no sort: codes index the dictionary
    codes = pc.fill_null(joined.indices, n_codes).to_numpy(zero_copy_only=False).astype(np.int32)
    codes[lengths == 0] = n_codes
    first = np.full(n_codes + 1, -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1)  # the first row of every code (the last write wins)
    distinct: list[list] = [[] for _ in range(n_codes + 1)]
    for code in np.flatnonzero(first[:n_codes] >= 0):
        distinct[code] = array[int(first[code])].as_py()
    return codes, distinct


def _list_codes_slow(array: pa.Array) -> tuple[np.ndarray, list[list]]:
    memo: dict[tuple, int] = {(): 0}
    codes = np.empty(len(array), dtype=np.int32)
    for i, value in enumerate(array.to_pylist()):
        key = tuple(value) if value else ()
        codes[i] = memo.setdefault(key, len(memo))
    return codes, [list(key) for key in memo]


# Per-firm arrays derived from the table (feature and filter columns), saved with a version so a
# worker maps them instead of computing them from 10M rows at every start.
FIRM_ARRAYS_DIR = "firm_arrays"
_META_FILE = "meta.json"


def write_firm_arrays(directory: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` (one ``.npy`` file each, numeric dtypes only) and ``meta`` (JSON) into
    ``directory``, a new folder of a staged version."""
    import json

    directory.mkdir()
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype == object:
            raise TypeError(f"firm array '{name}' holds Python objects; put them in the meta")
        np.save(directory / f"{name}.npy", array, allow_pickle=False)
    (directory / _META_FILE).write_text(json.dumps(meta, ensure_ascii=False, sort_keys=True))


def list_codes_to_save(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Firm arrays ``list.<column>`` (a code per row) and meta ``lists`` (the distinct cells) of
    the enterprise table at ``path``'s list columns, for :func:`read_enterprise_table`."""
    table = ipc.open_file(pa.memory_map(str(path))).read_all()
    arrays, distinct = {}, {}
    for column in (c for c in S.LIST_COLUMNS if c in table.column_names):
        arrays[f"list.{column}"], distinct[column] = list_codes(table.column(column))
    return arrays, {"lists": distinct}


def stored_list_codes(firm_arrays: tuple[dict[str, np.ndarray], dict] | None) -> dict[str, tuple[np.ndarray, list]]:
    """The list codes of :func:`list_codes_to_save` in firm arrays read back (none for a version
    saved without them)."""
    if firm_arrays is None:
        return {}
    arrays, meta = firm_arrays
    return {column: (arrays[f"list.{column}"], cells) for column, cells in meta.get("lists", {}).items()
            if f"list.{column}" in arrays}


def read_firm_arrays(directory: Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and meta of :func:`write_firm_arrays`, memory-mapped (read-only: workers share
    the pages), or None for a version published without them."""
    import json

    if not (directory / _META_FILE).is_file():
        return None
    arrays = {p.stem: np.load(p, mmap_mode="r", allow_pickle=False).view(np.ndarray)
              for p in sorted(directory.glob("*.npy"))}
    return arrays, json.loads((directory / _META_FILE).read_text())
