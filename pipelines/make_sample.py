"""Sample step: write the synthetic sample region (enterprises, outcomes, labels) as CSV files."""

from __future__ import annotations

from pathlib import Path

import yaml

from matcher.chains import load_chain_map
from matcher.errors import ConfigError
from matcher.sample import generate_sample
from matcher.settings import PROJECT_ROOT

VOCABULARY = PROJECT_ROOT / "data" / "generator" / "vocabulary.yaml"


def write_sample(out_dir: Path, n: int, seed: int, chain_map_path: Path, vocabulary_path: Path = VOCABULARY) -> dict[str, Path]:
    """Generate and write ``enterprises.csv``, ``outcomes.csv`` and ``labels.csv``; return their paths."""
    if not vocabulary_path.is_file():
        raise ConfigError(f"{vocabulary_path}: generator vocabulary not found")
    vocabulary = yaml.safe_load(vocabulary_path.read_text(encoding="utf-8"))
    frames = generate_sample(load_chain_map(chain_map_path), vocabulary, n=n, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        path = out_dir / f"{name}.csv"
        tmp = path.with_suffix(".csv.tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(path)
        paths[name] = path
    return paths
