"""FAISS index and VectorSearcher: exact results, exact counts under filters, stable ids, I/O."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from matcher.errors import ArtifactCorruptError, ConfigError
from matcher.index import (
    APPROXIMATE_FACTORY,
    EXACT_FACTORY,
    VectorSearcher,
    build_index,
    choose_factory,
    enterprise_faiss_ids,
    load_index,
    save_index,
    top_k,
)
from tests.factories import unit_vectors

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
