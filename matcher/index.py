"""FAISS inner-product index over L2-normalised float32 vectors, with stable enterprise ids.

The index is an id map around the factory's index (``IDMap2`` as built, saved as ``IDMap``: see
:func:`save_index`), so each vector carries a stable 63-bit id derived from its ``enterprise_id``
(a refresh can remove and add by id). Searches run on positions
of the wrapped index, so filters are a bitmap over the artifact's enterprise table: row ``i`` of
that table is the ``i``-th *live* position of the index.

Three tiers by size (:func:`choose_factory`): exact up to ``exact_index_max``, HNSW32 up to
``hnsw_index_max``, and above that IVF over 8-bit scalar codes (SQ8): the index holds codes only and
its candidates are re-scored exactly against the memory-mapped float32 vectors of the version, so
the vectors are stored once (benchmarks/bench_index_scale.py).

A refresh updates an index in place (:func:`update_index`): an index that can delete (``Flat``,
IVF) removes vectors for real, so every position stays live; HNSW cannot delete from its graph, so
a removed or replaced vector stays in the graph as a *tombstone* — its id is rewritten to a
negative number (``-1 - position``) — and every search excludes it through an ``IDSelector``
bitmap. Tombstones cost graph search time and, in quantity, recall, so the refresh rebuilds the
index when their share or the measured recall calls for it (see ``pipelines/refresh_version.py``).

One job, hence one module over the usual size: the dense index — its three tiers, how each is
built, updated in place and searched under a filter — which only makes sense read together.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import faiss
import numpy as np
import pandas as pd

from matcher.errors import ArtifactCorruptError, ConfigError
from matcher.mapped import gather, passes, release
from matcher.settings import default

EXACT_FACTORY = "IDMap2,Flat"
# HNSW32 over HNSW16: same speed at equal recall up to 200k, but M=32 is what held recall@10 at
# 0.98 on 1M vectors (efSearch 512); IVF needed 3-5x the time for less recall
# (benchmarks/RESULTS.md).
APPROXIMATE_FACTORY = "IDMap2,HNSW32,Flat"
# Below this share of allowed enterprises a filtered graph search asking for the retrieval depth
# (200) runs out of allowed neighbours and falls back to a scan anyway (seen at 5% of 200k); from
# 10% up at 200k it kept recall@10 >= 0.99 at 1.7 ms against an 8-13 ms scan.
SELECTIVE_FILTER_SHARE = 0.1
# Graph quality of HNSW builds. FAISS's default (40) left recall@10 at 0.93 (200k vectors,
# efSearch 128) where 128 reaches 0.995, for 1.5x the build time (benchmarks/RESULTS.md).
HNSW_EF_CONSTRUCTION = 128
# An exact scan of a filtered subset: below this share of allowed rows, gathering them and scoring
# with numpy is cheapest; above it, a FAISS scan of the flat storage that skips disallowed rows
# avoids copying most of the matrix (crossover about 2%, benchmarks/bench_retrieval.py).
GATHER_SHARE = 0.02
# IVF training: k-means on a sample of this many vectors per list, few iterations (FAISS asks for
# at least 39 per list; more samples or iterations bought no recall after re-ranking but minutes of
# build at 1M).
IVF_TRAIN_PER_LIST = 40
IVF_TRAIN_ITERATIONS = 10
IVF_TRAIN_MIN = 65_536  # the codec trains on the same sample: 8-bit PQ asks for 256 x 39 per part
# Above this many lists a flat coarse quantizer makes adding 10M vectors cost hours (every vector
# against every centroid): an HNSW graph over the centroids assigns them instead.
IVF_FLAT_QUANTIZER_MAX_LISTS = 8192
ADD_CHUNK = 100_000  # vectors per add call: progress, and bounded copies of memory-mapped input


def enterprise_faiss_ids(enterprise_ids) -> np.ndarray:
    """Stable int64 ids: the first 8 bytes of sha256(enterprise_id), top bit cleared."""
    out = np.empty(len(enterprise_ids), dtype=np.int64)
    for i, eid in enumerate(enterprise_ids):
        digest = hashlib.sha256(str(eid).encode("utf-8")).digest()[:8]
        out[i] = int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF
    return out


def choose_factory(n_vectors: int, exact_max: int, override: str | None = None,
                   hnsw_max: int = default("hnsw_index_max")) -> str:
    """The FAISS factory string: the setting when given, else by size — exact up to ``exact_max``
    vectors, HNSW32 up to ``hnsw_max``, IVF with SQ8 codes above (:func:`ivf_factory`)."""
    if override:
        return override if override.startswith("IDMap") else f"IDMap2,{override}"
    if n_vectors <= exact_max:
        return EXACT_FACTORY
    return APPROXIMATE_FACTORY if n_vectors <= hnsw_max else ivf_factory(n_vectors)


def ivf_lists(n_vectors: int) -> int:
    """IVF list count for ``n_vectors``: the power of two nearest 4 * sqrt(n) (4096 at 1M, 16384 at
    10M), so a list holds a few hundred vectors and nprobe lists are a small, fixed scan."""
    return int(2 ** round(np.log2(max(4 * np.sqrt(max(n_vectors, 1)), 64))))


def ivf_factory(n_vectors: int) -> str:
    """IVF over SQ8 codes (a byte per dimension). At 1M (benchmarks/RESULTS.md) recall@10 is set by
    the lists probed, not the codes: after exact re-ranking SQ8 and 4-bit fast-scan PQ48 met the
    targets alike (SQ8 0.97 at 2.7 ms CPU and 430 MB, PQ48x4fs 0.97 at 1.6 ms and 96 MB), but FAISS
    1.15 misplaces vectors added to a fast-scan IVF after a removal, so only SQ8 refreshes in place."""
    nlist = ivf_lists(n_vectors)
    quantizer = "" if nlist <= IVF_FLAT_QUANTIZER_MAX_LISTS else "_HNSW32"
    return f"IDMap2,IVF{nlist}{quantizer},SQ8"


def is_approximate(factory: str) -> bool:
    return factory != EXACT_FACTORY and ("HNSW" in factory or "IVF" in factory)


def refresh_factory(old: str, new: str) -> str:
    """The factory a refresh keeps: the published IVF layout while the size-based choice is an IVF
    whose list count is within a factor 2 of it (no retraining for a small drift in size)."""
    lists = [_list_count(f) for f in (old, new)]
    if None in lists or not (lists[1] / 2 <= lists[0] <= lists[1] * 2):
        return new
    return old


def _list_count(factory: str) -> int | None:
    part = next((p for p in factory.split(",") if p.startswith("IVF")), None)
    digits = "".join(c for c in part[3:].split("_")[0] if c.isdigit()) if part else ""
    return int(digits) if digits else None


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF inside an index (under a pre-transform such as OPQ), or None."""
    return faiss.try_extract_index_ivf(index)


def removes_in_place(index: faiss.Index) -> bool:
    """False for a fast-scan IVF (``...x4fs``): after ``remove_ids`` FAISS 1.15 files vectors
    added later under the wrong codes (60 % of them not found again), so such an index is rebuilt."""
    ivf = _ivf(faiss.downcast_index(index.index))
    return ivf is None or not isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFastScan)


def build_index(
    vectors: np.ndarray,
    ids: np.ndarray,
    factory: str,
    ef_search: int = default("hnsw_ef_search"),
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    nprobe: int = default("ivf_nprobe"),
    progress: Callable[[int], None] | None = None,
) -> faiss.Index:
    """Build an inner-product index: train on a sample (IVF), then add in chunks.

    Parameters
    ----------
    vectors : ndarray of shape (n, dim), float32, L2-normalised
        May be memory-mapped: it is read chunk by chunk, never copied whole.
    ids : ndarray of shape (n,), int64
    factory : str
        FAISS factory string, ``IDMap2,...``.
    ef_search : int
        HNSW efSearch stored with the index.
    ef_construction : int
        HNSW efConstruction (candidate list while linking the graph); ignored by other indexes.
    nprobe : int
        IVF lists scanned per query, stored with the index; ignored by other indexes.
    progress : callable, optional
        Called with the number of vectors added after each chunk.
    """
    ids = np.asarray(ids, dtype=np.int64)
    try:
        index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"index_factory '{factory}' is not a valid FAISS factory string: {exc}") from None
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efConstruction = ef_construction
    ivf = _ivf(inner)
    if not index.is_trained:
        # The sample's rows touch nearly every page of the file (655k rows of 10M): it is read a
        # chunk at a time and nothing of the file stays mapped through the training, which at 10M
        # takes most of the index step (the pages stayed mapped through it: 15 GB of the build's RSS).
        sample = _training_sample(vectors, ivf)
        release(vectors)
        index.train(sample)
        del sample
    for start, rows in passes(vectors, ADD_CHUNK):  # memory-mapped vectors: a chunk resident at a time
        index.add_with_ids(np.ascontiguousarray(rows, dtype=np.float32), ids[start:start + len(rows)])
        if progress is not None:
            progress(len(rows))
    set_search_params(index, ef_search, nprobe)
    return index


def _training_sample(vectors: np.ndarray, ivf: faiss.IndexIVF | None) -> np.ndarray:
    """A seeded sample of rows for training (IVF: ``IVF_TRAIN_PER_LIST`` per list, fewer k-means
    iterations than FAISS's default), in row order so a memory-mapped file is read forwards."""
    size = len(vectors)
    if ivf is not None:
        ivf.cp.niter = IVF_TRAIN_ITERATIONS
        size = min(size, max(IVF_TRAIN_PER_LIST * ivf.nlist, IVF_TRAIN_MIN))
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), size=size, replace=False))
    # read a chunk at a time, each span's pages released: at 10M one fancy index mapped 13 GB at once
    return np.ascontiguousarray(gather(vectors, rows), dtype=np.float32)


def live_mask(index: faiss.Index) -> np.ndarray:
    """Boolean mask over index positions: True for live vectors, False for tombstones."""
    if not hasattr(index, "id_map"):
        return np.ones(index.ntotal, dtype=bool)
    return faiss.vector_to_array(index.id_map) >= 0


def tombstone_count(index: faiss.Index) -> int:
    return int(index.ntotal - live_mask(index).sum())


def update_index(
    index: faiss.Index,
    remove_ids: np.ndarray,
    vectors: np.ndarray,
    ids: np.ndarray,
    replace_ids: np.ndarray | None = None,
    replace_vectors: np.ndarray | None = None,
) -> str:
    """Replace, remove and append vectors by id, in place.

    Live positions keep their order; new vectors are appended after them (so the enterprise table
    of the result is the old table minus the removed rows, then the new rows in ``ids`` order).

    Parameters
    ----------
    index : faiss.Index
        ``IDMap`` or ``IDMap2`` index, changed in place.
    remove_ids : ndarray of shape (r,), int64
        Ids to remove (an id that is about to be re-added with a new vector belongs here too).
    vectors : ndarray of shape (a, dim), float32, L2-normalised
    ids : ndarray of shape (a,), int64
    replace_ids, replace_vectors : optional
        Ids whose vector is overwritten where it is (exact ``Flat`` index only; see
        :func:`can_replace`), and their new vectors.

    Returns
    -------
    str
        ``"removed"`` when the index deleted the vectors, ``"tombstoned"`` when it cannot
        (HNSW) and they were marked instead, ``"none"`` when there was nothing to remove.
    """
    remove_ids = np.asarray(remove_ids, dtype=np.int64)
    how = "none"
    if replace_ids is not None and len(replace_ids):
        _replace_flat(index, np.asarray(replace_ids, dtype=np.int64), replace_vectors)
    if len(remove_ids):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            id_map = faiss.vector_to_array(index.id_map)
            dead = np.isin(id_map, remove_ids)
            id_map[dead] = -1 - np.flatnonzero(dead)
            faiss.copy_array_to_vector(id_map, index.id_map)
            _rebuild_hash(index)
            how = "tombstoned"
        elif _ivf(inner) is not None:
            if not removes_in_place(index):
                raise ValueError("a fast-scan IVF index cannot remove vectors in place; rebuild it")
            _remove_ivf(index, inner, remove_ids)
            how = "removed"
        else:
            index.remove_ids(remove_ids)
            how = "removed"
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return how


def _remove_ivf(index: faiss.Index, inner: faiss.Index, remove_ids: np.ndarray) -> None:
    """Remove from an id map over IVF, keeping inner ids equal to live positions.

    FAISS's ``IndexIDMap.remove_ids`` compacts its id map but an IVF keeps the old positions in
    its lists, so later positions would point at the wrong enterprise: renumber the lists too.
    """
    id_map = faiss.vector_to_array(index.id_map)
    dead = np.isin(id_map, remove_ids)
    if not dead.any():
        return
    inner.remove_ids(np.flatnonzero(dead).astype(np.int64))
    new_position = np.cumsum(~dead) - 1
    invlists = _ivf(inner).invlists
    for list_no in range(invlists.nlist):
        size = invlists.list_size(list_no)
        if size:
            list_ids = faiss.rev_swig_ptr(invlists.get_ids(list_no), size)
            list_ids[:] = new_position[list_ids]
    faiss.copy_array_to_vector(id_map[~dead], index.id_map)
    index.ntotal = int((~dead).sum())
    _rebuild_hash(index)


def can_replace(index: faiss.Index) -> bool:
    """True when vectors can be overwritten in place (flat storage, no graph or lists on top)."""
    return isinstance(faiss.downcast_index(index.index), faiss.IndexFlat)


def _replace_flat(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    inner = faiss.downcast_index(index.index)
    if not isinstance(inner, faiss.IndexFlat):
        raise ValueError("only a flat index can replace vectors in place")
    id_map = faiss.vector_to_array(index.id_map)
    position = pd.Index(id_map).get_indexer(ids)
    if (position < 0).any():
        raise ValueError(f"{int((position < 0).sum())} ids to replace are not in the index")
    storage = faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * inner.d).reshape(inner.ntotal, inner.d)
    storage[position] = np.asarray(vectors, dtype=np.float32)


def recall_at_k(searcher: "VectorSearcher", queries: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top ``k`` (numpy over ``searcher.vectors``) that the index finds.

    Parameters
    ----------
    queries : ndarray of shape (q, dim), float32
    """
    if not len(queries) or not len(searcher):
        return 1.0
    queries = np.asarray(queries, dtype=np.float32)
    found = 0
    for query, truth in zip(queries, exact_top_rows(searcher.vectors, queries, k)):
        got, _ = searcher.search(query, k)
        found += len(set(truth.tolist()) & set(got.tolist()))
    return found / (len(queries) * min(k, len(searcher)))


def exact_top_rows(vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 65_536) -> list[np.ndarray]:
    """Exact top ``k`` rows per query (:func:`top_k`'s order), reading ``vectors`` block by block:
    a score matrix over 10M rows would take gigabytes (the refresh's recall guard at scale)."""
    best = [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in range(len(queries))]
    for start, block_rows in passes(vectors, block):  # memory-mapped: a block resident at a time
        scores = queries @ np.asarray(block_rows, dtype=np.float32).T
        for i, (rows, kept) in enumerate(best):
            top = top_k(scores[i], k)
            rows = np.concatenate([rows, top + start])
            kept = np.concatenate([kept, scores[i][top]])
            # Earlier blocks hold lower rows, so top_k's tie rule (lower index first) carries over.
            pick = top_k(kept, k)
            best[i] = (rows[pick], kept[pick])
    return [rows for rows, _ in best]


def set_search_params(index: faiss.Index, ef_search: int, nprobe: int | None = None) -> None:
    """HNSW efSearch; IVF nprobe when given (None keeps the one stored with the index)."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = ef_search
    ivf = _ivf(inner)
    if ivf is not None and nprobe is not None:
        ivf.nprobe = min(nprobe, ivf.nlist)
        quantizer = faiss.downcast_index(ivf.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):
            quantizer.hnsw.efSearch = max(quantizer.hnsw.efSearch, 2 * ivf.nprobe)


# FAISS writes ``IDMap2`` and ``IDMap`` alike but for the 4-byte tag that opens the file; reading an
# ``IDMap2`` builds its id -> position hash, which nothing here reads (searches run on positions):
# at 10M ids that hash took most of a worker's 7.5 s ``read_index`` and 0.4 GB of its memory.
_IDMAP2_TAG, _IDMAP_TAG = b"IxM2", b"IxMp"


def save_index(index: faiss.Index, path: Path) -> None:
    """Write ``index``; an ``IDMap2`` is saved as the ``IDMap`` it equals without its hash, so
    loading it builds none (:func:`load_index`)."""
    faiss.write_index(index, str(path))
    with open(path, "r+b") as handle:
        if handle.read(4) == _IDMAP2_TAG:
            handle.seek(0)
            handle.write(_IDMAP_TAG)


def load_index(path: Path, ef_search: int = default("hnsw_ef_search"), mmap: bool = False) -> faiss.Index:
    """The index at ``path``, an ``IDMap`` (a version saved before :func:`save_index` dropped the
    hash loads as ``IDMap2``; both search and update alike here). ``mmap``: an IVF index's inverted
    lists (its codes, most of its memory: ~3.9 GB at 10M vectors) stay in the file's pages, shared
    by every worker that maps the same version, and read-only (a refresh that updates the index in
    place loads it without)."""
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap else 0)
    except RuntimeError as exc:
        raise ArtifactCorruptError(f"{path}: not a readable FAISS index ({str(exc).splitlines()[0]})") from None
    set_search_params(index, ef_search)
    return index


def _rebuild_hash(index: faiss.Index) -> None:
    """After the id map changed in place: an ``IDMap2``'s hash follows it; an ``IDMap`` has none."""
    if isinstance(index, faiss.IndexIDMap2):
        index.construct_rev_map()


class VectorSearcher:
    """Exact-count top-k inner-product search over index positions, with an optional filter.

    Parameters
    ----------
    index : faiss.Index
        Id-map index whose ``i``-th live position is row ``i`` of ``vectors`` (positions
        with a negative id are tombstones, see :func:`update_index`).
    vectors : ndarray of shape (n, dim), float32
        The live vectors in row order, for exact scans of small filtered subsets.
    selective_filter_share : float
        Below this share of allowed rows an approximate index is bypassed for an exact scan.
    rerank_depth : int
        IVF candidates (at least the ``k`` asked) re-scored exactly against ``vectors``: the
        index's compressed codes only choose them.

    Notes
    -----
    Each search is one query: give FAISS one OpenMP thread at query time
    (``faiss.omp_set_num_threads(1)``); on a shared 2-core machine its thread pool made
    single-query search 2-10 times slower (benchmarks/RESULTS.md).
    """

    def __init__(
        self,
        index: faiss.Index,
        vectors: np.ndarray,
        selective_filter_share: float = SELECTIVE_FILTER_SHARE,
        rerank_depth: int = default("ivf_rerank_depth"),
    ):
        self.index = index
        self.inner = faiss.downcast_index(index.index)
        self.vectors = vectors
        self.exact = isinstance(self.inner, faiss.IndexFlat)
        self.selective_filter_share = selective_filter_share
        self.ivf = _ivf(self.inner)
        self.rerank_depth = rerank_depth
        self.flat = _flat_storage(self.inner)
        self.n_positions = int(index.ntotal)
        live = live_mask(index)
        # Tombstones (left by an in-place refresh of an HNSW index): row r is the r-th live
        # position; searches exclude the dead positions.
        self.row_positions = None if live.all() else np.flatnonzero(live)
        self.position_rows = None if live.all() else np.where(live, np.cumsum(live) - 1, -1)
        self._last_filter: tuple = (None, 0, None)  # (mask, allowed count, FAISS bitmap) of the last filter

    def _filter(self, allowed: np.ndarray) -> tuple[int, np.ndarray]:
        """The number of ``allowed`` rows and its FAISS bitmap, kept for the last mask object:
        both are passes over every row (~20 ms at 10M), and the catalog hands the same read-only
        mask for the same filters (``Catalog.allowed``)."""
        mask, count, bitmap = self._last_filter
        if mask is not allowed or allowed.flags.writeable:  # a writable mask may have changed since
            count = int(allowed.sum())
            bitmap = np.packbits(self._position_mask(allowed).view(np.uint8), bitorder="little")
            self._last_filter = (allowed, count, bitmap)
        return count, bitmap

    def __len__(self) -> int:
        return self.n_positions if self.row_positions is None else len(self.row_positions)

    def _position_mask(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """A mask over rows (None: all) as a mask over index positions (None: all)."""
        if self.row_positions is None:
            return allowed
        mask = np.zeros(self.n_positions, dtype=bool)
        mask[self.row_positions] = True if allowed is None else allowed
        return mask

    def _rows(self, positions: np.ndarray) -> np.ndarray:
        positions = positions.astype(np.int64)
        return positions if self.position_rows is None else self.position_rows[positions]

    def _selector(self, mask: np.ndarray, bitmap: np.ndarray | None = None) -> faiss.IDSelector:
        """A FAISS selector of the positions in ``mask`` (``bitmap``: its packed bits, if made)."""
        if bitmap is None:
            bitmap = np.packbits(mask.view(np.uint8), bitorder="little")
        selector = faiss.IDSelectorBitmap(self.n_positions, faiss.swig_ptr(bitmap))
        selector.bitmap_array = bitmap  # the selector reads the array: keep it alive with it
        return selector

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows by inner product among ``allowed`` ones.

        Returns ``min(k, number allowed)`` results, best first: (rows int64, scores float32).
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        n = len(self)
        n_allowed, bitmap = (n, None) if allowed is None else self._filter(allowed)
        k = min(k, n_allowed)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.exact or (allowed is not None and n_allowed < self.selective_filter_share * n):
            return self._scan(query, k, allowed, n_allowed)
        if self.ivf is not None:
            return self._search_ivf(query, k, allowed, n_allowed, bitmap)
        params = None
        mask = self._position_mask(allowed)
        if mask is not None:
            selector = self._selector(mask, bitmap)
            if isinstance(self.inner, faiss.IndexHNSW):
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.inner.hnsw.efSearch, k))
            else:
                params = faiss.SearchParameters(sel=selector)
        elif isinstance(self.inner, faiss.IndexHNSW) and self.inner.hnsw.efSearch < k:
            params = faiss.SearchParametersHNSW(efSearch=k)
        scores, positions = self.inner.search(query, k, params=params)
        found = positions[0] >= 0
        if found.sum() < k:
            # The graph ran dry under this filter: fall back to an exact scan so the caller still
            # gets k results whenever k allowed enterprises exist.
            return self._scan(query, k, allowed, n_allowed)
        return self._rows(positions[0]), scores[0]

    def _search_ivf(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, n_allowed: int, bitmap: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """IVF candidates among ``allowed`` rows (IDSelector), re-scored exactly; top ``k``."""
        depth = min(max(k, self.rerank_depth), n_allowed)
        # IndexIVF.search rejects plain SearchParameters ("params have incorrect type").
        params = faiss.SearchParametersIVF(nprobe=self.ivf.nprobe)
        if allowed is not None:
            params.sel = self._selector(allowed, bitmap)
        coarse_query = self.inner.apply_chain(1, query) if isinstance(self.inner, faiss.IndexPreTransform) else query
        _, positions = self.ivf.search(coarse_query, depth, params=params)
        # IVF never leaves tombstones (it deletes), so positions are rows; sorted, ties keep
        # top_k's rule (lower row first).
        rows = np.sort(positions[0][positions[0] >= 0])
        if len(rows) < k:
            # The probed lists hold fewer than k allowed rows: scan exactly, so the caller still
            # gets k results whenever k allowed enterprises exist.
            return self._scan(query, k, allowed, n_allowed)
        scores = self.vectors[rows] @ query[0]
        top = top_k(scores, k)
        return rows[top], scores[top].astype(np.float32)

    def _scan(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, n_allowed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` among ``allowed`` rows (all when None); ``query`` shape (1, dim)."""
        n = len(self)
        if self.flat is not None and n_allowed >= GATHER_SHARE * n:
            params = None
            mask = self._position_mask(allowed)
            if mask is not None:
                params = faiss.SearchParameters(sel=self._selector(mask))
            scores, positions = self.flat.search(query, k, params=params)
            # FAISS orders equal scores by its heap; keep top_k's rule (lower position first).
            order = np.lexsort((positions[0], -scores[0]))
            return self._rows(positions[0][order]), scores[0][order]
        candidates = np.flatnonzero(allowed) if allowed is not None else np.arange(n)
        scores = self.vectors[candidates] @ query[0]
        top = top_k(scores, k)
        return candidates[top].astype(np.int64), scores[top].astype(np.float32)


def _flat_storage(inner: faiss.Index) -> faiss.IndexFlat | None:
    """The flat (uncompressed) vectors inside an index, positions 0..n-1, if it keeps them."""
    if isinstance(inner, faiss.IndexFlat):
        return inner
    if isinstance(inner, faiss.IndexHNSW):
        storage = faiss.downcast_index(inner.storage)
        if isinstance(storage, faiss.IndexFlat):
            return storage
    return None


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (ties: lower index first)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < len(scores):
        # argpartition alone would take an arbitrary subset of the scores tied at the cut; take
        # everything above the k-th score, then the lowest indices among those equal to it.
        kth = -np.partition(-scores, k - 1)[k - 1]
        above = np.flatnonzero(scores > kth)
        part = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    else:
        part = np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]
