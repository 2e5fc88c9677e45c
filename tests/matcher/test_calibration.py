"""The embedding backend chosen by measurement on this machine (matcher/calibration.py): real
encoders timed on real texts, the cosine check that keeps a wrong backend out, the record stored
per machine and reused, and a build that calibrates and says so in its manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matcher import calibration
from matcher.calibration import MIN_COSINE, available_backends, calibrate, calibrated_backend, calibration_texts
from matcher.embedding import Encoder
from matcher.errors import ConfigError
from pipelines import build_index
from pipelines.build_index import build
from tests.pipelines.test_build_index import NOW, config_for, home, ingest_factory  # noqa: F401 - fixture

TEXTS = [
    "Industrial robot arms and motion controllers for automotive welding lines.",
    "Cloud accounting software for small retailers and restaurants.",
    "Lidar sensors for autonomous trucks and mining vehicles.",
    "Gene sequencing services and oncology diagnostic panels for hospitals.",
    "工业机器人减速器与伺服电机的研发、生产和销售。",
    "跨境电商服务：海外仓储、报关清关、国际物流。",
    "Battery recycling: recovering lithium, nickel and cobalt from used EV packs.",
    "Short-video marketing agency for consumer brands.",
] * 3


class Drifting:
    """A real encoder whose vectors are pushed off the model's (what a broken conversion would do)."""

    def __init__(self, inner: Encoder, backend: str):
        self.inner, self.backend = inner, backend

    def encode(self, texts, progress=None):
        vectors = self.inner.encode(texts)
        noise = np.random.default_rng(0).normal(0, 0.05, vectors.shape).astype(np.float32)
        shifted = vectors + noise
        return shifted / np.linalg.norm(shifted, axis=1, keepdims=True)


def test_every_available_backend_is_timed_and_checked_and_the_fastest_passing_one_chosen():
    record = calibrate("all-MiniLM-L6-v2", "auto", TEXTS, batch_size=8)
    by_backend = {c["backend"]: c for c in record["candidates"]}
    assert set(by_backend) == set(available_backends())
    for candidate in by_backend.values():
        assert candidate["passed"], candidate
        assert candidate["min_cosine"] >= MIN_COSINE
        assert candidate["texts_per_s"] > 0
    assert record["chosen"] == max(by_backend.values(), key=lambda c: c["texts_per_s"])["backend"]
    assert record["texts"] == len(TEXTS)
    assert record["machine"]["cpus"] >= 1 and record["machine"]["cpu"]


def test_a_backend_whose_vectors_stray_from_pytorch_fp32_is_never_chosen():
    def make_encoder(model, precision, batch_size, backend):
        encoder = Encoder(model, precision, batch_size, backend="torch")
        return Drifting(encoder, backend) if backend == "fast-but-wrong" else encoder

    record = calibrate("all-MiniLM-L6-v2", "fp32", TEXTS, 8, backends=["fast-but-wrong", "torch"],
                       make_encoder=make_encoder)
    wrong = next(c for c in record["candidates"] if c["backend"] == "fast-but-wrong")
    assert not wrong["passed"] and wrong["min_cosine"] < MIN_COSINE
    assert "minimum cosine" in wrong["reason"]
    assert record["chosen"] == "torch"


def test_a_backend_the_model_cannot_run_on_is_reported_not_raised():
    def make_encoder(model, precision, batch_size, backend):
        if backend == "openvino":
            raise ConfigError("embedding model cannot run on OpenVINO: conversion failed")
        return Encoder(model, precision, batch_size, backend=backend)

    record = calibrate("all-MiniLM-L6-v2", "fp32", TEXTS[:8], 8, backends=["openvino", "torch"], make_encoder=make_encoder)
    openvino = next(c for c in record["candidates"] if c["backend"] == "openvino")
    assert not openvino["passed"] and "conversion failed" in openvino["reason"]
    assert record["chosen"] == "torch"


def test_a_machine_is_calibrated_once_and_the_record_reused(tmp_path):
    directory = tmp_path / "calibration"
    assert calibrated_backend(directory, "all-MiniLM-L6-v2", "auto", lambda: TEXTS, 8, measure=False) is None
    first = calibrated_backend(directory, "all-MiniLM-L6-v2", "auto", lambda: TEXTS, 8)
    stored = list(directory.glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["chosen"] == first["chosen"]

    def never():
        raise AssertionError("a stored calibration must not be measured again")

    again = calibrated_backend(directory, "all-MiniLM-L6-v2", "auto", never, 8)
    assert again == first


def test_calibration_texts_are_a_fixed_draw_of_the_corpus():
    corpus = [f"profile {i}" for i in range(1000)]
    drawn = calibration_texts(corpus, 50)
    assert len(drawn) == 50 and len(set(drawn)) == 50 and set(drawn) <= set(corpus)
    assert drawn == calibration_texts(corpus, 50)
    assert calibration_texts(corpus[:10], 50) == corpus[:10]


def test_a_big_enough_build_calibrates_and_records_the_choice_in_its_manifest(home, monkeypatch):  # noqa: F811
    ingest_factory(home, n=40)
    monkeypatch.setattr(build_index, "Encoder", Encoder)  # the real class, even where e2e routes it to a shared one
    monkeypatch.setattr(build_index, "CALIBRATE_MIN_PROFILES", 10)
    monkeypatch.setattr(calibration, "CALIBRATION_TEXTS", 16)
    _, manifest = build(config_for(home), now=NOW)
    recorded = manifest["embedding"]["calibration"]
    assert recorded["chosen"] == manifest["embedding"]["backend"]
    assert {c["backend"] for c in recorded["candidates"]} == set(available_backends())
    assert list((home / "models" / "cache" / "calibration").glob("*.json"))


def test_a_named_backend_or_a_small_build_skips_the_calibration(home, monkeypatch):  # noqa: F811
    ingest_factory(home, n=20)
    monkeypatch.setattr(build_index, "Encoder", Encoder)
    _, manifest = build(config_for(home, embedding_backend="torch"), now=NOW)
    assert manifest["embedding"]["calibration"] is None and manifest["embedding"]["backend"] == "torch"
    assert not (home / "models" / "cache" / "calibration").exists()
