"""Cosine of sublinear TF-IDF vectors: the second lexical signal of a Chinese query
(:meth:`matcher.lexical.LexicalIndex.relevance`, measured in benchmarks/RESULTS.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TfidfCosine:
    """Cosine of sublinear TF-IDF vectors over the lexical index's tokens and vocabulary.

    Documents: ``(1 + log tf) * idf``, L2-normalised, with the smoothed ``idf = log((1 + n) / (1 +
    df)) + 1``; stored column-major (one column per token), so a query reads only its tokens'
    columns. A query is weighted the same way; its norm is left out (it does not change the
    order or the standardised score).
    """

    def __init__(self, matrix, idf: np.ndarray):
        self.matrix = matrix  # scipy.sparse.csc_matrix (n_docs, n_tokens), float32
        self.idf = idf  # (n_tokens,), float32

    @classmethod
    def build(cls, tokens: list[list[str]], vocab: dict[str, int]) -> "TfidfCosine":
        from collections import Counter

        from scipy import sparse

        rows, cols, values = [], [], []
        for i, doc in enumerate(tokens):
            counts = Counter(vocab[t] for t in doc if t in vocab)
            rows.extend([i] * len(counts))
            cols.extend(counts.keys())
            values.extend(counts.values())
        shape = (len(tokens), max(vocab.values(), default=-1) + 1)
        matrix = sparse.csr_matrix((np.asarray(values, np.float32), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                                   shape=shape)
        df = np.bincount(matrix.indices, minlength=shape[1])
        idf = (np.log((1 + shape[0]) / (1 + df)) + 1).astype(np.float32)
        matrix.data = (1 + np.log(matrix.data)) * idf[matrix.indices]
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        matrix = sparse.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-12), 0).astype(np.float32)) @ matrix
        return cls(matrix.tocsc().astype(np.float32), idf)

    def scores(self, tokens: list[str], vocab: dict[str, int]) -> np.ndarray:
        """Cosine of every document with the query ``tokens``, shape (n_docs,), float32."""
        from collections import Counter

        counts = Counter(vocab[t] for t in tokens if t in vocab)
        if not counts:
            return np.zeros(self.matrix.shape[0], dtype=np.float32)
        columns = np.fromiter(counts.keys(), dtype=np.int64)
        weights = (1 + np.log(np.fromiter(counts.values(), dtype=np.float32))) * self.idf[columns]
        return np.asarray(self.matrix[:, columns] @ weights, dtype=np.float32).ravel()

    def save(self, path: Path) -> None:
        m = self.matrix
        with open(path, "wb") as handle:
            np.savez(handle, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.asarray(m.shape), idf=self.idf)

    @classmethod
    def load(cls, path: Path) -> "TfidfCosine":
        from scipy import sparse

        with np.load(path) as saved:
            matrix = sparse.csc_matrix((saved["data"], saved["indices"], saved["indptr"]), shape=tuple(saved["shape"]))
            return cls(matrix, saved["idf"])
