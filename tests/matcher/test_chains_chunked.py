"""Chain analysis at scale: segment statistics over the universe are computed chunk by chunk
(over memory-mapped vectors) with the same result as one matrix product."""

from __future__ import annotations

import numpy as np

from matcher.chains import segment_stats


def test_segment_stats_by_chunks_equal_one_matrix_product(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1_003, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    segments = rng.normal(size=(5, 16)).astype(np.float32)
    segments /= np.linalg.norm(segments, axis=1, keepdims=True)
    np.save(tmp_path / "v.npy", vectors)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")

    sims = (vectors @ segments.T).astype(np.float64)
    mean, sd = segment_stats(mapped, segments, chunk=97)

    np.testing.assert_allclose(mean, sims.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sd, sims.std(axis=0), rtol=1e-4, atol=1e-6)
    whole = segment_stats(vectors, segments, chunk=10_000)
    np.testing.assert_allclose(mean, whole[0], atol=1e-6)
    np.testing.assert_allclose(sd, whole[1], atol=1e-6)
