"""A local multilingual sentence-transformers model (``MATCHER_EMBEDDING_MODEL=<directory>``) end to
end: encoding Chinese, ``matcher build``, ``matcher refresh``, ``matcher search`` and the service's
query encoder.

No Chinese model can be downloaded here, so each test session builds tiny ones in a temporary
directory: a randomly initialised BERT (hidden size 32, 2 layers) with a WordPiece vocabulary of
every CJK unified ideograph plus some Latin words, saved by sentence-transformers with mean pooling
and normalisation, exactly as a real model directory is laid out (``modules.json``,
``1_Pooling/config.json``, ...). Random weights make meaningless but real vectors: what is tested is
that the model's identity flows through the cache, the manifest and the query encoder, and that
two models' vectors never share an index.

The tiny models never go through the e2e ``shared_model`` routing (it substitutes the packaged
model only). The workspaces are a 150-enterprise Chinese sample ingested from XLSX through
``data/mappings/cn-registry.yaml``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matcher import artifacts
from matcher.embedding import Encoder
from matcher.embedding_models import encoder_key
from matcher.enterprise_table import read_enterprise_table
from matcher.openvino_backend import openvino_available
from matcher.snapshot import profile_texts
from tests.conftest import EMBEDDING_BACKEND, EMBEDDING_PRECISION, REPO_ROOT
from tests.e2e.conftest import cli, cli_json

CN_REGISTRY = REPO_ROOT / "data" / "mappings" / "cn-registry.yaml"
N_SAMPLE = 150
HIDDEN = 32
CHINESE = [
    "充电桩运营",  # same length as the next: tokenised to [UNK]s they would be one vector
    "芯片设计研",
    "上海某某智能科技有限公司 经营范围：软件开发；人工智能应用软件开发",
    "生物医药研发；CDMO 服务",
    "AI chip and GPU design",
]


def make_tiny_model(path: Path, seed: int) -> Path:
    """Save a tiny random sentence-transformers model (BERT, mean pooling, normalised) at ``path``."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    source = path.with_name(path.name + "-transformer")
    source.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    cjk = [chr(c) for c in range(0x4E00, 0x9FA6)]
    latin = ["ai", "gpu", "saas", "cdmo", "software", "chip", "battery", "cloud", "data", "robot", "design", "and"]
    characters = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = source / "vocab.txt"
    vocab.write_text("\n".join(specials + cjk + latin + characters) + "\n", encoding="utf-8")
    # The vocabulary file positionally: transformers 4 calls it vocab_file, 5 calls it vocab.
    tokenizer = BertTokenizerFast(str(vocab), do_lower_case=True, tokenize_chinese_chars=True)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=HIDDEN, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    BertModel(config).save_pretrained(source)
    tokenizer.save_pretrained(source)
    modules = [models.Transformer(str(source), max_seq_length=128), models.Pooling(HIDDEN, "mean"), models.Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    shutil.rmtree(source)
    return path


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny models that differ only in their random weights (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {"a": make_tiny_model(root / "tiny-zh-a", 0), "b": make_tiny_model(root / "tiny-zh-b", 1)}


@pytest.fixture(scope="module")
def chinese_sample(tmp_path_factory) -> dict[str, Path]:
    """Last year's and this year's Chinese registry exports (XLSX) of a small sample region."""
    out = tmp_path_factory.mktemp("zh-sample")
    return {k: Path(v) for k, v in cli_json("sample", "--lang", "zh", "--n", N_SAMPLE, "--seed", 5, "--out", out,
                                            "--home", out).items()}


def encode(model: Path, texts: list[str], backend: str = EMBEDDING_BACKEND) -> np.ndarray:
    return Encoder(str(model), EMBEDDING_PRECISION, backend=backend).encode(texts)


def published(home: Path) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """The current version's manifest, enterprise table and stored vectors."""
    path = artifacts.version_dir(home / "models" / "matcher")
    return (json.loads((path / "manifest.json").read_text()), read_enterprise_table(path / "enterprises.arrow"),
            np.load(path / "vectors.npy"))


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def assert_vectors_are(model: Path, enterprises: pd.DataFrame, vectors: np.ndarray, other: Path) -> None:
    """Every stored vector is ``model``'s embedding of its profile, none is ``other``'s."""
    texts = profile_texts(enterprises)
    mine, theirs = row_cosines(vectors, encode(model, texts)), row_cosines(vectors, encode(other, texts))
    # bf16 rounding depends on the batch a text shares: equal up to that, not bit for bit.
    assert mine.min() > 0.99, f"stored vectors are not {model.name}'s: min cosine {mine.min():.3f}"
    assert theirs.max() < 0.9, f"some stored vectors are still {other.name}'s: max cosine {theirs.max():.3f}"


def ingest(home: Path, source: Path) -> dict:
    return cli_json("ingest", source, "--mapping", CN_REGISTRY, "--home", home)


# --- the encoder ----------------------------------------------------------------------------

def test_chinese_texts_get_distinct_unit_vectors(tiny_models):
    encoder = Encoder(str(tiny_models["a"]), EMBEDDING_PRECISION, backend=EMBEDDING_BACKEND)

    vectors = encoder.encode(CHINESE)

    assert encoder.dim == HIDDEN and vectors.shape == (len(CHINESE), HIDDEN) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    cosines = vectors @ vectors.T
    assert cosines[~np.eye(len(CHINESE), dtype=bool)].max() < 0.995, "different texts, near-identical vectors"
    again = encoder.encode(CHINESE[::-1])[::-1]
    assert row_cosines(vectors, again).min() > 0.999


@pytest.mark.skipif(not openvino_available() or EMBEDDING_BACKEND == "torch",
                    reason="OpenVINO is not installed, or this run turns it off (MATCHER_EMBEDDING_BACKEND=torch)")
def test_openvino_and_pytorch_make_the_same_vectors(tiny_models):
    on_openvino = Encoder(str(tiny_models["a"]), EMBEDDING_PRECISION, backend="openvino")
    on_torch = Encoder(str(tiny_models["a"]), EMBEDDING_PRECISION, backend="torch")

    assert (on_openvino.backend, on_torch.backend) == ("openvino", "torch")
    assert row_cosines(on_openvino.encode(CHINESE), on_torch.encode(CHINESE)).min() > 0.999
    assert on_openvino.key == on_torch.key


def test_the_key_names_the_model_content_not_its_path(tiny_models, tmp_path):
    a, b = tiny_models["a"], tiny_models["b"]
    moved = shutil.copytree(a, tmp_path / "elsewhere" / a.name)

    key_a = Encoder(str(a), EMBEDDING_PRECISION, backend="torch").key

    assert key_a == encoder_key(str(a), EMBEDDING_PRECISION) == encoder_key(str(moved), EMBEDDING_PRECISION)
    assert key_a.startswith("tiny-zh-a-")
    assert encoder_key(str(b), EMBEDDING_PRECISION).split("-")[-2] != key_a.split("-")[-2]


# --- build, refresh, search, service --------------------------------------------------------

def test_build_publishes_the_model_and_a_new_model_reembeds_every_profile(tiny_models, chinese_sample, tmp_path,
                                                                         monkeypatch):
    a, b = tiny_models["a"], tiny_models["b"]
    home = tmp_path / "home"
    ingest(home, chinese_sample["enterprises"])

    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(a))
    first = cli_json("build", "--home", home)
    manifest, enterprises, vectors_a = published(home)
    n = len(enterprises)
    assert first["embedding"]["model"] == str(a) and first["embedding"]["dim"] == HIDDEN
    assert first["embedding"]["key"] == encoder_key(str(a), EMBEDDING_PRECISION)
    assert first["counts"]["embedded"] == n and first["index"]["ntotal"] == n
    assert vectors_a.shape == (n, HIDDEN)
    for name in ("segment_vectors.npy", "gap_vectors.npy", "keyword_vectors.npy"):
        assert np.load(artifacts.version_dir(home / "models" / "matcher") / name).shape[1] == HIDDEN, name
    assert_vectors_are(a, enterprises, vectors_a, other=b)

    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(b))
    second = cli_json("build", "--home", home)
    _, enterprises, vectors_b = published(home)
    assert second["embedding"]["model"] == str(b)
    assert second["embedding"]["key"] == encoder_key(str(b), EMBEDDING_PRECISION)
    assert (second["counts"]["embedded"], second["counts"]["reused_vectors"]) == (n, 0)
    assert_vectors_are(b, enterprises, vectors_b, other=a)

    # Back to the first model: its cached vectors, exactly, and nothing of the second model's.
    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(a))
    third = cli_json("build", "--home", home)
    _, _, vectors = published(home)
    assert (third["counts"]["embedded"], third["counts"]["reused_vectors"]) == (0, n)
    np.testing.assert_array_equal(vectors, vectors_a)


def test_refresh_reembeds_every_profile_when_the_model_is_replaced_in_place(tiny_models, chinese_sample, tmp_path,
                                                                           monkeypatch):
    model = shutil.copytree(tiny_models["a"], tmp_path / "models" / "multilingual")
    home = tmp_path / "home"
    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(model))
    ingest(home, chinese_sample["previous"])
    before = cli_json("build", "--home", home)

    # Same directory, another model (an upgrade unpacked over the old one).
    shutil.rmtree(model)
    shutil.copytree(tiny_models["b"], model)
    record = cli_json("refresh", chinese_sample["enterprises"], "--mapping", CN_REGISTRY, "--home", home)

    manifest, enterprises, vectors = published(home)
    assert record["status"] == "published", record
    assert record["counts"]["embedded"] == record["counts"]["enterprises"] == len(enterprises)
    assert record["counts"]["reused_vectors"] == 0
    assert manifest["embedding"]["model"] == str(model)
    assert manifest["embedding"]["key"] == encoder_key(str(model), EMBEDDING_PRECISION) != before["embedding"]["key"]
    assert_vectors_are(tiny_models["b"], enterprises, vectors, other=tiny_models["a"])


def test_search_and_the_service_encode_queries_with_the_artifacts_model(tiny_models, chinese_sample, tmp_path,
                                                                       monkeypatch):
    from fastapi.testclient import TestClient

    from matcher.settings import Settings
    from matcher.store import repo
    from service.app import create_app

    model = tiny_models["a"]
    home = tmp_path / "home"
    ingest(home, chinese_sample["enterprises"])
    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(model))
    manifest = cli_json("build", "--home", home)
    # The artifact names its model: queries use it whatever the environment says now.
    monkeypatch.delenv("MATCHER_EMBEDDING_MODEL")

    found = cli_json("search", "充电桩运营", "--top", 5, "--include-local", "--home", home)
    assert len(found["results"]) == 5

    app = create_app(Settings(home=home, service_warm_gaps=False, service_warm_explain_top=0))
    with TestClient(app) as client:
        catalog = app.state.svc.holder.current.catalog
        staff = repo.create_key(app.state.svc.store, "staff", name="staff")[0]
        response = client.post("/v1/prospects/search", json={"text": "充电桩运营 芯片设计", "top": 5},
                               headers={"Authorization": f"Bearer {staff}"})
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == 5
        encoder = catalog.encoder
        assert encoder.model_path == model and encoder.dim == HIDDEN
        assert encoder.key == manifest["embedding"]["key"]


def test_queries_are_refused_when_the_model_was_replaced_since_the_build(tiny_models, chinese_sample, tmp_path,
                                                                         monkeypatch, run_main):
    model = shutil.copytree(tiny_models["a"], tmp_path / "models" / "multilingual")
    home = tmp_path / "home"
    ingest(home, chinese_sample["enterprises"])
    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(model))
    cli_json("build", "--home", home)
    shutil.rmtree(model)
    shutil.copytree(tiny_models["b"], model)

    # Encoding the query with the new model would search model B's query among model A's vectors.
    code, _, stderr = run_main(["search", "充电桩运营", "--top", 5, "--json", "--home", home])

    assert code != 0 and str(model) in stderr and "matcher build" in stderr
