"""Memory-mapped arrays read in passes without the whole file staying in the process's memory.

A pass over a version's 15 GB ``vectors.npy`` (10M firms) leaves every page it read mapped into
the process: its resident set grows by the file's size although the kernel could drop those pages
at any time. ``release`` tells the kernel (``madvise(MADV_DONTNEED)``) that the process is done
with a range of rows: the pages leave the process's resident set and stay in the page cache, so
reading them again costs a minor fault, not a disk read. Only for shared mappings (``np.load(...,
mmap_mode="r")``, ``np.lib.format.open_memmap``), whose written pages belong to the file: a
private copy-on-write mapping (mode ``"c"``) would lose its changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap

import numpy as np

_PAGE = mmap.PAGESIZE


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release(array: np.ndarray, start: int = 0, stop: int | None = None) -> bool:
    """Drop rows ``[start, stop)`` of a memory-mapped ``array`` (C-contiguous rows) from this
    process's resident pages; whether it could (False: not a shared file mapping)."""
    mapping = _mapping(array)
    if mapping is None or not array.flags.c_contiguous or not hasattr(mapping, "madvise"):
        return False
    stop = len(array) if stop is None else min(stop, len(array))
    if stop <= start:
        return True
    row_bytes = array.strides[0] if array.ndim else array.itemsize
    origin = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    first = array.ctypes.data - origin + start * row_bytes
    last = array.ctypes.data - origin + stop * row_bytes
    first -= first % _PAGE  # whole pages only: the neighbours' rows are read again on demand
    last = min(last + (-last % _PAGE), len(mapping))
    mapping.madvise(mmap.MADV_DONTNEED, first, last - first)
    return True


def passes(array: np.ndarray, chunk: int):
    """``(start, rows)`` chunks of ``array`` in order, each chunk released once the caller has
    used it (the next iteration): a pass over a memory-mapped array in bounded resident memory."""
    for start in range(0, len(array), chunk):
        yield start, array[start:start + chunk]
        release(array, start, start + chunk)


def gather(array: np.ndarray, rows: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """``array[rows]`` (``rows`` ascending) as a new array, read ``chunk`` rows at a time, the span
    of each chunk released after it is copied: gathering the ~1M local partners of a 10M universe
    otherwise maps nearly every page of the file (neighbouring rows share pages)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), *array.shape[1:]), dtype=array.dtype)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        out[start:start + len(part)] = array[part]
        release(array, int(part.min()), int(part.max()) + 1)
    return out


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _file_mapped(address: int) -> bool:
    """Whether ``address`` lies in a mapping of a file of this process (``/proc/self/maps``)."""
    with open("/proc/self/maps") as handle:
        for line in handle:
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                return len(fields) >= 6 and fields[5].startswith("/")
    return False


def _drop(first: int, last: int) -> bool:
    """``madvise(MADV_DONTNEED)`` over the whole pages holding addresses ``[first, last)`` of a
    file mapping (a neighbour's bytes on those pages are read again on demand)."""
    first -= first % _PAGE
    last += -last % _PAGE
    return _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), mmap.MADV_DONTNEED) == 0


def release_text(values, start: int, stop: int) -> bool:
    """Drop the pages of rows ``[start, stop)`` (their text and offsets) of an Arrow string column
    that is memory-mapped from a file (a version's ``enterprises.arrow``) from this process's
    resident set, as :func:`release` does for arrays; whether it could. ``values``: a pyarrow string array with one chunk, or a
    pandas column backed by one. A column in ordinary memory is left alone (dropping its pages
    would lose them)."""
    import pyarrow as pa

    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(getattr(values, "array", values))
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks != 1:
            return False
        array = array.chunk(0)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return False
    stop = min(stop, len(array))
    if stop <= start:
        return True
    _, offsets, data = array.buffers()
    if data is None or not _file_mapped(data.address):
        return False
    kind = np.int64 if pa.types.is_large_string(array.type) else np.int32
    ends = np.frombuffer(offsets, dtype=kind)[array.offset:]
    width = np.dtype(kind).itemsize
    text = _drop(data.address + int(ends[start]), data.address + int(ends[stop]))
    return _drop(offsets.address + (array.offset + start) * width, offsets.address + (array.offset + stop + 1) * width) \
        and text


def release_columns(table) -> int:
    """Drop every page of ``table``'s columns (a pyarrow Table memory-mapped from a file) that are
    not text from this process's resident set; how many buffers were released. For columns that
    were copied out (``to_pandas`` copies numbers): their mapped pages otherwise stay resident in
    every worker for as long as the table is open (~2 GB at 10M rows). Text columns, read lazily
    from the mapping, are left as they are; a table in ordinary memory is left alone."""
    import pyarrow as pa

    with open("/proc/self/maps") as handle:
        files = [tuple(int(x, 16) for x in fields[0].split("-"))
                 for fields in (line.split() for line in handle) if len(fields) >= 6 and fields[5].startswith("/")]
    released = 0
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            continue
        for chunk in column.chunks:
            for buffer in chunk.buffers():
                if buffer is None or buffer.size == 0:
                    continue
                if not any(low <= buffer.address and buffer.address + buffer.size <= high for low, high in files):
                    continue
                released += _drop(buffer.address, buffer.address + buffer.size)
    return released


def release_text_columns(frame) -> None:
    """:func:`release_text` over every row of each Arrow-backed string column of a pandas
    ``frame`` (a version's enterprise table): after a pass that read rows all over the file, such
    as taking a tenth of the rows, which touches most of its text pages."""
    import pandas as pd

    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.StringDtype):
            release_text(frame[column], 0, len(frame))


def take_rows(frame, rows: np.ndarray, chunk: int = 65_536):
    """``frame.iloc[rows]`` (``rows`` ascending) taken ``chunk`` rows at a time, the text pages of
    each chunk's span released once its rows are copied (:func:`release_text`): taking a tenth of
    a 10M-row table's rows, spread all over the file, otherwise maps most of its text (4.4 GB) at
    once."""
    import pandas as pd

    rows = np.asarray(rows, dtype=np.int64)
    text = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
    parts = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        parts.append(frame.iloc[part])
        for column in text:
            release_text(frame[column], int(part[0]), int(part[-1]) + 1)
    if len(rows):  # the kernel maps the cached pages around a read, past a chunk's own span
        for column in text:
            release_text(frame[column], int(rows[0]), int(rows[-1]) + 1)
    return pd.concat(parts) if len(parts) > 1 else (parts[0] if parts else frame.iloc[rows])
