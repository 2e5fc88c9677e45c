"""FAISS index and VectorSearcher: exact results, exact counts under filters, stable ids, I/O."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from matcher.errors import ArtifactCorruptError, ConfigError
from matcher.index import (
    APPROXIMATE_FACTORY,
    EXACT_FACTORY,
    SELECTIVE_FILTER_SHARE,
    VectorSearcher,
    build_index,
    choose_factory,
    enterprise_faiss_ids,
    exact_top_rows,
    is_approximate,
    ivf_lists,
    load_index,
    recall_at_k,
    refresh_factory,
    removes_in_place,
    save_index,
    top_k,
    update_index,
)
from tests.factories import resident_kb, unit_vectors

N, DIM = 300, 24


@pytest.fixture(scope="module")
def vectors():
    return unit_vectors(N, DIM, seed=0)


@pytest.fixture(scope="module")
def ids():
    return enterprise_faiss_ids([f"E{i:05d}" for i in range(N)])


def searcher_for(vectors, ids, factory=EXACT_FACTORY):
    return VectorSearcher(build_index(vectors, ids, factory), vectors)


def brute_force(vectors, query, k, allowed=None):
    scores = vectors @ query
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return order[np.isfinite(scores[order])]


# --- ids and factories -------------------------------------------------------------------------


def test_faiss_ids_are_stable_non_negative_and_distinct():
    names = [f"91310110MA1G{i:06d}" for i in range(2000)]

    first = enterprise_faiss_ids(names)
    again = enterprise_faiss_ids(list(reversed(names)))[::-1]

    assert first.dtype == np.int64
    assert (first >= 0).all()
    assert len(set(first.tolist())) == len(names)
    assert np.array_equal(first, again)  # depends on the id only, not on position


def test_faiss_id_depends_on_the_id_text():
    a, b = enterprise_faiss_ids(["E1", "E2"])

    assert a != b
    assert enterprise_faiss_ids(["E1"])[0] == a


def test_choose_factory_by_size_and_override():
    assert choose_factory(100, exact_max=1000) == EXACT_FACTORY
    assert choose_factory(1000, exact_max=1000) == EXACT_FACTORY
    assert choose_factory(1001, exact_max=1000) == APPROXIMATE_FACTORY
    assert choose_factory(5, exact_max=1000, override="HNSW16,Flat") == "IDMap2,HNSW16,Flat"
    assert choose_factory(5, exact_max=1000, override="IDMap2,Flat") == "IDMap2,Flat"


def test_invalid_factory_string_is_a_config_error_naming_it(vectors, ids):
    with pytest.raises(ConfigError, match="NoSuchIndex"):
        build_index(vectors, ids, "IDMap2,NoSuchIndex")


def test_index_holds_every_vector_under_its_stable_id(vectors, ids):
    index = build_index(vectors, ids, EXACT_FACTORY)

    assert index.ntotal == N
    assert index.metric_type == faiss.METRIC_INNER_PRODUCT
    assert np.array_equal(faiss.vector_to_array(index.id_map), ids)
    np.testing.assert_allclose(index.reconstruct(int(ids[7])), vectors[7], rtol=1e-6)


# --- exact search ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exact_search_equals_numpy_brute_force(vectors, ids, seed):
    searcher = searcher_for(vectors, ids)
    query = unit_vectors(1, DIM, seed=seed)[0]

    positions, scores = searcher.search(query, 10)

    assert positions.tolist() == brute_force(vectors, query, 10).tolist()
    np.testing.assert_allclose(scores, vectors[positions] @ query, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(scores) <= 1e-7)


@pytest.mark.parametrize("share", [0.9, 0.5, 0.1, 0.02])
def test_exact_filtered_search_equals_brute_force_over_allowed(vectors, ids, share):
    rng = np.random.default_rng(int(share * 100))
    allowed = rng.random(N) < share
    searcher = searcher_for(vectors, ids)
    query = unit_vectors(1, DIM, seed=9)[0]

    positions, scores = searcher.search(query, 12, allowed)

    assert len(positions) == min(12, allowed.sum())
    assert allowed[positions].all()
    assert positions.tolist() == brute_force(vectors, query, 12, allowed).tolist()


def test_filter_with_fewer_allowed_than_k_returns_all_allowed(vectors, ids):
    allowed = np.zeros(N, dtype=bool)
    allowed[[4, 50, 299]] = True

    positions, _ = searcher_for(vectors, ids).search(unit_vectors(1, DIM, 5)[0], 10, allowed)

    assert sorted(positions.tolist()) == [4, 50, 299]


def test_filter_allowing_nothing_returns_nothing(vectors, ids):
    positions, scores = searcher_for(vectors, ids).search(vectors[0], 10, np.zeros(N, dtype=bool))

    assert len(positions) == 0 and len(scores) == 0


def test_k_larger_than_the_index_returns_everything(vectors, ids):
    positions, _ = searcher_for(vectors, ids).search(vectors[0], N + 50)

    assert sorted(positions.tolist()) == list(range(N))


def test_a_stored_vector_finds_itself_first(vectors, ids):
    searcher = searcher_for(vectors, ids)

    for i in (0, 123, N - 1):
        positions, scores = searcher.search(vectors[i], 1)
        assert positions.tolist() == [i]
        assert scores[0] == pytest.approx(1.0, abs=1e-5)


# --- approximate (HNSW) index ------------------------------------------------------------------


@pytest.mark.parametrize("share", [None, 0.6, 0.25, 0.05])
def test_hnsw_search_returns_exactly_min_k_allowed_results_that_pass_the_filter(vectors, ids, share):
    searcher = searcher_for(vectors, ids, APPROXIMATE_FACTORY)
    allowed = None if share is None else np.random.default_rng(7).random(N) < share
    query = unit_vectors(1, DIM, seed=11)[0]
    n_allowed = N if allowed is None else int(allowed.sum())

    positions, scores = searcher.search(query, 20, allowed)

    assert len(positions) == min(20, n_allowed)
    assert len(set(positions.tolist())) == len(positions)
    if allowed is not None:
        assert allowed[positions].all()
    assert np.all(np.diff(scores) <= 1e-6)
    expected = set(brute_force(vectors, query, 20, allowed).tolist())
    assert len(expected & set(positions.tolist())) >= 0.8 * len(expected)  # recall, not exactness


def test_hnsw_filter_with_few_allowed_still_returns_all_of_them(vectors, ids):
    allowed = np.zeros(N, dtype=bool)
    allowed[::60] = True  # 5 allowed

    positions, _ = searcher_for(vectors, ids, APPROXIMATE_FACTORY).search(vectors[1], 10, allowed)

    assert sorted(positions.tolist()) == list(range(0, N, 60))


# --- persistence -------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", [EXACT_FACTORY, APPROXIMATE_FACTORY])
def test_saved_and_reloaded_index_searches_identically(tmp_path, vectors, ids, factory):
    index = build_index(vectors, ids, factory)
    save_index(index, tmp_path / "index.faiss")

    loaded = load_index(tmp_path / "index.faiss")

    assert np.array_equal(faiss.vector_to_array(loaded.id_map), ids)
    query = unit_vectors(1, DIM, seed=4)[0]
    before = VectorSearcher(index, vectors).search(query, 15)
    after = VectorSearcher(loaded, vectors).search(query, 15)
    assert before[0].tolist() == after[0].tolist()
    np.testing.assert_array_equal(before[1], after[1])


@pytest.mark.parametrize("factory", [EXACT_FACTORY, "IDMap2,HNSW16", "IDMap2,IVF8,SQ8"])
@pytest.mark.parametrize("saved_by", ["save_index", "an older version (IDMap2 on disk)"])
def test_a_loaded_index_updates_in_place_with_or_without_the_id_hash(tmp_path, vectors, ids, factory, saved_by):
    # save_index drops IDMap2's id -> position hash (7.5 s and 0.4 GB at 10M ids, never read);
    # versions published before still hold it. Both must search and refresh alike.
    built = build_index(vectors, ids, factory)
    path = tmp_path / "index.faiss"
    save_index(built, path) if saved_by == "save_index" else faiss.write_index(built, str(path))

    loaded = load_index(path)

    assert type(loaded) is (faiss.IndexIDMap if saved_by == "save_index" else faiss.IndexIDMap2)
    removed, new_ids = ids[10:40:3], enterprise_faiss_ids(["NEW-1", "NEW-2"])
    new_vectors = unit_vectors(2, DIM, seed=9)
    how = update_index(loaded, removed, new_vectors, new_ids)
    keep = ~np.isin(ids, removed)
    table = np.concatenate([vectors[keep], new_vectors])
    searcher = VectorSearcher(loaded, table)
    assert len(searcher) == len(table) and how in ("removed", "tombstoned")
    for row in [0, 11, len(table) - 2, len(table) - 1]:  # kept, shifted and new firms find themselves
        rows, scores = searcher.search(table[row], 1)
        assert rows.tolist() == [row] and scores[0] == pytest.approx(1.0, abs=1e-5)


def test_loading_a_corrupt_index_names_the_file(tmp_path):
    path = tmp_path / "index.faiss"
    path.write_bytes(b"this is not a faiss index")

    with pytest.raises(ArtifactCorruptError, match="index.faiss"):
        load_index(path)


# --- top_k -------------------------------------------------------------------------------------


def test_top_k_orders_best_first_with_lower_index_on_ties():
    scores = np.array([0.1, 0.9, 0.5, 0.9, -1.0], dtype=np.float32)

    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 0, 4]
    assert top_k(scores, 0).tolist() == []


# --- IVF tier (1M-10M): compressed codes, exact re-ranking -------------------------------------

IVF_N, IVF_DIM, IVF_FACTORY = 3000, 32, "IDMap2,IVF32,SQ8"


def clustered_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 60 topic centres (the neighbourhood structure an IVF relies on)."""
    rng = np.random.default_rng(seed)
    centres = unit_vectors(60, dim, seed=100)
    out = centres[rng.integers(0, 60, n)] + rng.normal(scale=1.0 / np.sqrt(dim), size=(n, dim))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def ivf_vectors():
    return clustered_vectors(IVF_N, IVF_DIM, seed=1)


@pytest.fixture(scope="module")
def ivf_ids():
    return enterprise_faiss_ids([f"F{i:06d}" for i in range(IVF_N)])


@pytest.fixture(scope="module")
def ivf_queries():
    return clustered_vectors(100, IVF_DIM, seed=2)


def test_choose_factory_has_an_ivf_tier_above_hnsw():
    assert choose_factory(5000, exact_max=1000, hnsw_max=5000) == APPROXIMATE_FACTORY
    ivf = choose_factory(5001, exact_max=1000, hnsw_max=5000)
    assert ivf.startswith("IDMap2,IVF") and ivf.endswith(",SQ8")
    assert choose_factory(1_000_000, exact_max=20_000) == "IDMap2,IVF4096,SQ8"
    assert choose_factory(10_000_000, exact_max=20_000) == "IDMap2,IVF16384_HNSW32,SQ8"  # graph over centroids
    assert choose_factory(10_000_000, exact_max=20_000, override="IVF64,SQ8") == "IDMap2,IVF64,SQ8"
    assert ivf_lists(1_000_000) == 4096 and ivf_lists(10_000_000) == 16384
    assert is_approximate(ivf) and is_approximate(APPROXIMATE_FACTORY) and not is_approximate(EXACT_FACTORY)


def test_a_refresh_keeps_the_ivf_layout_while_the_size_drifts():
    assert refresh_factory("IDMap2,IVF4096,SQ8", "IDMap2,IVF8192,SQ8") == "IDMap2,IVF4096,SQ8"
    assert refresh_factory("IDMap2,IVF4096,SQ8", "IDMap2,IVF16384_HNSW32,SQ8") == "IDMap2,IVF16384_HNSW32,SQ8"
    assert refresh_factory(APPROXIMATE_FACTORY, "IDMap2,IVF4096,SQ8") == "IDMap2,IVF4096,SQ8"
    assert refresh_factory("IDMap2,IVF4096,SQ8", APPROXIMATE_FACTORY) == APPROXIMATE_FACTORY


def test_ivf_index_holds_codes_only_and_trains_on_a_sample(ivf_vectors, ivf_ids):
    index = build_index(ivf_vectors, ivf_ids, IVF_FACTORY, nprobe=8)

    inner = faiss.downcast_index(index.index)
    assert isinstance(inner, faiss.IndexIVFScalarQuantizer)
    assert inner.code_size == IVF_DIM  # one byte per dimension: the float32 vectors are stored once, outside
    assert inner.nprobe == 8
    assert np.array_equal(faiss.vector_to_array(index.id_map), ivf_ids)


def test_ivf_build_adds_in_chunks_with_progress(monkeypatch, ivf_vectors, ivf_ids):
    monkeypatch.setattr("matcher.index.ADD_CHUNK", 1000)
    steps = []

    index = build_index(ivf_vectors, ivf_ids, IVF_FACTORY, progress=steps.append)

    assert steps == [1000, 1000, 1000]
    assert index.ntotal == IVF_N


def test_ivf_training_does_not_hold_the_memory_mapped_vectors(monkeypatch, tmp_path, ivf_vectors, ivf_ids):
    # The training sample touches nearly every page of the vectors file; at 10M those pages
    # (15 GB) stayed in the build's resident set through the whole training.
    path = tmp_path / "vectors.npy"
    np.save(path, ivf_vectors)
    mapped = np.load(path, mmap_mode="r")
    resident_while_training = []
    train = faiss.IndexIDMap2.train

    def spy(index, x):
        resident_while_training.append(resident_kb(path))
        return train(index, x)

    monkeypatch.setattr(faiss.IndexIDMap2, "train", spy)
    np.asarray(mapped).sum()  # every page resident before the build
    assert resident_kb(path) >= ivf_vectors.nbytes // 1024 - 8

    index = build_index(mapped, ivf_ids, IVF_FACTORY)

    assert index.ntotal == IVF_N and index.is_trained
    assert len(resident_while_training) == 1 and resident_while_training[0] <= 8  # at most the header's page


def test_ivf_search_recalls_the_exact_top_10_and_scores_exactly(ivf_vectors, ivf_ids, ivf_queries):
    searcher = VectorSearcher(build_index(ivf_vectors, ivf_ids, IVF_FACTORY, nprobe=8), ivf_vectors, rerank_depth=50)

    assert recall_at_k(searcher, ivf_queries, 10) >= 0.95
    rows, scores = searcher.search(ivf_queries[0], 20)
    assert len(rows) == 20 and len(set(rows.tolist())) == 20
    # Re-ranked against the float32 vectors: the scores are exact inner products, best first.
    np.testing.assert_allclose(scores, ivf_vectors[rows] @ ivf_queries[0], rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("share", [0.83, 0.3, 0.05])
def test_ivf_filtered_search_returns_only_allowed_rows_and_exact_counts(ivf_vectors, ivf_ids, ivf_queries, share):
    searcher = VectorSearcher(build_index(ivf_vectors, ivf_ids, IVF_FACTORY, nprobe=8), ivf_vectors)
    allowed = np.random.default_rng(int(share * 100)).random(IVF_N) < share
    found = 0
    for query in ivf_queries[:30]:
        rows, _ = searcher.search(query, 10, allowed)
        assert len(rows) == 10 and allowed[rows].all()
        truth = brute_force(ivf_vectors, query, 10, allowed)
        if share < SELECTIVE_FILTER_SHARE:  # a small allowed set is scanned exactly
            assert rows.tolist() == truth.tolist()
        found += len(set(rows.tolist()) & set(truth.tolist()))
    assert found / 300 >= 0.95


@pytest.mark.parametrize("factory", [IVF_FACTORY, "IDMap2,HNSW16"])
def test_a_filter_reused_or_changed_between_searches_is_always_applied(ivf_vectors, ivf_ids, ivf_queries, factory):
    # The searcher keeps the bitmap of the last read-only mask (the catalog's cached filters);
    # another mask, or a writable one changed in place, must never be answered with it.
    searcher = VectorSearcher(build_index(ivf_vectors, ivf_ids, factory, nprobe=8), ivf_vectors)
    rng = np.random.default_rng(5)
    first = rng.random(IVF_N) < 0.8
    first.flags.writeable = False
    second = ~first
    for mask in (first, second, first, second):
        rows, _ = searcher.search(ivf_queries[0], 10, mask)
        assert len(rows) == 10 and mask[rows].all()
    writable = np.ones(IVF_N, dtype=bool)
    rows, _ = searcher.search(ivf_queries[1], 10, writable)
    writable[rows] = False  # the same object, changed in place
    again, _ = searcher.search(ivf_queries[1], 10, writable)
    assert not set(again.tolist()) & set(rows.tolist()) and writable[again].all()


def test_ivf_filter_with_few_allowed_returns_all_of_them(ivf_vectors, ivf_ids):
    allowed = np.zeros(IVF_N, dtype=bool)
    allowed[[5, 700, 2999]] = True

    rows, _ = VectorSearcher(build_index(ivf_vectors, ivf_ids, IVF_FACTORY), ivf_vectors).search(ivf_vectors[1], 10, allowed)

    assert sorted(rows.tolist()) == [5, 700, 2999]


@pytest.mark.parametrize("factory", [IVF_FACTORY, "IDMap2,IVF32_HNSW32,SQ8"])  # flat / graph over centroids (10M)
def test_ivf_refresh_removes_and_adds_in_place_keeping_ids_and_positions_aligned(ivf_vectors, ivf_ids, ivf_queries,
                                                                                 factory):
    index = build_index(ivf_vectors, ivf_ids, factory, nprobe=8)
    removed = ivf_ids[100:400:3]  # 100 firms gone
    new_vectors = clustered_vectors(50, IVF_DIM, seed=3)
    new_ids = enterprise_faiss_ids([f"NEW{i}" for i in range(50)])

    how = update_index(index, removed, new_vectors, new_ids)

    keep = ~np.isin(ivf_ids, removed)
    table_ids = np.concatenate([ivf_ids[keep], new_ids])
    table_vectors = np.concatenate([ivf_vectors[keep], new_vectors])
    assert how == "removed" and index.ntotal == len(table_ids)
    assert np.array_equal(faiss.vector_to_array(index.id_map), table_ids)  # row r is the r-th live position
    searcher = VectorSearcher(index, table_vectors)
    for row in [0, 150, 1234, len(table_ids) - 50, len(table_ids) - 1]:  # kept, shifted and new firms
        rows, scores = searcher.search(table_vectors[row], 1)
        assert rows.tolist() == [row] and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert recall_at_k(searcher, ivf_queries, 10) >= 0.95


def test_ivf_saved_and_loaded_with_memory_mapped_vectors_searches_identically(tmp_path, ivf_vectors, ivf_ids, ivf_queries):
    index = build_index(ivf_vectors, ivf_ids, IVF_FACTORY, nprobe=8)
    save_index(index, tmp_path / "index.faiss")
    np.save(tmp_path / "vectors.npy", ivf_vectors)

    loaded = load_index(tmp_path / "index.faiss", ef_search=512)  # efSearch does not touch the stored nprobe
    mapped = np.load(tmp_path / "vectors.npy", mmap_mode="r").view(np.ndarray)

    assert faiss.extract_index_ivf(faiss.downcast_index(loaded.index)).nprobe == 8
    allowed = np.random.default_rng(0).random(IVF_N) < 0.83
    for query in ivf_queries[:10]:
        before = VectorSearcher(index, ivf_vectors).search(query, 15, allowed)
        after = VectorSearcher(loaded, mapped).search(query, 15, allowed)
        assert before[0].tolist() == after[0].tolist()
        np.testing.assert_array_equal(before[1], after[1])


def test_a_fast_scan_ivf_refuses_in_place_removal_that_faiss_would_corrupt(ivf_vectors, ivf_ids):
    index = build_index(ivf_vectors, ivf_ids, "IDMap2,IVF32,PQ16x4fs")

    assert not removes_in_place(index)
    assert removes_in_place(build_index(ivf_vectors, ivf_ids, IVF_FACTORY)) and removes_in_place(
        build_index(ivf_vectors, ivf_ids, EXACT_FACTORY))
    with pytest.raises(ValueError, match="fast-scan"):
        update_index(index, ivf_ids[:5], ivf_vectors[:0], ivf_ids[:0])
    assert index.ntotal == IVF_N


def test_exact_top_rows_block_by_block_equals_one_score_matrix(vectors):
    queries = unit_vectors(7, DIM, seed=12)
    queries[0] = vectors[3]
    tied = vectors.copy()
    tied[250] = tied[3]  # a tie across blocks: the lower row comes first

    blocked = exact_top_rows(tied, queries, 10, block=64)

    assert [rows.tolist() for rows in blocked] == [top_k(scores, 10).tolist() for scores in queries @ tied.T]
    assert blocked[0][:2].tolist() == [3, 250]
