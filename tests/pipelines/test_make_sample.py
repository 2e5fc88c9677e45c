"""The sample step writes the generated region (CSV in English, registry XLSX in Chinese), deterministically."""

from __future__ import annotations

import pandas as pd
import pytest

from matcher.errors import ConfigError
from matcher.mapping import load_mapping
from matcher.sample_zh import CN_REGISTRY_COLUMNS
from matcher.snapshot import ingest
from matcher.sources import read_source
from pipelines.make_sample import write_sample
from tests.conftest import CHAIN_MAP, REPO_ROOT

CN_REGISTRY_MAPPING = REPO_ROOT / "data" / "mappings" / "cn-registry.yaml"


def test_write_sample_writes_the_generated_frames_as_csv_files(tmp_path):
    paths = write_sample(tmp_path / "samples", n=150, seed=2, chain_map_path=CHAIN_MAP)

    assert {"enterprises", "outcomes", "labels"} <= set(paths)
    assert all(p.is_file() and p.suffix == ".csv" for p in paths.values())
    assert len(pd.read_csv(paths["enterprises"])) == 150
    assert not list((tmp_path / "samples").glob("*.tmp"))


def test_same_seed_writes_identical_bytes(tmp_path):
    first = write_sample(tmp_path / "a", n=120, seed=5, chain_map_path=CHAIN_MAP)
    second = write_sample(tmp_path / "b", n=120, seed=5, chain_map_path=CHAIN_MAP)

    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_missing_vocabulary_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="vocab.yaml"):
        write_sample(tmp_path, n=100, seed=0, chain_map_path=CHAIN_MAP, vocabulary_path=tmp_path / "vocab.yaml")


def test_chinese_sample_writes_registry_workbooks_and_the_english_labels(tmp_path):
    zh = write_sample(tmp_path / "zh", n=300, seed=5, chain_map_path=CHAIN_MAP, lang="zh")
    en = write_sample(tmp_path / "en", n=300, seed=5, chain_map_path=CHAIN_MAP)

    assert zh["enterprises"].name == "enterprises-2026-11-01.xlsx"
    assert zh["previous"].name == "previous-2025-11-01.xlsx"
    for name in ("labels", "outcomes"):
        assert zh[name].read_bytes() == en[name].read_bytes(), name
    export = read_source(zh["enterprises"])
    assert list(export.columns) == list(CN_REGISTRY_COLUMNS)
    assert len(export) == 300
    assert not list((tmp_path / "zh").glob("*.tmp"))


def test_chinese_sample_same_seed_writes_identical_bytes(tmp_path):
    first = write_sample(tmp_path / "a", n=120, seed=5, chain_map_path=CHAIN_MAP, lang="zh")
    second = write_sample(tmp_path / "b", n=120, seed=5, chain_map_path=CHAIN_MAP, lang="zh")

    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_chinese_workbooks_ingest_through_cn_registry_with_only_the_broken_rows_quarantined(tmp_path):
    files = write_sample(tmp_path / "samples", n=600, seed=2, chain_map_path=CHAIN_MAP, lang="zh")
    mapping = load_mapping(CN_REGISTRY_MAPPING)

    previous = ingest(files["previous"], mapping, tmp_path / "snapshots", 0.05, mapping_path=CN_REGISTRY_MAPPING)
    current = ingest(files["enterprises"], mapping, tmp_path / "snapshots", 0.05, mapping_path=CN_REGISTRY_MAPPING)

    assert previous.manifest["counts"]["quarantined_rows"] == 0
    assert current.manifest["counts"]["quarantined_rows"] == 6
    assert current.manifest["counts"]["local"] > 0
    quarantine = pd.read_csv(current.path / "quarantine.csv")
    assert quarantine["file"].str.startswith("enterprises-2026-11-01.xlsx").all()


def test_unknown_sample_language_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sample language 'fr'"):
        write_sample(tmp_path, n=100, seed=0, chain_map_path=CHAIN_MAP, lang="fr")


def test_missing_chinese_vocabulary_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="vocab_zh.yaml"):
        write_sample(tmp_path, n=100, seed=0, chain_map_path=CHAIN_MAP, lang="zh", vocabulary_zh_path=tmp_path / "vocab_zh.yaml")
