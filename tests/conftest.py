"""Shared fixtures: hermetic environment, the real embedding model (loaded once per session)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests never download anything and never pick up a developer's MATCHER_* settings (MATCHER_TEST_*
# variables configure the tests themselves, e.g. MATCHER_TEST_POSTGRES and
# MATCHER_TEST_REQUIRE_POSTGRES, see tests/service/databases.py), except the two that choose the
# embedding path: the suite must pass on every one of them (fp32 / bf16, OpenVINO / PyTorch), so a
# run can force each, e.g. MATCHER_EMBEDDING_PRECISION=fp32 MATCHER_EMBEDDING_BACKEND=torch.
EMBEDDING_PATH_SETTINGS = ("MATCHER_EMBEDDING_PRECISION", "MATCHER_EMBEDDING_BACKEND")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
for _name in [n for n in os.environ if n.startswith("MATCHER_") and not n.startswith("MATCHER_TEST_")
              and n not in EMBEDDING_PATH_SETTINGS]:
    del os.environ[_name]
EMBEDDING_PRECISION = os.environ.get("MATCHER_EMBEDDING_PRECISION", "auto")
EMBEDDING_BACKEND = os.environ.get("MATCHER_EMBEDDING_BACKEND", "auto")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT / ".." / "shared"
SAMPLE_MAPPING = REPO_ROOT / "data" / "mappings" / "sample.yaml"
YC_MAPPING = REPO_ROOT / "data" / "mappings" / "yc.yaml"
CHAIN_MAP = REPO_ROOT / "data" / "chains" / "yangpu.yaml"


@pytest.fixture(scope="session")
def real_encoder():
    """The real packaged all-MiniLM-L6-v2, loaded once for the whole session, on the embedding
    path the run chose (``MATCHER_EMBEDDING_PRECISION`` / ``MATCHER_EMBEDDING_BACKEND``)."""
    from matcher.embedding import Encoder

    return Encoder("all-MiniLM-L6-v2", EMBEDDING_PRECISION, backend=EMBEDDING_BACKEND)


@pytest.fixture
def run_main(monkeypatch, capsys):
    """Run the console-script entry ``pipelines.cli.main`` in-process.

    Returns a function ``(args) -> (exit_code, stdout, stderr)``.
    """
    from pipelines.cli import main

    def run(args: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["matcher", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
