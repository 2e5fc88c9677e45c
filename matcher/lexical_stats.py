"""What a query's lexical statistics are computed from, saved with the lexical index: per-token
column moments of the BM25 (and TF-IDF) matrix and both matrices restricted to a fixed, evenly
spaced document sample (see :mod:`matcher.lexical_topk`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_FILE = "stats.npz"  # column moments and the fixed sample of a lexical index
_BLOCK = 1 << 24  # postings per block when a pass over the whole matrix needs temporaries


@dataclass(frozen=True)
class Postings:
    """A CSC matrix (documents x tokens): ``indices[indptr[t]:indptr[t + 1]]`` are the documents
    of token ``t``, ascending; ``data`` their scores."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray

    def column(self, token: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.indptr[token], self.indptr[token + 1]
        return self.indices[start:end], self.data[start:end]

    def df(self, tokens: np.ndarray) -> np.ndarray:
        return self.indptr[tokens + 1] - self.indptr[tokens]

    def take_rows(self, member: np.ndarray, new_row: np.ndarray) -> "Postings":
        """The rows where ``member`` is true, renumbered by ``new_row`` (a block at a time)."""
        data, indices, counts = [], [], np.zeros(len(self.indptr) - 1, dtype=np.int64)
        for c0, c1 in _column_blocks(self.indptr):
            s, e = self.indptr[c0], self.indptr[c1]
            keep = member[self.indices[s:e]]
            data.append(self.data[s:e][keep])
            indices.append(new_row[self.indices[s:e][keep]])
            kept = np.concatenate([[0], np.cumsum(keep)])
            counts[c0:c1] = kept[self.indptr[c0 + 1:c1 + 1] - s] - kept[self.indptr[c0:c1] - s]
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Postings(np.concatenate(data).astype(np.float32), np.concatenate(indices).astype(np.int32), indptr)


def _column_blocks(indptr: np.ndarray):
    """Column ranges [c0, c1) of about ``_BLOCK`` postings each."""
    n_cols, c0 = len(indptr) - 1, 0
    while c0 < n_cols:
        c1 = int(np.searchsorted(indptr, indptr[c0] + _BLOCK, side="right")) - 1
        c1 = min(max(c1, c0 + 1), n_cols)
        yield c0, c1
        c0 = c1


def _column_moments(indptr: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray | None]]
                    ) -> tuple[list[np.ndarray], np.ndarray]:
    """Per column: the sum of ``a * b`` for each (a, b) in ``pairs`` (float64; ``b`` None: of
    ``a``), and the max of the first pair's ``a``."""
    n_cols = len(indptr) - 1
    sums = [np.zeros(n_cols) for _ in pairs]
    peak = np.zeros(n_cols)
    for c0, c1 in _column_blocks(indptr):
        s, e = indptr[c0], indptr[c1]
        column = np.repeat(np.arange(c1 - c0), np.diff(indptr[c0:c1 + 1]))
        for out, (a, b) in zip(sums, pairs):
            weights = a[s:e].astype(np.float64)
            out[c0:c1] = np.bincount(column, weights=weights if b is None else weights * b[s:e], minlength=c1 - c0)
        starts = indptr[c0:c1] - s
        nonempty = np.diff(indptr[c0:c1 + 1]) > 0
        if e > s:
            peak[c0:c1][nonempty] = np.maximum.reduceat(pairs[0][0][s:e], starts[nonempty])
    return sums, peak


def sample_rows(n: int, size: int) -> np.ndarray:
    """The fixed sample: ``size`` evenly spaced documents of ``n`` (all of them when n <= size)."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return (np.arange(size, dtype=np.int64) * n) // size


@dataclass
class LexicalStats:
    """What a query's statistics are computed from: per-token column moments of the BM25 matrix
    ``b`` and the TF-IDF matrix ``c`` (sums, sums of squares, sum of products, maxima) and both
    matrices restricted to a fixed document sample."""

    n: int
    rows: np.ndarray  # sample positions, ascending
    b1: np.ndarray
    b2: np.ndarray
    bmax: np.ndarray
    sample_b: Postings
    c1: np.ndarray | None = None
    c2: np.ndarray | None = None
    bc: np.ndarray | None = None
    cmax: np.ndarray | None = None
    sample_c: Postings | None = None

    @classmethod
    def build(cls, n: int, b: Postings, c: Postings | None = None, size: int = 65_536) -> "LexicalStats":
        """Moments of every column and the sample's rows of ``b`` (and ``c``, same pattern)."""
        # bm25s may list a token without postings ("") past its last column; the TF-IDF matrix
        # then has one more, empty, column.
        if c is not None and not (np.array_equal(b.indptr, c.indptr[:len(b.indptr)]) and (c.indptr[len(b.indptr):] == b.indptr[-1]).all()):
            raise ValueError("the TF-IDF matrix must have the BM25 matrix's postings (same tokens, same documents)")
        rows = sample_rows(n, size)
        member = np.zeros(n, dtype=bool)
        member[rows] = True
        new_row = np.zeros(n, dtype=np.int32)
        new_row[rows] = np.arange(len(rows), dtype=np.int32)
        if c is None:
            (b1, b2), bmax = _column_moments(b.indptr, [(b.data, None), (b.data, b.data)])
            return cls(n, rows, b1, b2, bmax, b.take_rows(member, new_row))
        (b1, b2, bc), bmax = _column_moments(b.indptr, [(b.data, None), (b.data, b.data), (b.data, c.data)])
        (c1, c2), cmax = _column_moments(c.indptr, [(c.data, None), (c.data, c.data)])
        return cls(n, rows, b1, b2, bmax, b.take_rows(member, new_row), c1, c2, bc, cmax, c.take_rows(member, new_row))

    def save(self, path: Path) -> None:
        arrays = {"n": np.asarray(self.n), "rows": self.rows, "b1": self.b1, "b2": self.b2, "bmax": self.bmax,
                  **_flat("sample_b", self.sample_b)}
        if self.sample_c is not None:
            arrays.update(c1=self.c1, c2=self.c2, bc=self.bc, cmax=self.cmax, **_flat("sample_c", self.sample_c))
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> "LexicalStats":
        with np.load(path) as saved:
            get = {k: saved[k] for k in saved.files}
        c = {k: get[k] for k in ("c1", "c2", "bc", "cmax")} if "c1" in get else {}
        return cls(int(get["n"]), get["rows"], get["b1"], get["b2"], get["bmax"], _unflat("sample_b", get),
                   **c, sample_c=_unflat("sample_c", get) if "c1" in get else None)


def _flat(name: str, p: Postings) -> dict:
    return {f"{name}_data": p.data, f"{name}_indices": p.indices, f"{name}_indptr": p.indptr}


def _unflat(name: str, arrays: dict) -> Postings:
    return Postings(arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"])
