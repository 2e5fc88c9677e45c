"""Embedding helpers that need no model: normalisation, model resolution, the model's identity in
cache keys, the content-hash cache.

The cache tests use a counting stand-in encoder (tests/factories.py): they are about what gets
embedded, not about the model. The real model is tested in tests/e2e/test_embedding_model.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from matcher import embedding
from matcher.embedding import EmbeddingCache, encode_cached, normalize
from matcher.embedding_models import encoder_key, model_fingerprint, resolve_model_path
from matcher.errors import ModelNotFoundError
from tests.factories import HashingEncoder

TEXTS = ["lidar sensors for cars", "payment gateway for merchants", "gene sequencing", "mobile games"]
HASHES = ["h-lidar", "h-pay", "h-gene", "h-games"]


@pytest.fixture
def encoder():
    return HashingEncoder(dim=32)


def test_normalize_gives_float32_unit_rows_and_keeps_zero_rows_zero():
    vectors = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], dtype=np.float64)

    out = normalize(vectors)

    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]], rtol=1e-6)


def test_unknown_model_is_never_downloaded(tmp_path):
    with pytest.raises(ModelNotFoundError, match="never downloaded"):
        resolve_model_path("sentence-transformers/some-model-we-do-not-ship")


def test_local_model_directory_is_used_as_is(tmp_path):
    assert resolve_model_path(str(tmp_path)) == tmp_path


def test_packaged_model_resolves_to_a_local_directory():
    path = resolve_model_path("all-MiniLM-L6-v2")

    assert path.is_dir()
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == path


def fake_model(path, weights: bytes = b"weights-0", config: str = '{"hidden_size": 32}'):
    """A directory laid out like a sentence-transformers model (the key only reads files)."""
    (path / "1_Pooling").mkdir(parents=True)
    (path / "config.json").write_text(config)
    (path / "model.safetensors").write_bytes(weights)
    (path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (path / "README.md").write_text("# a model")
    return path


def test_a_model_replaced_in_place_gets_another_key(tmp_path):
    model = fake_model(tmp_path / "bge-small-zh")
    before = encoder_key(str(model), "fp32")
    shutil.rmtree(model)
    fake_model(model, weights=b"weights-1")  # same path, same size, other weights

    assert encoder_key(str(model), "fp32") != before


def test_a_changed_configuration_gets_another_key(tmp_path):
    model = fake_model(tmp_path / "m")
    before = encoder_key(str(model), "fp32")
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')

    assert encoder_key(str(model), "fp32") != before


def test_a_moved_model_or_edited_documentation_keeps_the_key(tmp_path):
    model = fake_model(tmp_path / "one" / "bge-small-zh")
    key = encoder_key(str(model), "fp32")
    moved = shutil.copytree(model, tmp_path / "two" / "bge-small-zh")
    (moved / "README.md").write_text("# edited")
    (moved / ".cache").mkdir()
    (moved / ".cache" / "download.lock").write_text("x")

    assert encoder_key(str(moved), "fp32") == key
    assert key.startswith("bge-small-zh-") and key.endswith("-fp32")
    assert encoder_key(str(moved), "bf16") == key.removesuffix("fp32") + "bf16"


def test_an_empty_model_directory_is_refused_naming_it(tmp_path):
    with pytest.raises(ModelNotFoundError, match=str(tmp_path)):
        model_fingerprint(tmp_path)


def test_first_run_embeds_every_profile_once(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache", encoder.dim)

    vectors, embedded = encode_cached(encoder, cache, TEXTS, HASHES)

    assert embedded == 4
    assert encoder.encoded == TEXTS
    assert vectors.shape == (4, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, encoder.encode(TEXTS), rtol=1e-6)


def test_unchanged_profiles_are_never_embedded_twice(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache", encoder.dim)
    first, _ = encode_cached(encoder, cache, TEXTS, HASHES)
    encoder.encoded.clear()

    again, embedded = encode_cached(encoder, cache, TEXTS, HASHES)

    assert embedded == 0
    assert encoder.encoded == []
    np.testing.assert_array_equal(again, first)


def test_cache_survives_a_restart(tmp_path, encoder):
    encode_cached(encoder, EmbeddingCache(tmp_path / "cache", encoder.dim), TEXTS, HASHES)
    first = encoder.encode(TEXTS)
    fresh_encoder = HashingEncoder(dim=32)

    reopened = EmbeddingCache(tmp_path / "cache", fresh_encoder.dim)
    vectors, embedded = encode_cached(fresh_encoder, reopened, TEXTS, HASHES)

    assert len(reopened) == 4
    assert embedded == 0 and fresh_encoder.calls == 0
    np.testing.assert_allclose(vectors, first, rtol=1e-6)


def test_only_new_or_changed_profiles_are_embedded(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache", encoder.dim)
    encode_cached(encoder, cache, TEXTS, HASHES)
    encoder.encoded.clear()
    texts = [*TEXTS[:3], "mobile games and esports", "battery cells"]
    hashes = [*HASHES[:3], "h-games-v2", "h-battery"]

    vectors, embedded = encode_cached(encoder, cache, texts, hashes)

    assert embedded == 2
    assert encoder.encoded == ["mobile games and esports", "battery cells"]
    np.testing.assert_allclose(vectors, encoder.encode(texts), rtol=1e-6)


def test_identical_profiles_in_one_run_are_embedded_once(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache", encoder.dim)

    vectors, embedded = encode_cached(encoder, cache, [TEXTS[0], TEXTS[1], TEXTS[0]], ["a", "b", "a"])

    assert embedded == 2
    assert encoder.encoded == [TEXTS[0], TEXTS[1]]
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_vectors_come_back_in_the_order_asked(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache", encoder.dim)
    encode_cached(encoder, cache, TEXTS, HASHES)

    vectors, _ = encode_cached(encoder, cache, TEXTS[::-1], HASHES[::-1])

    np.testing.assert_allclose(vectors, encoder.encode(TEXTS[::-1]), rtol=1e-6)


def test_progress_is_reported_for_embedded_texts_only(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache", encoder.dim)
    encode_cached(encoder, cache, TEXTS[:2], HASHES[:2])
    done = []

    encode_cached(encoder, cache, TEXTS, HASHES, progress=done.append)

    assert sum(done) == 2


def test_adding_known_hashes_writes_no_new_shard(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache", encoder.dim)
    cache.add(HASHES, encoder.encode(TEXTS))
    shards = sorted(p.name for p in (tmp_path / "cache").iterdir())

    cache.add(HASHES, encoder.encode(TEXTS))

    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == shards
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]


def test_cache_missing_reports_positions(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache", encoder.dim)
    cache.add(HASHES[:2], encoder.encode(TEXTS[:2]))

    assert cache.missing(["h-gene", "h-lidar", "h-new"]) == [0, 2]


def test_a_large_run_is_stored_in_bounded_shards_and_read_into_the_callers_array(tmp_path, encoder, monkeypatch):
    """A 10M-profile cache is never held whole: shards of SHARD_ROWS, read one at a time, written
    straight into the build's memory-mapped vectors.npy."""
    monkeypatch.setattr(embedding, "SHARD_ROWS", 3)
    texts = [f"profile number {i}" for i in range(8)]
    hashes = [f"h{i}" for i in range(8)]
    encode_cached(encoder, EmbeddingCache(tmp_path / "cache", encoder.dim), texts, hashes)
    assert len(list((tmp_path / "cache").glob("shard-*.npz"))) == 3

    reopened = EmbeddingCache(tmp_path / "cache", encoder.dim)
    out = np.lib.format.open_memmap(tmp_path / "vectors.npy", mode="w+", dtype=np.float32, shape=(8, encoder.dim))
    order = [7, 0, 4, 3, 6, 1, 5, 2]
    vectors, embedded = encode_cached(encoder, reopened, [texts[i] for i in order], [hashes[i] for i in order], out=out)

    assert embedded == 0 and vectors is out
    out.flush()
    np.testing.assert_allclose(np.load(tmp_path / "vectors.npy"), encoder.encode([texts[i] for i in order]), rtol=1e-6)
