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
- **Top-k** (:meth:`EstimatedRelevance.top`): block-max. The documents are cut into blocks of
  ``BLOCK_DOCS`` consecutive positions; :class:`BlockMax` (saved with the index) holds, for each
  token with a long postings list, its largest value in each block and where its postings of each
  block start (a shorter list's are computed per query from its postings). A block's bound is the
  sum of the query terms' block maxima; blocks are visited best bound first until the next bound is
  below the ``depth``-th best relevance found (the kth), each scored in full in a block-sized
  accumulator that stays in cache (English BM25). For the Chinese relevance (BM25 and TF-IDF),
  MaxScore inside each block (measured faster there, slower for English: ``MAXSCORE_ENGLISH``): the
  terms of smallest block maxima whose sum stays below the kth are non-essential (a document holding
  only those cannot reach it); the essential terms' postings are scattered into a block-sized
  accumulator that stays in cache (each term's newly touched documents a sorted run, so the
  candidates need no sort), the non-essential terms with few postings against those documents are
  added to them in one more pass (``ADD_SHARE``), and only the documents whose bound still reaches
  the kth are scored exactly, by looking them up in every term's postings of the block (a search
  from where a straight line through the block puts them; a term with few postings against the
  candidates is read through instead, ``SEEK_COST``). A long Chinese query's common words and
  bigrams (技术, 服务, 开发…) are most of its postings and have small maxima, so they are mostly looked up,
  not read. A block where lookups would cost more than reading is scored in full.
  The kth starts from a guess read off the statistics' sample (:meth:`EstimatedRelevance._floor`: a
  relevance about ``FLOOR_MARGIN * depth`` documents are expected to reach), so pruning starts at
  the first block; then a pilot pass over every ``PILOT_STRIDE``-th block raises it to about the
  relevance ``PILOT_MARGIN * depth`` documents reach, read off what the pilot found (the pilot keeps
  only that many, so its own threshold rises as it goes), for the other blocks. Fewer than
  ``depth`` documents reaching a guess means it was too high, and the top-k runs again without it.
  Exact: the same documents in the same order as a full scoring (English BM25 summed token by
  token in float32, as bm25s). An index without block tables falls back to MaxScore with one
  maximum per term, or to a full scan for a query whose postings outnumber ``FULL_SCAN_SHARE`` of
  the documents.
- **Rows** (:meth:`EstimatedRelevance.rows`): exact scores of given documents, by looking each up
  in the query's postings (BM25 summed in the query's token order in float32, as ``bm25s`` does,
  so an English query's scores are bit-identical to a full scoring); the documents the top-k
  scored are answered from what it kept (the same sums in the same order).

The loops over postings are compiled with numba where it is installed (:mod:`matcher.lexical_kernels`,
:func:`visit_blocks`; numpy otherwise, same results): in numpy each posting costs about ten
fancy-indexing passes.

Up to ``lexical_exact_max`` documents the full scoring stays (:class:`ExactRelevance`). Measured
in benchmarks/bench_lexical_scale.py (figures in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matcher.index import top_k
from matcher.lexical_kernels import _kernel, _seek, gather, places_at, sample_sums
from matcher.lexical_stats import SAMPLE_FILE, LexicalStats, Postings  # noqa: F401  (SAMPLE_FILE re-exported)

BLOCKS_FILE = "blocks.npz"  # block maxima of a lexical index's long postings lists
# Documents per block (a power of two). Measured (bench_lexical_scale.py --block-docs; YC-like text
# at 1M and 3M, A-share at 1M; p50): 65,536 fastest, 16,384 3-12 % slower, 4,096 7-40 % slower.
# On these corpora no block's bound falls below the depth-th score (every term
# of a query has a near-maximal document in every block), so what pays is the block-sized
# accumulator, and larger blocks read longer runs of each postings list.
BLOCK_DOCS = 65_536
# A token gets a saved block table when its postings are at least this many times the number of
# blocks; a shorter list's block maxima are computed per query from its postings (one pass over
# fewer than TABLE_FACTOR * blocks postings). Bounds the tables to 8 / TABLE_FACTOR bytes per
# posting (12 / TABLE_FACTOR with TF-IDF); measured far less (benchmarks/RESULTS.md).
TABLE_FACTOR = 8

RARE_SAMPLE_HITS = 16  # a term the sample would hold fewer documents of counts as rare
# Postings (as a share of the documents) above which a query's top-k scores every document
# instead: MaxScore reads ~10-30 % of the postings at ~5x the cost of a plain scatter, a full
# scoring pays ~4 passes over n (benchmarks/bench_lexical_scale.py).
FULL_SCAN_SHARE = 0.25
# Reads of postings one candidate's lookup costs (a search in the block's postings), for choosing per
# block between looking the candidates up and scoring the block in full.
LOOKUP_COST = 4
# A block is pruned (MaxScore) where the non-essential terms hold at least 1 / PRUNE_SHARE of its
# postings; otherwise it is scored in full, which costs less per posting.
PRUNE_SHARE = 2
# A non-essential term whose postings in a block are at most ADD_SHARE times the documents the
# essential terms touched there is added to those documents in one pass over its postings, before
# the candidates are chosen, instead of being looked up per candidate (measured at 10M: 0.5 against
# 1, p50 alike, p95 -37 %; 2 slower at 1M; benchmarks/RESULTS.md).
ADD_SHARE = 0.5
# A non-essential term's candidates are looked up by a search each, unless its postings in the block
# are at most SEEK_COST times the candidates: then its postings are read through against a map of
# the candidates. Measured at 10M (Intel Xeon): a search in a long list costs ~200 ns (cache and TLB
# misses), reading a posting ~6 ns; 16 and 48 alike, both faster than searching only.
SEEK_COST = 16
# The pilot pass (_top_blocks): every PILOT_STRIDE-th block is visited first, and the relevance
# that about PILOT_MARGIN * depth of the corpus's documents are expected to reach, read off what it
# found, is where the other blocks' threshold starts.
PILOT_STRIDE = 8
PILOT_MARGIN = 1.5
# MaxScore inside blocks and a starting threshold (_maxscore_loop) for the Chinese relevance (BM25
# and TF-IDF), where they measured faster; English BM25 alone measured 1.5-3x slower with them
# (short queries, few common terms), so its blocks are scored in full (_visit_loop), as before
# (benchmarks/RESULTS.md, "Chinese lexical top-k at 10M").
MAXSCORE_ENGLISH = False
# The top-k's starting threshold (:meth:`EstimatedRelevance._floor`): the relevance that about
# FLOOR_MARGIN * depth allowed documents are expected to reach, read off the statistics' sample at
# its FLOOR_SAMPLE_HITS-th best document at least (fewer would be noise).
FLOOR_MARGIN = 4
FLOOR_SAMPLE_HITS = 8


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


def block_columns(docs: np.ndarray, values: np.ndarray, shift: int, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """One postings list cut into blocks of ``2 ** shift`` documents: the postings before each block
    (int64, shape (blocks + 1,), relative to the list's start) and each block's largest value
    (float32, shape (blocks,), 0 for a block without postings)."""
    block = docs >> shift
    offsets = np.zeros(blocks + 1, dtype=np.int64)
    np.cumsum(np.bincount(block, minlength=blocks), out=offsets[1:])
    peaks = np.zeros(blocks, dtype=np.float32)
    nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
    if len(nonempty):
        peaks[nonempty] = np.maximum.reduceat(values, offsets[nonempty])
    return offsets, peaks


@dataclass
class BlockMax:
    """Block maxima of the long postings lists, saved with the index: the documents are cut into
    blocks of ``2 ** shift`` consecutive positions, and each token with at least ``TABLE_FACTOR``
    postings per block on average gets, per block, its largest BM25 value (and TF-IDF weight for
    a corpus with Chinese text) and where its postings of that block start.

    ``slot[token]``: the token's row in the tables, -1 without one. ``offsets`` (rows, blocks + 1),
    uint32, relative to the token's column start; ``b_peaks`` / ``c_peaks`` (rows, blocks), float32.
    """

    n: int
    shift: int
    slot: np.ndarray
    offsets: np.ndarray
    b_peaks: np.ndarray
    c_peaks: np.ndarray | None = None

    @property
    def blocks(self) -> int:
        return max(1, -(-self.n >> self.shift))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.slot, self.offsets, self.b_peaks, self.c_peaks) if a is not None)

    @classmethod
    def build(cls, n: int, b: Postings, c: Postings | None = None, block_docs: int = BLOCK_DOCS,
              min_postings: int | None = None) -> "BlockMax":
        """Tables for every token of ``b`` with at least ``min_postings`` postings (default
        ``TABLE_FACTOR`` times the number of blocks); ``c``: the TF-IDF weights on the same postings."""
        if block_docs < 1 or block_docs & (block_docs - 1):
            raise ValueError(f"block_docs must be a power of two, got {block_docs}")
        shift = block_docs.bit_length() - 1
        blocks = max(1, -(-n >> shift))
        df = np.diff(b.indptr)
        tabled = np.flatnonzero(df >= max(1, TABLE_FACTOR * blocks if min_postings is None else min_postings))
        slot = np.full(len(df), -1, dtype=np.int32)
        slot[tabled] = np.arange(len(tabled), dtype=np.int32)
        offsets = np.zeros((len(tabled), blocks + 1), dtype=np.uint32)
        b_peaks = np.zeros((len(tabled), blocks), dtype=np.float32)
        c_peaks = None if c is None else np.zeros((len(tabled), blocks), dtype=np.float32)
        for row, token in enumerate(tabled):
            docs, values = b.column(token)
            off, b_peaks[row] = block_columns(docs, values, shift, blocks)
            offsets[row] = off
            if c is not None:
                c_peaks[row] = block_columns(docs, c.column(token)[1], shift, blocks)[1]
        return cls(n, shift, slot, offsets, b_peaks, c_peaks)

    def column(self, postings: Postings, token: int, c: Postings | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A token's (postings before each block, int64 relative to its column; BM25 block maxima;
        TF-IDF block maxima where ``c``), from the tables or, for a short list, from its postings."""
        row = self.slot[token] if token < len(self.slot) else -1
        if row >= 0 and (c is None or self.c_peaks is not None):
            return self.offsets[row].astype(np.int64), self.b_peaks[row], None if c is None else self.c_peaks[row]
        docs, values = postings.column(token)
        offsets, b_peaks = block_columns(docs, values, self.shift, self.blocks)
        return offsets, b_peaks, block_columns(docs, c.column(token)[1], self.shift, self.blocks)[1] if c is not None else None

    def save(self, path: Path) -> None:
        arrays = {"n": np.asarray(self.n), "shift": np.asarray(self.shift), "slot": self.slot, "offsets": self.offsets,
                  "b_peaks": self.b_peaks}
        if self.c_peaks is not None:
            arrays["c_peaks"] = self.c_peaks
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> "BlockMax":
        with np.load(path) as saved:
            return cls(int(saved["n"]), int(saved["shift"]), saved["slot"], saved["offsets"], saved["b_peaks"],
                       saved["c_peaks"] if "c_peaks" in saved.files else None)


class EstimatedRelevance:
    """A query's lexical relevance without scoring every document (see the module docstring).

    English (or no TF-IDF): relevance is BM25, ``b(d) = sum of the query tokens' BM25``. Chinese
    with a TF-IDF cosine ``c``: ``(z(b) + z(c)) / sd(z(b) + z(c))``, as
    :meth:`matcher.lexical.LexicalIndex.relevance`, with the statistics of :class:`LexicalStats`.
    ``mean`` / ``sd``: the relevance's over the corpus (0 / 1 for the Chinese form).
    """

    def __init__(self, stats: LexicalStats, b: Postings, token_ids: list[int], c: Postings | None = None,
                 idf: np.ndarray | None = None, blocks: BlockMax | None = None):
        self.stats, self.b, self.n, self.blocks = stats, b, stats.n, blocks
        # of the last top(): blocks visited, postings read, documents kept, blocks where non-essential
        # terms were only looked up (a diagnostic for benchmarks)
        self.visit_counts = np.zeros(4, dtype=np.int64)
        # documents whose exact relevance the last top() computed (sorted) and those values
        self._known = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
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
        rare = self._rare = self.b.df(terms) * len(st.rows) < RARE_SAMPLE_HITS * self.n
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
        # Co-occurring common terms: from the sample (its values kept for the top-k's floor).
        self._sample = self._sample_values(common)
        if common.any():
            values, diagonal = self._sample
            second += (_products(values) - diagonal) * (self.n / len(st.rows))
        second = np.triu(second) + np.triu(second, 1).T
        return mean, second / self.n

    def _sample_values(self, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each signal summed over the query terms where ``use``, per document of the statistics'
        sample (float64, (s, sample size)), and the sum of each term's own signal products (s, s)."""
        st, k = self.stats, len(self.weights)
        values, products = np.zeros((k, len(st.rows))), np.zeros((k, k))
        if use.any():
            second = st.sample_c if k > 1 else st.sample_b
            sample_sums(st.sample_b.indptr, st.sample_b.indices, st.sample_b.data, second.data, self.terms[use],
                        self.weights[0][use], self.weights[-1][use] if k > 1 else np.zeros(int(use.sum())), values,
                        products)
        return values, products

    def _signal_rows(self, rows: np.ndarray, use: np.ndarray) -> np.ndarray:
        """Each signal (float64, shape (s, len(rows))) at sorted unique ``rows``, summed over the
        query terms where ``use``."""
        out = np.zeros((len(self.weights), len(rows)))
        for u in np.flatnonzero(use):
            for i, values in enumerate(self._term_values(rows, u)):
                out[i] += self.weights[i][u] * values
        return out

    def _term_values(self, rows: np.ndarray, u: int) -> list[np.ndarray]:
        """Query term ``u``'s value in each signal (BM25, TF-IDF) at the sorted ``rows`` (float64, 0
        where absent). The TF-IDF postings hold the same documents as BM25's (as the block loops
        also read them), so where numba is installed each row is looked up once for both."""
        t = self.terms[u]
        places = places_at(rows, self.b.column(t)[0])
        if places is None:
            return [self._at_rows(rows, *postings.column(t)) for postings, _ in self._signals()]
        hit = places >= 0
        out = []
        for postings, _ in self._signals():
            values = np.zeros(len(rows))
            values[hit] = postings.column(t)[1][places[hit]]
            out.append(values)
        return out

    def _at_rows(self, rows: np.ndarray, docs: np.ndarray, values: np.ndarray) -> np.ndarray:
        """One postings list's ``values`` at the sorted ``rows`` (0 where absent), float64: by
        binary search when the list is much longer than ``rows``, else through the dense
        per-thread array (a scatter and a gather, no search); compiled where numba is installed."""
        places = places_at(rows, docs)
        if places is not None:
            out, hit = np.zeros(len(rows)), places >= 0
            out[hit] = values[places[hit]]
            return out
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
        """Exact relevance of documents ``rows`` (any order, repeats allowed), float32. The documents
        the last :meth:`top` scored (retrieval asks for its own top-k's) are read from what it kept:
        the block loops compute the same sums in the same order."""
        rows = np.asarray(rows, dtype=np.int64)
        unique, back = np.unique(rows, return_inverse=True)
        known_docs, known_scores = self._known
        at = np.minimum(np.searchsorted(known_docs, unique), max(0, len(known_docs) - 1))
        hit = known_docs[at] == unique if len(known_docs) else np.zeros(len(unique), bool)
        out = np.empty(len(unique), dtype=np.float32)
        out[hit] = known_scores[at[hit]]
        if not hit.all():
            out[~hit] = self._rows_sorted(unique[~hit])
        return out[back]

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
        return (self.scale[0] * signals[0] + self.scale[1] * signals[1] + self.shift).astype(np.float32)

    # --- top-k ---------------------------------------------------------------------------------

    def _bounds(self) -> np.ndarray:
        """Largest relevance contribution of each query term (before the shift)."""
        peaks = [self.stats.bmax] + ([self.stats.cmax] if self.c is not None else [])
        return sum(s * w * p[self.terms] for s, w, p in zip(self.scale, self.weights, peaks))

    def top(self, allowed: np.ndarray, depth: int) -> np.ndarray:
        """Positions of the ``depth`` best allowed documents with a positive relevance, best first
        (ties: lower position first), as :func:`lexical_top` over the full relevance."""
        if not len(self.terms) or not self.scale.any() or depth <= 0:
            return np.zeros(0, dtype=np.int64)
        if self.blocks is not None:
            return self._top_blocks(allowed, depth)
        if self.b.df(self.terms).sum() > FULL_SCAN_SHARE * self.n:
            return lexical_top(self._full(), allowed, depth)
        return self._top_maxscore(allowed, depth)

    def _top_blocks(self, allowed: np.ndarray, depth: int) -> np.ndarray:
        """Block-max top-k (:func:`visit_blocks`): an upper bound of each block's relevance (the sum
        over the query's terms of their block maxima), blocks visited best bound first until the
        next bound is below the ``depth``-th best relevance found; in a block, only documents with
        one of its essential terms are scored."""
        blocks, terms, c = self.blocks, self.terms, self.c
        starts = np.empty((len(terms), blocks.blocks + 1), dtype=np.int64)
        peaks = np.empty((len(terms), blocks.blocks))  # each term's largest contribution per block
        for u, t in enumerate(terms):
            offsets, b_peaks, c_peaks = blocks.column(self.b, int(t), c)
            starts[u] = self.b.indptr[t] + offsets
            np.multiply(self.scale[0] * self.weights[0][u], b_peaks, out=peaks[u])
            if c is not None:
                peaks[u] += (self.scale[1] * self.weights[1][u]) * c_peaks
        bound = peaks.sum(axis=0) + self.shift
        slack = 1e-5 * (float(np.abs(bound).max()) + abs(self.shift)) + 1e-6  # float32 sums against float64 bounds
        order = np.argsort(-bound, kind="stable")
        order = order[bound[order] + slack > 0]  # a block below 0 holds no positive relevance
        sequence = np.searchsorted(terms, self.token_ids)  # English: float32 sums token by token, as bm25s
        if c is None:
            weights, weights2, data2, scales = self.weights[0], np.zeros(len(terms)), self.b.data, (1.0, 0.0)
        else:
            weights, weights2, data2, scales = self.weights[0], self.weights[1], c.data, tuple(map(float, self.scale))
        peaks = peaks.T
        maxscore = c is not None or MAXSCORE_ENGLISH

        def visit(visited: np.ndarray, floor: float, keep: int = depth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return visit_blocks(
                visited, bound[visited], slack, starts, np.ascontiguousarray(peaks[visited]), sequence, self.b.indices,
                self.b.data, data2, weights, weights2, *scales, float(self.shift), c is not None, allowed, blocks.shift,
                self.n, keep, floor, maxscore)

        floor = self._floor(allowed, depth) if maxscore else -np.inf
        docs = None
        pilot = order[order % PILOT_STRIDE == 0]
        if maxscore and 2 * len(pilot) <= len(order):
            # The pilot pass: every PILOT_STRIDE-th block (an even sample of the corpus, far larger
            # than the statistics' sample) shows where the depth-th best relevance will be; the other
            # blocks start from there. Exact as the floor is: every document reaching the threshold
            # is found, so at least depth of them found means the top depth are among them. The pilot
            # keeps its own best ``reach``, so its threshold rises as it goes; every pilot document
            # reaching the reach-th best is still found.
            reach = int(PILOT_MARGIN * depth * len(pilot) / blocks.blocks) + 1
            docs, scores, counts = visit(pilot, floor, reach)
            if len(scores) >= reach:
                floor = max(floor, float(np.partition(scores, len(scores) - reach)[len(scores) - reach]))
            more, more_scores, more_counts = visit(order[order % PILOT_STRIDE != 0], floor)
            docs, scores = np.concatenate([docs, more]), np.concatenate([scores, more_scores])
            self.visit_counts = counts + more_counts
            if np.count_nonzero(scores >= floor) < depth:  # the guess was too high: without it
                docs, floor = None, -np.inf
        while docs is None:
            docs, scores, self.visit_counts = visit(order, floor)
            if len(docs) < depth and floor > -np.inf:  # fewer than depth reach the guess: without it
                docs, floor = None, -np.inf
        at = np.argsort(docs)
        docs, scores = docs[at], scores[at]
        self._known = (docs, scores)
        return docs[top_k(scores, depth)]

    def _floor(self, allowed: np.ndarray, depth: int) -> float:
        """A guess of the ``depth``-th best relevance from the statistics' sample, low enough that
        about ``FLOOR_MARGIN * depth`` allowed documents are expected to reach it (-inf where the
        sample is too small to tell). Starting the top-k's threshold there lets MaxScore prune from
        the first block; the top-k is exact either way, as :meth:`_top_blocks` checks that at
        least ``depth`` documents reached it and runs again without it when not."""
        st = self.stats
        m = len(st.rows)
        hits = max(FLOOR_SAMPLE_HITS, -(-FLOOR_MARGIN * depth * m // max(1, self.n)))
        if hits >= m:
            return -np.inf
        signals = self._sample[0] + self._sample_values(self._rare)[0]  # the common terms' were kept by _moments
        matched = np.flatnonzero(signals[0] > 0)
        values = self.scale[0] * signals[0, matched]
        if len(self.scale) > 1:
            values += self.scale[1] * signals[1, matched]
        # The filter read only at the best few sample documents (a gather at 65,536 places spread
        # over the corpus costs ~1 ms at 10M): if hits of them are allowed, the hits-th best allowed
        # document is among them; else (a narrow filter) at all of them.
        best = len(values) - 4 * hits
        if best > 0:
            top = np.flatnonzero(values >= np.partition(values, best)[best])
            top = top[allowed[st.rows[matched[top]]]]
        if best <= 0 or len(top) < hits:
            top = np.flatnonzero(allowed[st.rows[matched]])
        values = values[top]
        if len(values) < hits:
            return -np.inf
        guess = float(np.partition(values, len(values) - hits)[len(values) - hits]) + self.shift
        return guess if guess > 0 else -np.inf

    def _top_maxscore(self, allowed: np.ndarray, depth: int) -> np.ndarray:
        """MaxScore over the query's postings with one maximum per term (an index without block
        tables)."""
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
        for scale, w, values in zip(self.scale, self.weights, self._term_values(rows, u)):
            out += scale * w[u] * values
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


# --- visiting blocks, best bound first ------------------------------------------------------------
# Compiled with numba where it is installed (numpy otherwise: the same documents and scores of the
# final top, a Python loop over the blocks).


def _offer(v, doc, docs, scores, heap, state, kth):
    """Keep document ``doc`` of relevance ``v`` (at least ``kth``) among the candidates ``docs`` /
    ``scores`` and in the min-heap ``heap`` of the depth best relevances so far (numba's partition
    is quadratic on many ties); ``state``: (candidates kept, heap size), updated. Returns the new
    kth: the heap's least once it is full, if higher. When the candidates fill their buffer, those
    below the kth are dropped; ``state[0]`` is -1 when that frees too little (the caller retries
    with more room)."""
    count, filled, depth = state[0], state[1], len(heap)
    if count == len(docs):
        kept = 0
        for m in range(count):
            if scores[m] >= kth:
                docs[kept], scores[kept] = docs[m], scores[m]
                kept += 1
        count = kept
        if count > len(docs) // 2:
            state[0] = -1
            return kth
    docs[count], scores[count] = doc, v
    count += 1
    if filled < depth:
        m = filled
        heap[m] = v
        filled += 1
        while m > 0 and heap[(m - 1) >> 1] > heap[m]:
            heap[m], heap[(m - 1) >> 1] = heap[(m - 1) >> 1], heap[m]
            m = (m - 1) >> 1
    elif v > heap[0]:
        heap[0] = v
        m = 0
        while True:
            low = m
            if 2 * m + 1 < depth and heap[2 * m + 1] < heap[low]:
                low = 2 * m + 1
            if 2 * m + 2 < depth and heap[2 * m + 2] < heap[low]:
                low = 2 * m + 2
            if low == m:
                break
            heap[m], heap[low] = heap[low], heap[m]
            m = low
    state[0], state[1] = count, filled
    return heap[0] if filled == depth and heap[0] > kth else kth


# compiled where numba is installed (_compiled), so the loops call them compiled
_OFFER, _SEEK = _offer, _seek


def _visit_loop(order, bound, slack, starts, sequence, indices, data, data2, weights, weights2, scale, scale2,
                shift_value, mixed, allowed, shift, n, depth, docs, scores, counts):
    size = 1 << shift
    terms = len(weights)
    exact = np.zeros(size, np.float32)  # English: BM25 summed token by token
    total, total2 = np.zeros(size), np.zeros(size)  # mixed: weighted BM25 and TF-IDF sums
    heap, state = np.empty(depth, np.float32), np.zeros(2, np.int64)  # the depth best; (documents kept, heap size)
    kth = np.float32(-np.inf)
    for i in range(len(order)):
        if bound[i] + slack < kth:
            break
        counts[0] += 1
        block = order[i]
        base = block << shift
        end = min(size, n - base)
        for u in range(terms):
            counts[1] += starts[u, block + 1] - starts[u, block]
        if mixed:
            for u in range(terms):
                for p in range(starts[u, block], starts[u, block + 1]):
                    total[indices[p] - base] += weights[u] * data[p]
                    total2[indices[p] - base] += weights2[u] * data2[p]
        else:
            for k in range(len(sequence)):
                u = sequence[k]
                for p in range(starts[u, block], starts[u, block + 1]):
                    exact[indices[p] - base] += data[p]
        for c0 in range(0, end, 64):  # 64 documents at a time, their maximum first: most reach no kth
            c1 = min(c0 + 64, end)
            best = np.float32(0)
            if mixed:
                for j in range(c0, c1):
                    v = np.float32(scale * total[j] + scale2 * total2[j] + shift_value)
                    best = v if v > best else best
            else:
                for j in range(c0, c1):
                    best = exact[j] if exact[j] > best else best
            if best < kth or not best > 0:
                continue
            for j in range(c0, c1):
                if mixed:
                    if total[j] == 0:
                        continue
                    v = np.float32(scale * total[j] + scale2 * total2[j] + shift_value)
                else:
                    v = exact[j]
                if v < kth or not v > 0 or not allowed[base + j]:
                    continue
                kth = _OFFER(v, base + j, docs, scores, heap, state, kth)
                if state[0] < 0:
                    return -1
                counts[2] += 1
        if mixed:
            total[:] = 0
            total2[:] = 0
        else:
            exact[:] = 0
    return state[0]


def _maxscore_loop(order, bound, slack, starts, peaks, sequence, indices, data, data2, weights, weights2, scale, scale2,
                   shift_value, mixed, allowed, shift, n, depth, floor, wide, narrow, places, mark, docs, scores, counts):
    size = 1 << shift
    terms = len(weights)
    # Work arrays of a block's size, kept between queries (fresh ones would page-fault on every page
    # they touch); the first three of ``wide``, the first of ``narrow`` and ``mark`` (a candidate's
    # number plus one per document, for reading a term's postings through) are zeros on entry and
    # left zeros. Blocks scored in full: weighted BM25 and TF-IDF sums (mixed), BM25 token by token
    # (English). Pruned blocks: the essential terms' relevance; the documents they touch, in sorted
    # runs (run_end); the candidates (their positions, kept in those runs: run_found), bounds and
    # exact sums (mixed: float64 per signal; English: float32).
    total, total2, partial, exact = wide[0], wide[1], wide[2], narrow[0]
    touched, found_at = places[0], places[1]
    run_end, run_found = np.empty(terms + 1, np.int64), np.empty(terms + 1, np.int64)
    bound_of, sum1, sum2, sum32 = wide[3], wide[4], wide[5], narrow[2]
    found_v = narrow[1]  # a block's candidates' relevance, either way
    coef, coef2 = scale * weights, scale2 * weights2  # a term's weight in the relevance (English: 1, 0)
    lookups = len(sequence) if not mixed else terms  # English: summed token by token, in float32
    heap, state = np.empty(depth, np.float32), np.zeros(2, np.int64)  # the depth best; (documents kept, heap size)
    kth = np.float32(floor)
    for i in range(len(order)):
        if bound[i] + slack < kth:
            break
        counts[0] += 1
        block = order[i]
        base = block << shift
        end = min(size, n - base)
        postings = 0
        for u in range(terms):
            postings += starts[u, block + 1] - starts[u, block]
        # MaxScore inside the block: the terms of smallest block maxima whose sum (with the shift)
        # stays below the kth are non-essential; a document without an essential term cannot reach it.
        by = np.argsort(peaks[i])
        rest, skipped = 0.0, 0
        while kth > -np.inf and skipped < terms and rest + peaks[i, by[skipped]] + shift_value + slack < kth:
            rest += peaks[i, by[skipped]]
            skipped += 1
        saved = 0  # the non-essential terms' postings: what pruning saves reading
        for k in range(skipped):
            saved += starts[by[k], block + 1] - starts[by[k], block]
        found = 0
        pruned = saved * PRUNE_SHARE > postings  # else scoring the block in full costs less
        if pruned:
            # The essential terms' postings scattered. Each term adds the documents it touches first
            # as one sorted run, so the candidates are a few sorted runs and need no sort.
            touches, runs = 0, 0
            for k in range(skipped, terms):
                u = by[k]
                counts[1] += starts[u, block + 1] - starts[u, block]
                for p in range(starts[u, block], starts[u, block + 1]):
                    j = indices[p] - base
                    x = partial[j]
                    touched[touches] = j
                    touches += x == 0  # every posting adds a positive value
                    partial[j] = x + (coef[u] * data[p] + coef2[u] * data2[p])
                run_end[runs] = touches
                runs += 1
            # The largest non-essential terms with few postings against the documents touched:
            # added to those documents in one pass over their postings (no lookups), which tightens
            # the bound before any candidate is kept.
            while skipped > 0:
                u = by[skipped - 1]
                lo, hi = starts[u, block], starts[u, block + 1]
                if hi - lo > touches * ADD_SHARE:
                    break
                counts[1] += hi - lo
                for p in range(lo, hi):
                    j = indices[p] - base
                    x = partial[j]
                    partial[j] = x + (coef[u] * data[p] + coef2[u] * data2[p] if x != 0 else 0.0)
                rest -= peaks[i, u]
                skipped -= 1
            # The documents whose bound reaches the kth, each run kept in order (the accumulator
            # is put back to zeros on the way).
            m = 0
            for r in range(runs):
                for m in range(m, run_end[r]):
                    j = touched[m]
                    x = partial[j]
                    partial[j] = 0.0
                    found_at[found], bound_of[found] = j, x
                    found += allowed[base + j] & (x + rest + shift_value + slack >= kth)
                m = run_end[r]
                run_found[r] = found
            # The other non-essential terms, largest first: the candidates' values added, and those
            # that can no longer reach the kth dropped. Then the survivors' exact relevance, term by
            # term in order. A candidate's value is found by a search in the term's postings of the
            # block, from where a straight line through the block puts it, no earlier than the
            # previous candidate's place in its run.
            for step in range(skipped + lookups):
                refine = step < skipped
                if refine:
                    u = by[skipped - 1 - step]
                    rest -= peaks[i, u]
                else:
                    if step == skipped:
                        if found * lookups * LOOKUP_COST > postings:  # scoring the block in full is cheaper
                            pruned = False
                            found = 0
                            break
                        counts[3] += 1
                        sum1[:found] = 0.0
                        sum2[:found] = 0.0
                        sum32[:found] = 0.0
                    u = step - skipped if mixed else sequence[step - skipped]
                if found == 0:
                    break
                lo, hi = starts[u, block], starts[u, block + 1]
                if hi - lo <= found * SEEK_COST:
                    # Fewer postings than the searches would cost: the term's postings of the block
                    # read through, against the candidates marked in a block-sized map.
                    counts[1] += hi - lo
                    for m in range(found):
                        mark[found_at[m]] = m + 1
                    if refine:
                        for p in range(lo, hi):
                            k = mark[indices[p] - base]
                            if k != 0:
                                bound_of[k - 1] += coef[u] * data[p] + coef2[u] * data2[p]
                    elif mixed:
                        for p in range(lo, hi):
                            k = mark[indices[p] - base]
                            if k != 0:
                                sum1[k - 1] += weights[u] * data[p]
                                sum2[k - 1] += weights2[u] * data2[p]
                    else:
                        for p in range(lo, hi):
                            k = mark[indices[p] - base]
                            if k != 0:
                                sum32[k - 1] += data[p]
                    for m in range(found):
                        mark[found_at[m]] = 0
                    if refine:  # those that can no longer reach the kth dropped, each run kept in order
                        m, kept = 0, 0
                        for r in range(runs):
                            for m in range(m, run_found[r]):
                                if bound_of[m] + rest + shift_value + slack >= kth:
                                    found_at[kept], bound_of[kept] = found_at[m], bound_of[m]
                                    kept += 1
                            m = run_found[r]
                            run_found[r] = kept
                        found = kept
                    continue
                counts[1] += min(hi - lo, found)
                m, kept = 0, 0
                for r in range(runs):
                    p = lo
                    for m in range(m, run_found[r]):
                        j = found_at[m]
                        d = base + j
                        p = _SEEK(indices, p, hi, d, lo + ((j * (hi - lo)) >> shift))
                        x1, x2 = (data[p], data2[p]) if p < hi and indices[p] == d else (np.float32(0), np.float32(0))
                        if refine:
                            bound_of[m] += coef[u] * x1 + coef2[u] * x2
                            if bound_of[m] + rest + shift_value + slack >= kth:
                                found_at[kept], bound_of[kept] = j, bound_of[m]
                                kept += 1
                        elif mixed:
                            sum1[m] += weights[u] * x1
                            sum2[m] += weights2[u] * x2
                        else:
                            sum32[m] += x1
                    m = run_found[r]
                    if refine:
                        run_found[r] = kept
                if refine:
                    found = kept
            for m in range(found):
                if mixed:
                    found_v[m] = np.float32(scale * sum1[m] + scale2 * sum2[m] + shift_value) if sum1[m] != 0 else 0
                else:
                    found_v[m] = sum32[m]
        if not pruned:  # every term scattered over the block, in order
            counts[1] += postings
            if mixed:
                for u in range(terms):
                    for p in range(starts[u, block], starts[u, block + 1]):
                        total[indices[p] - base] += weights[u] * data[p]
                        total2[indices[p] - base] += weights2[u] * data2[p]
            else:
                for k in range(len(sequence)):
                    u = sequence[k]
                    for p in range(starts[u, block], starts[u, block + 1]):
                        exact[indices[p] - base] += data[p]
            for c0 in range(0, end, 64):  # 64 documents at a time, their maximum first: most reach no kth
                c1 = min(c0 + 64, end)
                best = np.float32(0)
                if mixed:
                    for j in range(c0, c1):
                        v = np.float32(scale * total[j] + scale2 * total2[j] + shift_value)
                        best = v if v > best else best
                else:
                    for j in range(c0, c1):
                        best = exact[j] if exact[j] > best else best
                if best < kth or not best > 0:
                    continue
                for j in range(c0, c1):
                    if mixed:
                        if total[j] == 0:
                            continue
                        v = np.float32(scale * total[j] + scale2 * total2[j] + shift_value)
                    else:
                        v = exact[j]
                    if v >= kth and v > 0 and allowed[base + j]:
                        found_at[found], found_v[found] = j, v
                        found += 1
            if mixed:
                total[:end] = 0
                total2[:end] = 0
            else:
                exact[:end] = 0
        for m in range(found):
            v = found_v[m]
            if v < kth or not v > 0:
                continue
            kth = _OFFER(v, base + found_at[m], docs, scores, heap, state, kth)
            if state[0] < 0:
                return -1
            counts[2] += 1
    return state[0]


def visit_blocks(order, bound, slack, starts, peaks, sequence, indices, data, data2, weights, weights2, scale, scale2,
                 shift_value, mixed, allowed, shift, n, depth, floor=-np.inf, maxscore=False):
    """The allowed documents with a positive relevance that may belong to the top ``depth`` (every
    document whose relevance reaches the final ``depth``-th best, and some others), their relevance
    (float32), and what it did (int64: blocks visited, postings read, documents kept, blocks where
    the non-essential terms were only looked up).

    Blocks of ``2 ** shift`` documents are visited in ``order`` (``bound``: their upper bounds,
    descending) until a bound plus ``slack`` is below the ``depth``-th best relevance so far (the
    kth). Each visited block is scored in full in a block-sized accumulator (in cache, unlike an
    n-sized one) or, with ``maxscore`` (:func:`_maxscore_loop`), by MaxScore: ``peaks[i, u]`` is
    term ``u``'s largest contribution in the ``i``-th visited block; the terms of smallest peaks
    summing (with ``shift_value``) below the kth are skipped, the others scattered (then the skipped
    terms with few postings added to the documents touched), and the documents whose partial
    relevance plus the other skipped terms' peaks reaches the kth are scored exactly by
    looking them up in each term's postings of the block (the block is scored in full where that
    would cost more); the kth starts at ``floor``. Query term ``u``'s postings in block ``b`` are
    ``starts[u, b]:starts[u, b + 1]`` of ``indices`` / ``data`` (BM25) / ``data2`` (TF-IDF).
    Relevance: English (not ``mixed``) BM25 summed in float32 over the query's tokens (``sequence``:
    their term positions, in query order, repeats kept), as bm25s; ``mixed``: ``scale * sum(weights
    * BM25) + scale2 * sum(weights2 * TF-IDF) + shift_value`` in float64, as
    :meth:`EstimatedRelevance.rows`.
    """
    if maxscore:
        compiled = _compiled(_maxscore_loop)
        if compiled is not None:
            return _with_room(lambda docs, scores, counts: compiled(
                order, bound, slack, starts, peaks, sequence, indices, data, data2, weights, weights2, scale, scale2,
                shift_value, mixed, allowed, shift, n, depth, floor, *_workspace(1 << shift), docs, scores, counts), depth)
    else:
        compiled = _compiled(_visit_loop)
        if compiled is not None:
            return _with_room(lambda docs, scores, counts: compiled(
                order, bound, slack, starts, sequence, indices, data, data2, weights, weights2, scale, scale2,
                shift_value, mixed, allowed, shift, n, depth, docs, scores, counts), depth)

    def score(block, base, end):
        if mixed:
            total, total2 = np.zeros(end), np.zeros(end)
            for u in range(len(weights)):
                s, e = starts[u, block], starts[u, block + 1]
                total[indices[s:e] - base] += weights[u] * data[s:e]
                total2[indices[s:e] - base] += weights2[u] * data2[s:e]
            out = (scale * total + scale2 * total2 + shift_value).astype(np.float32)
            out[total == 0] = 0
            return out
        out = np.zeros(end, np.float32)
        for u in sequence:
            s, e = starts[u, block], starts[u, block + 1]
            out[indices[s:e] - base] += data[s:e]
        return out

    return _visit_numpy(order, bound, slack, score, allowed, shift, n, depth)


def _compiled(loop):
    """``loop`` compiled, calling :func:`_offer` compiled (numba resolves the global when it compiles
    the loop), or None without numba."""
    global _OFFER, _SEEK
    offer = _kernel(_offer)
    if offer is None:
        return None
    _OFFER, _SEEK = offer, _kernel(_seek)
    return _kernel(loop)


def _workspace(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-thread work arrays of the compiled MaxScore loop (:func:`_maxscore_loop`): float64 (6,
    size), float32 (3, size), int64 (2, size) and int32 (size,); the first three float64 rows, the
    first float32 row and the int32 array zeros."""
    held = getattr(_LOCAL, "blocks", None)
    if held is None or held[0].shape[1] != size:
        held = _LOCAL.blocks = (np.zeros((6, size)), np.zeros((3, size), np.float32), np.zeros((2, size), np.int64),
                                np.zeros(size, np.int32))
    return held


def _with_room(loop, depth: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Run a compiled loop with buffers for its candidates (allocated here: an array reassigned
    inside a numba loop costs reference counting on every iteration), larger while it runs out
    (many documents tied at the depth-th score)."""
    room = 4 * depth + 1024
    while True:
        docs, scores, counts = np.empty(room, np.int64), np.empty(room, np.float32), np.zeros(4, np.int64)
        count = loop(docs, scores, counts)
        if count >= 0:
            return docs[:count], scores[:count], counts
        room *= 4


def _visit_numpy(order, bound, slack, score, allowed, shift, n, depth):
    docs, scores, kept = [], [], np.zeros(0, np.float32)
    kth, visited = -np.inf, 0
    for i, block in enumerate(order):
        if len(kept) >= depth and bound[i] + slack < kth:
            break
        visited += 1
        base = int(block) << shift
        values = score(block, base, min(1 << shift, n - base))
        hit = np.flatnonzero(values > 0)
        hit = hit[allowed[base + hit] & (values[hit] >= kth)]
        docs.append(base + hit)
        scores.append(values[hit])
        kept = np.concatenate([kept, values[hit]])
        if len(kept) >= depth:
            kept = np.partition(kept, len(kept) - depth)[len(kept) - depth:]
            kth = kept.min()
    if not docs:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.array([visited, 0, 0, 0])
    return np.concatenate(docs).astype(np.int64), np.concatenate(scores), np.array([visited, 0, 0, 0])
