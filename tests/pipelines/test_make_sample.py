"""The sample step writes the generated region as CSV files, deterministically."""

from __future__ import annotations

import pandas as pd
import pytest

from matcher.errors import ConfigError
from pipelines.make_sample import write_sample
from tests.conftest import CHAIN_MAP


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
