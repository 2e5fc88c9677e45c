"""Both inference backends of the packaged all-MiniLM-L6-v2 (PyTorch and OpenVINO) make the same
vectors under the same cache key, so a cache or an index built on one serves the other; the key
follows the precision; ``MATCHER_EMBEDDING_BACKEND`` reaches the build's encoder.

Each encoder here is the test's own (the e2e fixture routes every encoder to one shared instance).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from matcher.embedding import Encoder
from matcher.embedding_models import encoder_key
from matcher.errors import ConfigError
from tests.conftest import REPO_ROOT, SAMPLE_MAPPING

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "lidar sensors for autonomous cars",
    "payment gateway for small merchants",
    "gene sequencing services for hospitals",
    "mobile games",
    "Shanghai software company developing industrial machine vision for chip packaging lines",
]


@pytest.fixture(scope="module")
def torch_encoder():
    return Encoder(MODEL, "fp32", backend="torch")


@pytest.fixture(scope="module")
def openvino_encoder():
    return Encoder(MODEL, "fp32", backend="openvino")


def test_each_backend_runs_when_asked(torch_encoder, openvino_encoder):
    assert torch_encoder.backend == "torch"
    assert openvino_encoder.backend == "openvino"


def test_backends_make_the_same_vectors(torch_encoder, openvino_encoder):
    a, b = torch_encoder.encode(TEXTS), openvino_encoder.encode(TEXTS)

    assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert np.sum(a * b, axis=1).min() > 0.999


def test_backends_share_the_cache_key_and_the_key_follows_the_precision(torch_encoder, openvino_encoder):
    assert torch_encoder.key == openvino_encoder.key == encoder_key(MODEL, "fp32")
    assert torch_encoder.key.endswith("-fp32")

    bf16 = encoder_key(MODEL, "bf16")

    assert bf16 != torch_encoder.key and bf16.endswith("-bf16")
    assert bf16.removesuffix("-bf16") == torch_encoder.key.removesuffix("-fp32")  # same model, other precision


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="embedding backend 'cuda' is not one of auto, openvino, torch"):
        Encoder(MODEL, backend="cuda")


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_the_environment_variable_chooses_the_build_encoders_backend(backend, run_main, tmp_path):
    assert run_main(["sample", "--n", 100, "--home", tmp_path])[0] == 0
    source = tmp_path / "data" / "samples" / "enterprises.csv"
    assert run_main(["ingest", source, "--mapping", SAMPLE_MAPPING, "--home", tmp_path])[0] == 0

    # Its own process: the e2e and service fixtures route this process's build encoders to theirs.
    build = subprocess.run(
        [sys.executable, "-m", "pipelines", "build", "--home", str(tmp_path), "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT,
        env={**os.environ, "MATCHER_EMBEDDING_BACKEND": backend, "PYTHONPATH": str(REPO_ROOT)},
    )

    assert build.returncode == 0, build.stderr
    embedding = json.loads(build.stdout)["embedding"]
    assert embedding["backend"] == backend and embedding["key"] == encoder_key(MODEL, embedding["precision"])


def test_an_unknown_backend_in_the_environment_is_one_error_line(run_main, monkeypatch, tmp_path):
    monkeypatch.setenv("MATCHER_EMBEDDING_BACKEND", "cuda")

    code, _, err = run_main(["sample", "--n", 100, "--out", tmp_path / "sample", "--home", tmp_path])

    assert code != 0 and not (tmp_path / "sample").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "MATCHER_EMBEDDING_BACKEND" in lines[0]
