"""One generated, ingested and built workspace shared by the end-to-end tests.

The CLI runs in-process (``typer.testing.CliRunner`` on ``pipelines.cli.app``). Every ``Encoder``
the commands construct for the packaged model is the session's already-loaded model, so the real
model loads once and the full build runs once per session.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from matcher import artifacts
from matcher.embedding_models import resolve_model_path
from matcher.enterprise_table import read_enterprise_table
from pipelines.cli import app
from tests.conftest import SAMPLE_MAPPING

N_SAMPLE = 400
SEED = 3


@pytest.fixture(scope="session")
def shared_model(real_encoder):
    """Route the CLI's Encoder(...) calls for the packaged model to the session's instance."""
    from matcher import catalog, embedding
    from pipelines import build_index

    encoder_class = embedding.Encoder

    def make_encoder(model="all-MiniLM-L6-v2", precision="auto", batch_size=64, **options):
        same_model = resolve_model_path(model).resolve() == real_encoder.model_path.resolve()
        if same_model and precision in ("auto", real_encoder.precision):
            return real_encoder
        return encoder_class(model, precision, batch_size, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_index, "Encoder", make_encoder)
        patch.setattr(catalog, "Encoder", make_encoder)
        yield real_encoder


def cli(*args, expect: int | None = 0):
    """Invoke the CLI in-process; check the exit code unless ``expect`` is None."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if expect is not None and result.exit_code != expect:
        raise AssertionError(
            f"matcher {' '.join(map(str, args))} exited {result.exit_code}, expected {expect}\n"
            f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}\nexception: {result.exception!r}"
        ) from result.exception
    return result


def cli_json(*args):
    return json.loads(cli(*args, "--json").stdout)


@dataclass
class Workspace:
    home: Path
    ingest: dict
    manifest: dict

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "models" / "matcher"

    @property
    def version_dir(self) -> Path:
        return artifacts.version_dir(self.artifacts_dir)

    def enterprises(self) -> pd.DataFrame:
        """The published enterprise table (the oracle for filter counts)."""
        return read_enterprise_table(self.version_dir / "enterprises.arrow")


def build_workspace(home: Path) -> Workspace:
    cli("sample", "--n", N_SAMPLE, "--seed", SEED, "--home", home)
    summary = cli_json("ingest", home / "data" / "samples" / "enterprises.csv", "--mapping", SAMPLE_MAPPING,
                       "--home", home)
    manifest = cli_json("build", "--home", home)
    return Workspace(home, summary, manifest)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, shared_model) -> Workspace:
    """Sample -> ingest -> build, once per session. Tests must not change it (copy it instead)."""
    return build_workspace(tmp_path_factory.mktemp("workspace"))


@pytest.fixture
def workspace_copy(workspace, tmp_path) -> Workspace:
    """A private copy of the built workspace, for tests that ingest, rebuild or roll back."""
    home = tmp_path / "home"
    shutil.copytree(workspace.home, home)
    return Workspace(home, workspace.ingest, workspace.manifest)
