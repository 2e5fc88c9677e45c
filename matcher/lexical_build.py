"""Building the lexical index from texts in chunks, in memory that grows with the postings only.

``bm25s.BM25.index`` takes every document's tokens at once: a list of Python strings per
document, ~1.7 GB per million profiles before the index exists (17 GB at 10M). Here each chunk of
texts is tokenised, its tokens turned into ids against one growing vocabulary (first occurrence
order, so the same corpus gives the same ids on every run) and kept only as compact arrays: per
document its number of distinct tokens and length, per (document, token) pair the token id and
count. When every chunk is read, the global statistics (document frequencies, mean length) are
known, and a second pass over the kept pairs writes the column-major matrices in place — the
BM25 scores exactly as ``bm25s`` computes them (Lucene idf and term frequency, float32), and for
Chinese corpora the TF-IDF cosine weights of :class:`matcher.lexical_tfidf.TfidfCosine`.

The matrices are written as the pairs are freed (a chunk at a time), so peak memory is about the
larger of the pairs (6 bytes each) and the finished matrices (8 bytes per posting, 12 with the
TF-IDF weights, which share the BM25 matrix's indices), not their sum.
A token's count in one document is kept up to 65,535 (BM25's term weight has long saturated).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import bm25s
import numpy as np

from matcher.lexical_tfidf import TfidfCosine

CHUNK_TEXTS = 50_000


@dataclass
class Pairs:
    """The (document, token) pairs of a corpus, chunk by chunk, documents in order."""

    vocab: dict[str, int] = field(default_factory=dict)
    distinct: list[np.ndarray] = field(default_factory=list)  # per chunk: distinct tokens per document
    lengths: list[np.ndarray] = field(default_factory=list)  # per chunk: tokens per document
    tokens: list[np.ndarray] = field(default_factory=list)  # per chunk: token id of each pair
    counts: list[np.ndarray] = field(default_factory=list)  # per chunk: count of each pair

    def add(self, documents: list[list[str]]) -> None:
        vocab = self.vocab
        ids = [np.fromiter((vocab.setdefault(t, len(vocab)) for t in doc), dtype=np.int64, count=len(doc))
               for doc in documents]
        lengths = np.fromiter((len(d) for d in ids), dtype=np.int64, count=len(ids))
        doc = np.repeat(np.arange(len(ids), dtype=np.int64), lengths)
        flat = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        keys, counts = np.unique((doc << 32) | flat, return_counts=True)  # sorted by document, then token
        self.distinct.append(np.bincount((keys >> 32).astype(np.int64), minlength=len(ids)).astype(np.int32))
        self.lengths.append(lengths.astype(np.int32))
        self.tokens.append((keys & 0xFFFF_FFFF).astype(np.int32))
        self.counts.append(np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16))

    @property
    def num_docs(self) -> int:
        return int(sum(len(d) for d in self.distinct))

    def document_frequencies(self) -> np.ndarray:
        df = np.zeros(len(self.vocab), dtype=np.int64)
        for tokens in self.tokens:
            df += np.bincount(tokens, minlength=len(self.vocab))
        return df

    def column_major(self, df: np.ndarray, values: Callable[[np.ndarray, np.ndarray, np.ndarray], list[np.ndarray]],
                     n_values: int = 1) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """CSC arrays over (documents, vocabulary) with ``values(doc, tokens, counts)`` per pair:
        ``n_values`` float32 data arrays (one per array ``values`` returns), sharing one int32 ``indices`` and
        int64 ``indptr``; documents ascending within each column.

        Consumes the pairs, a chunk at a time: the matrices are written column by column in
        document order, so the pages they hold grow as the pairs they are made from are freed.
        """
        indptr = np.zeros(len(df) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        cursor = indptr[:-1].copy()
        datas = [np.empty(int(indptr[-1]), dtype=np.float32) for _ in range(n_values)]
        indices = np.empty(int(indptr[-1]), dtype=np.int32)
        first = 0
        while self.tokens:
            distinct, tokens, counts = self.distinct.pop(0), self.tokens.pop(0), self.counts.pop(0)
            doc = np.repeat(np.arange(first, first + len(distinct), dtype=np.int64), distinct)
            order = np.argsort(tokens, kind="stable")  # by token; documents stay ascending
            by_token = tokens[order]
            starts = np.flatnonzero(np.r_[True, by_token[1:] != by_token[:-1]])
            rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
            where = cursor[by_token] + rank
            for data, column in zip(datas, values(doc, tokens, counts), strict=True):
                data[where] = column[order]
            indices[where] = doc[order]
            np.add.at(cursor, by_token[starts], np.diff(np.r_[starts, len(order)]))
            first += len(distinct)
        return datas, indices, indptr


def read_pairs(texts: Sequence[str], tokenize: Callable[[list[str]], list[list[str]]],
               is_chinese: Callable[[str], bool], progress: Callable[[int], None] | None = None) -> tuple[Pairs, bool]:
    """The pairs of ``texts`` (read ``CHUNK_TEXTS`` at a time), and whether any text
    ``is_chinese``."""
    pairs, chinese = Pairs(), False
    for start in range(0, len(texts), CHUNK_TEXTS):
        chunk = list(texts[start:start + CHUNK_TEXTS])
        chinese = chinese or any(is_chinese(t) for t in chunk)
        pairs.add(tokenize(chunk))
        if hasattr(texts, "release"):  # texts read from memory-mapped columns (snapshot.ProfileTexts)
            texts.release(start, start + len(chunk))
        if progress is not None:
            progress(len(chunk))
    return pairs, chinese


def lexical_matrices(pairs: Pairs, df: np.ndarray, k1: float, b: float, chinese: bool
                     ) -> tuple[bm25s.BM25, TfidfCosine | None]:
    """A ``bm25s.BM25`` (Lucene variant) over the pairs, as ``BM25(k1, b).index(tokens)`` makes it
    (the vocabulary in first-occurrence order, the empty token last), and for a Chinese corpus
    (``chinese``) :meth:`TfidfCosine.build` of the same tokens over the same postings; the two
    matrices share their ``indices``. Consumes the pairs (:meth:`Pairs.column_major`)."""
    from scipy import sparse

    n = pairs.num_docs
    lengths = np.concatenate(pairs.lengths) if pairs.lengths else np.zeros(0, np.int32)
    avg_len = float(lengths.mean()) if n else float("nan")
    idf = np.zeros(len(df), dtype=np.float32)
    seen = df > 0
    idf[seen] = [math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in df[seen]]
    # per document k1 * ((1 - b) + b * l_d / l_avg); bm25s computes the score in float64 (its mean
    # length is a numpy float64) and stores it as float32, as here
    norms = k1 * ((1 - b) + b * lengths.astype(np.float64) / avg_len)
    del lengths
    vocab = dict(pairs.vocab)
    if "" not in vocab:
        vocab[""] = max(vocab.values(), default=-1) + 1
    n_tokens = len(vocab)
    weight, tfidf_idf = tfidf_weights(pairs, df, n_tokens) if chinese else (None, None)

    def values(doc: np.ndarray, tokens: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
        tf = counts.astype(np.float64)
        out = [(idf[tokens] * (tf / (norms[doc] + tf))).astype(np.float32)]
        if weight is not None:
            out.append(weight(doc, tokens, counts))
        return out

    datas, indices, indptr = pairs.column_major(df, values, 1 if weight is None else 2)
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.scores = {"data": datas[0], "indices": indices, "indptr": indptr, "num_docs": n}
    retriever.vocab_dict = vocab
    retriever.unique_token_ids_set = set(vocab.values())
    retriever.nonoccurrence_array = None
    if weight is None:
        return retriever, None
    tfidf_indptr = np.concatenate([indptr, np.full(n_tokens + 1 - len(indptr), indptr[-1], dtype=np.int64)])
    matrix = sparse.csc_matrix((datas[1], indices, tfidf_indptr), shape=(n, n_tokens))
    return retriever, TfidfCosine(matrix, tfidf_idf)


def tfidf_weights(pairs: Pairs, df: np.ndarray, n_tokens: int
                  ) -> tuple[Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], np.ndarray]:
    """The weight of each (document, token, count) in :meth:`TfidfCosine.build` of the pairs over
    ``n_tokens`` columns (the vocabulary with its empty token), and that matrix's idf."""
    n = pairs.num_docs
    df = np.concatenate([df, np.zeros(n_tokens - len(df), dtype=np.int64)])
    idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
    squares = np.zeros(n, dtype=np.float32)
    first = 0
    for distinct, tokens, counts in zip(pairs.distinct, pairs.tokens, pairs.counts):
        weights = (1 + np.log(counts.astype(np.float32))) * idf[tokens]
        doc = np.repeat(np.arange(len(distinct)), distinct)
        squares[first:first + len(distinct)] = np.bincount(doc, weights=weights.astype(np.float64) ** 2,
                                                           minlength=len(distinct))
        first += len(distinct)
    norms = np.sqrt(squares)
    scale = np.where(norms > 0, 1 / np.maximum(norms, 1e-12), 0).astype(np.float32)

    def weight(doc: np.ndarray, tokens: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return (1 + np.log(counts.astype(np.float32))) * idf[tokens] * scale[doc]

    return weight, idf
