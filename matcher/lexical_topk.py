"""Lexical relevance of one query without scoring the whole corpus (10M profiles and more).

Retrieval fuses BM25 with the dense signal by z-scores (:func:`matcher.retrieval.fuse`), which
needs the query's mean and standard deviation over every document, and the lexical top
``depth``. Scoring all n documents for that costs ~9 ms per query at 1M and grows with n. Here:

- **Statistics** (:class:`LexicalStats`, saved with the index): the mean is exact, from column
  sums. The second moment is exact for each term alone (column sums of squares) and, for pairs
  with a rare term (one the fixed sample would hold fewer than ``RARE_SAMPLE_HITS`` documents
  of), exact over the rare terms' postings; only the co-occurrence of common terms is estimated,
  from a fixed, evenly spaced sample of documents chosen at build. A corpus no larger than the
  sample gets exact statistics. (A sample alone would give a query of rare words a spread of 0 or
  a few hits, and so a lexical signal of 0 or far too loud.)
- **Top-k** (:meth:`EstimatedRelevance.top`): MaxScore over the query's postings. Terms are
  taken in order of their largest possible contribution; the documents of the first ("essential")
  terms are scored exactly, and a document without any essential term cannot reach the current
  ``depth``-th best score once the other terms' largest contributions sum below it. Exact. A
  query whose postings outnumber ``FULL_SCAN_SHARE`` of the documents is scored in full instead
  (still with the saved statistics, so no pass over n for the mean and spread).
- **Rows** (:meth:`EstimatedRelevance.rows`): exact scores of given documents, by looking each up
  in the query's postings (BM25 summed in the query's token order in float32, as ``bm25s`` does,
  so an English query's scores are bit-identical to a full scoring).

The loops over postings are compiled with numba where it is installed (:mod:`matcher.lexical_kernels`;
numpy otherwise, same results): in numpy each posting costs about ten fancy-indexing passes.

Up to ``lexical_exact_max`` documents the full scoring stays (:class:`ExactRelevance`). Measured
(benchmarks/bench_lexical_scale.py, benchmarks/RESULTS.md): the fused top 20 agrees with full
scoring (≥ 0.95 overlap on every query), but on the development machine this path is not yet
faster than full scoring up to 10M documents (the postings of a long need's essential terms are
many, the per-term maxima loose), so the default threshold keeps full scoring at every measured
size; block-max bounds are the next step.
"""

from __future__ import annotations

import threading

import numpy as np

from matcher.index import top_k
from matcher.lexical_kernels import gather, values_at
from matcher.lexical_stats import SAMPLE_FILE, LexicalStats, Postings  # noqa: F401  (SAMPLE_FILE re-exported)

RARE_SAMPLE_HITS = 16  # a term the sample would hold fewer documents of counts as rare
# Postings (as a share of the documents) above which a query's top-k scores every document
# instead: MaxScore reads ~10-30 % of the postings at ~5x the cost of a plain scatter, a full
# scoring pays ~4 passes over n (benchmarks/bench_lexical_scale.py).
FULL_SCAN_SHARE = 0.25


def lexical_top(relevance: np.ndarray, allowed: np.ndarray, depth: int, stride: int = 64) -> np.ndarray:
    """Positions of the ``depth`` best allowed documents with a positive score, best first.

    Ranks only the documents at or above a threshold estimated from a strided sample (about
    ``4 * depth`` allowed documents expected above it) instead of partitioning all n scores.
    Exact: when at least ``depth`` allowed documents reach the threshold, the best ``depth`` are
    among them; otherwise every positive-score document is ranked.
    """
    share = np.count_nonzero(allowed) / max(1, len(relevance))
    sample = relevance[::stride]
    above = int(4 * depth / max(share, 1e-9) / stride) + 1
    if above < len(sample):
        threshold = np.partition(sample, len(sample) - above)[len(sample) - above]
        if threshold > 0:
            candidates = np.flatnonzero(relevance >= threshold)
            candidates = candidates[allowed[candidates]]
            if len(candidates) >= depth:
                return candidates[top_k(relevance[candidates], depth)]
    matched = np.flatnonzero(relevance > 0)
    matched = matched[allowed[matched]]
    return matched[top_k(relevance[matched], depth)]


class ExactRelevance:
    """A query's relevance of every document, computed in full (small corpora)."""

    def __init__(self, relevance: np.ndarray):
        self.relevance = relevance
        self.mean, self.sd = float(relevance.mean()), float(relevance.std())

    def rows(self, rows: np.ndarray) -> np.ndarray:
        return self.relevance[np.asarray(rows, dtype=np.int64)]

    def top(self, allowed: np.ndarray, depth: int) -> np.ndarray:
        return lexical_top(self.relevance, allowed, depth)


def _lookup(rows: np.ndarray, docs: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the sorted ``rows`` meet one sorted postings list: (positions in ``rows``, values)."""
    if len(docs) <= len(rows):  # walk the shorter side
        at = np.searchsorted(rows, docs)
        hit = at < len(rows)
        hit[hit] = rows[at[hit]] == docs[hit]
        return at[hit], values[hit]
    at = np.minimum(np.searchsorted(docs, rows), len(docs) - 1)
    hit = np.flatnonzero(docs[at] == rows)
    return hit, values[at[hit]]


class EstimatedRelevance:
    """A query's lexical relevance without scoring every document (see the module docstring).

    English (or no TF-IDF): relevance is BM25, ``b(d) = sum of the query tokens' BM25``. Chinese
    with a TF-IDF cosine ``c``: ``(z(b) + z(c)) / sd(z(b) + z(c))``, as
    :meth:`matcher.lexical.LexicalIndex.relevance`, with the statistics of :class:`LexicalStats`.
    ``mean`` / ``sd``: the relevance's over the corpus (0 / 1 for the Chinese form).
    """

    def __init__(self, stats: LexicalStats, b: Postings, token_ids: list[int], c: Postings | None = None,
                 idf: np.ndarray | None = None):
        self.stats, self.b, self.n = stats, b, stats.n
        self.token_ids = np.asarray(token_ids, dtype=np.int64)  # query order, repeats kept (as bm25s)
        self.terms, counts = np.unique(self.token_ids, return_counts=True)
        self.c = c if c is not None and len(self.terms) else None
        weights = [counts.astype(np.float64)]
        if self.c is not None:
            weights.append((1 + np.log(counts)) * idf[self.terms].astype(np.float64))
        self.weights = weights
        mean, second = self._moments()
        var = np.maximum(np.diag(second) - mean ** 2, 0.0)
        sd = np.sqrt(var)
        if self.c is None:
            self.mean, self.sd = float(mean[0]), float(sd[0])
            self.scale, self.shift = np.array([1.0]), 0.0
            return
        # z(b) + z(c), standardised: its spread is sqrt(2 + 2 rho) (1 when one part is constant).
        scale = np.where(sd > 0, 1 / np.where(sd > 0, sd, 1), 0.0)
        cov = second[0, 1] - mean[0] * mean[1]
        spread = np.sqrt(max(float((scale ** 2 * var).sum() + 2 * scale[0] * scale[1] * cov), 0.0))
        self.scale = scale / spread if spread > 0 else np.zeros(2)
        self.shift = -float((self.scale * mean).sum())
        self.mean, self.sd = 0.0, 1.0 if spread > 0 else 0.0

    # --- statistics ---------------------------------------------------------------------------

    def _signals(self) -> list[tuple[Postings, np.ndarray]]:
        return [(self.b, self.weights[0])] + ([(self.c, self.weights[1])] if self.c is not None else [])

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (s,) and second moment (s, s) over the corpus of each signal (BM25, TF-IDF)."""
        st, terms, k = self.stats, self.terms, len(self.weights)
        sums = [st.b1] + ([st.c1] if k > 1 else [])
        mean = np.array([(w * s[terms]).sum() / self.n for w, s in zip(self.weights, sums)])
        if not len(terms):
            return mean, np.zeros((k, k))
        cross = {(0, 0): st.b2, (1, 1): st.c2, (0, 1): st.bc}
        rare = self.b.df(terms) * len(st.rows) < RARE_SAMPLE_HITS * self.n
        common = ~rare
        second = np.zeros((k, k))
        for i in range(k):
            for j in range(i, k):
                second[i, j] = (self.weights[i] * self.weights[j] * cross[i, j][terms])[common].sum()
        # Over the rare terms' documents, exactly: every pair of terms.
        docs = _union([self.b.column(t)[0] for t in terms[rare]])
        if len(docs):
            part = self._signal_rows(docs, common)
            whole = part + self._signal_rows(docs, rare)
            second += _products(whole) - _products(part)
        # Co-occurring common terms: from the sample.
        if common.any():
            m = len(st.rows)
            samples = [st.sample_b] + ([st.sample_c] if k > 1 else [])
            values, diagonal = np.zeros((k, m)), np.zeros((k, k))
            for u in np.flatnonzero(common):
                parts = []
                for i, (sample, w) in enumerate(zip(samples, self.weights)):
                    docs_u, data_u = sample.column(terms[u])
                    parts.append(w[u] * data_u.astype(np.float64))
                    values[i, docs_u] += parts[-1]
                diagonal += _products(np.array(parts))
            second += (_products(values) - diagonal) * (self.n / m)
        second = np.triu(second) + np.triu(second, 1).T
        return mean, second / self.n

    def _signal_rows(self, rows: np.ndarray, use: np.ndarray) -> np.ndarray:
        """Each signal (float64, shape (s, len(rows))) at sorted unique ``rows``, summed over the
        query terms where ``use``."""
        out = np.zeros((len(self.weights), len(rows)))
        for u in np.flatnonzero(use):
            for i, (postings, w) in enumerate(self._signals()):
                out[i] += w[u] * self._at_rows(rows, *postings.column(self.terms[u]))
        return out

    def _at_rows(self, rows: np.ndarray, docs: np.ndarray, values: np.ndarray) -> np.ndarray:
        """One postings list's ``values`` at the sorted ``rows`` (0 where absent), float64: by
        binary search when the list is much longer than ``rows``, else through the dense
        per-thread array (a scatter and a gather, no search); compiled where numba is installed."""
        compiled = values_at(rows, docs, values)
        if compiled is not None:
            return compiled
        if len(docs) > 16 * len(rows):
            out = np.zeros(len(rows))
            at, found = _lookup(rows, docs, values)
            out[at] = found
            return out
        total = _scratch(self.n)
        total[docs] = values
        out = total[rows]
        total[docs] = 0.0
        return out

    # --- scores of given rows -----------------------------------------------------------------

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Exact relevance of documents ``rows`` (any order, repeats allowed), float32."""
        rows = np.asarray(rows, dtype=np.int64)
        unique, back = np.unique(rows, return_inverse=True)
        return self._rows_sorted(unique)[back]

    def _rows_sorted(self, rows: np.ndarray) -> np.ndarray:
        if self.c is None:
            # BM25 as bm25s sums it: float32, token by token in the query's order.
            contribution = {}
            for t in self.terms:
                contribution[t] = self._at_rows(rows, *self.b.column(t)).astype(np.float32)  # float32 values, exact
            out = np.zeros(len(rows), dtype=np.float32)
            for t in self.token_ids:
                out += contribution[t]
            return out
        signals = self._signal_rows(rows, np.ones(len(self.terms), bool))
        return (self.scale @ signals + self.shift).astype(np.float32)

    # --- top-k ---------------------------------------------------------------------------------

    def _bounds(self) -> np.ndarray:
        """Largest relevance contribution of each query term (before the shift)."""
        peaks = [self.stats.bmax] + ([self.stats.cmax] if self.c is not None else [])
        return sum(s * w * p[self.terms] for s, w, p in zip(self.scale, self.weights, peaks))

    def top(self, allowed: np.ndarray, depth: int) -> np.ndarray:
        """Positions of the ``depth`` best allowed documents with a positive relevance, best first
        (ties: lower position first), as :func:`lexical_top` over the full relevance."""
        if not len(self.terms) or not self.scale.any():
            return np.zeros(0, dtype=np.int64)
        if self.b.df(self.terms).sum() > FULL_SCAN_SHARE * self.n:
            return lexical_top(self._full(), allowed, depth)
        bounds = self._bounds()
        order = np.argsort(-bounds, kind="stable")
        cumulative = np.cumsum(self.b.df(self.terms[order]))
        share = max(np.count_nonzero(allowed) / max(1, self.n), 1e-9)
        essential = min(int(np.searchsorted(cumulative, max(4 * depth / share, 1024.0))) + 1, len(order))
        while True:
            rest = float(bounds[order[essential:]].sum())
            slack = 1e-5 * (abs(rest) + abs(self.shift)) + 1e-6  # float32 sums against float64 bounds
            docs, partial = self._partial(order[:essential], allowed, depth, rest + slack)
            remaining = rest
            for u in order[essential:]:  # MaxScore: add the other terms, pruning as the bound tightens
                if len(docs) > depth:  # the depth-th best partial score is a lower bound of the answer's
                    floor = np.partition(partial, len(partial) - depth)[len(partial) - depth]
                    keep = partial + remaining + slack >= floor
                    docs, partial = docs[keep], partial[keep]
                partial += self._term_rows(docs, u)
                remaining -= float(bounds[u])
            scores = self._rows_sorted(docs) if self.c is None else partial.astype(np.float32)
            positive = scores > 0
            docs, scores = docs[positive], scores[positive]
            if essential == len(order):
                return docs[top_k(scores, depth)]
            if len(docs) >= depth:
                kth = np.partition(scores, len(scores) - depth)[len(scores) - depth]
                reach = np.append(np.cumsum(bounds[order][::-1])[::-1], 0.0) + slack < kth - self.shift
                if reach[essential]:  # no document outside the essential terms' can reach the kth
                    return docs[top_k(scores, depth)]
                essential = max(essential + 1, int(np.argmax(reach)))  # enough unless kth was too low
            else:
                essential = min(len(order), max(essential + 1, int(np.searchsorted(cumulative, 2 * cumulative[essential - 1])) + 1))

    def _full(self) -> np.ndarray:
        """The relevance of every document (float32), for a query whose postings are too many for
        MaxScore to pay: scattered term by term as bm25s does (English: the same values)."""
        out = np.zeros(self.n, dtype=np.float32)
        if self.c is None:
            for t in self.token_ids:
                docs, values = self.b.column(t)
                out[docs] += values
            return out
        for u, t in enumerate(self.terms):
            docs, values = self.b.column(t)
            out[docs] += self.scale[0] * self.weights[0][u] * values + self.scale[1] * self.weights[1][u] * self.c.column(t)[1]
        out += np.float32(self.shift)
        return out

    def _term_rows(self, rows: np.ndarray, u: int) -> np.ndarray:
        """Relevance contribution (float64) of query term ``u`` to each of the sorted ``rows``."""
        out = np.zeros(len(rows))
        for scale, (postings, w) in zip(self.scale, self._signals()):
            out += scale * w[u] * self._at_rows(rows, *postings.column(self.terms[u]))
        return out

    def _partial(self, use: np.ndarray, allowed: np.ndarray, depth: int, rest: float) -> tuple[np.ndarray, np.ndarray]:
        """The allowed documents of the query terms ``use`` that may still reach the top
        ``depth`` with at most ``rest`` from the other terms (sorted, distinct), and their relevance
        from the terms ``use`` alone (float64), through a dense per-thread accumulator
        (:func:`matcher.lexical_kernels.gather`); only those that may reach the top are sorted."""
        terms = self.terms[use]
        weights = self.scale[0] * self.weights[0][use]
        if self.c is None:
            data2, weights2 = self.b.data, np.zeros(len(use))
        else:
            data2, weights2 = self.c.data, self.scale[1] * self.weights[1][use]
        docs, values = gather(self.b.indptr, self.b.indices, self.b.data, data2, terms, weights, weights2, allowed,
                              _scratch(self.n), float(self.shift), float(rest))
        if len(values) > depth:
            docs, values = _kept(docs, values, values + rest >= np.partition(values, len(values) - depth)[len(values) - depth])
        order = np.argsort(docs)
        return docs[order], values[order]


def _kept(docs: np.ndarray, values: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return docs[keep], values[keep]


_LOCAL = threading.local()


def _scratch(n: int) -> np.ndarray:
    """A per-thread float64 array of ``n`` zeros, kept between queries (a fresh one would
    page-fault on every page it touches); users put the zeros back."""
    held = getattr(_LOCAL, "zeros", None)
    if held is None or len(held) != n:
        held = _LOCAL.zeros = np.zeros(n)
    return held


def _products(x: np.ndarray) -> np.ndarray:
    """``x @ x.T`` for a few rows, without BLAS (whose threads spin on a busy machine)."""
    return np.array([[float((a * b).sum()) for b in x] for a in x])


def _union(columns: list[np.ndarray]) -> np.ndarray:
    """Sorted distinct documents of a few short postings lists."""
    if not columns:
        return np.zeros(0, dtype=np.int64)
    docs = np.sort(np.concatenate(columns).astype(np.int64))
    return docs[np.concatenate([[True], docs[1:] != docs[:-1]])] if len(docs) else docs
