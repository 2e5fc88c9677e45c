"""The real packaged embedding model (loaded once per session)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

TEXTS = [
    "LiDAR sensors for self-driving cars",
    "laser radar modules for autonomous vehicles",
    "bakery selling bread and cakes",
    "online payment gateway for merchants",
]


def test_vectors_are_float32_unit_rows_of_the_model_dimension(real_encoder):
    vectors = real_encoder.encode(TEXTS)

    assert vectors.shape == (4, 384) and real_encoder.dim == 384
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_paraphrases_are_closer_than_unrelated_texts(real_encoder):
    lidar, paraphrase, bakery, payments = real_encoder.encode(TEXTS)

    assert lidar @ paraphrase > 0.4
    assert lidar @ paraphrase > lidar @ bakery + 0.3
    assert lidar @ paraphrase > lidar @ payments + 0.3


def test_encoding_is_deterministic_and_independent_of_batch_order(real_encoder):
    forward = real_encoder.encode(TEXTS)
    backward = real_encoder.encode(TEXTS[::-1])[::-1]
    alone = real_encoder.encode(TEXTS[:1])

    assert np.min(np.sum(forward * backward, axis=1)) > 0.999
    assert float(forward[0] @ alone[0]) > 0.999


def test_empty_input_gives_an_empty_matrix(real_encoder):
    assert real_encoder.encode([]).shape == (0, 384)


def test_progress_counts_every_text(real_encoder):
    done = []

    real_encoder.encode(TEXTS, progress=done.append)

    assert sum(done) == len(TEXTS)


def test_cache_key_names_model_and_precision(real_encoder):
    assert "minilm" in real_encoder.key
    assert real_encoder.key.endswith(real_encoder.precision)
