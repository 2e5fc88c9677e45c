"""The fast scale-test sample: the normal sample's columns and distributions, Parquet row groups,
deterministic, and it ingests through the sample mapping with only the broken rows quarantined."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from matcher import schemas as S
from matcher.mapping import load_mapping
from matcher.snapshot import validate_source
from pipelines.cli_app import ExitCode
from pipelines.cli import app
from pipelines.make_sample import write_sample, write_sample_fast
from tests.conftest import CHAIN_MAP, REPO_ROOT

SAMPLE_MAPPING = REPO_ROOT / "data" / "mappings" / "sample.yaml"
N = 20_000


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    base = tmp_path_factory.mktemp("samples")
    normal = write_sample(base / "normal", n=N, seed=3, chain_map_path=CHAIN_MAP)["enterprises"]
    fast = write_sample_fast(base / "fast", n=N, seed=3, chain_map_path=CHAIN_MAP)["enterprises"]
    mapping = load_mapping(SAMPLE_MAPPING)
    return normal, fast, validate_source(normal, mapping), validate_source(fast, mapping)


def test_fast_sample_has_the_normal_columns_as_parquet_row_groups(tmp_path):
    path = write_sample_fast(tmp_path, n=1_200, seed=1, chain_map_path=CHAIN_MAP)["enterprises"]
    normal = write_sample(tmp_path / "n", n=150, seed=1, chain_map_path=CHAIN_MAP)["enterprises"]

    assert path.name == "enterprises.parquet"
    assert pq.ParquetFile(path).schema_arrow.names == list(pd.read_csv(normal, nrows=1).columns)
    assert pq.ParquetFile(path).metadata.num_rows == 1_200
    ids = pd.read_parquet(path, columns=["uscc"])["uscc"]
    assert ids.is_unique and (ids.str.len() >= 13).all()


def test_fast_sample_same_seed_same_rows_other_seed_other_rows(tmp_path):
    a = pd.read_parquet(write_sample_fast(tmp_path / "a", n=500, seed=4, chain_map_path=CHAIN_MAP)["enterprises"])
    b = pd.read_parquet(write_sample_fast(tmp_path / "b", n=500, seed=4, chain_map_path=CHAIN_MAP)["enterprises"])
    c = pd.read_parquet(write_sample_fast(tmp_path / "c", n=500, seed=5, chain_map_path=CHAIN_MAP)["enterprises"])

    pd.testing.assert_frame_equal(a, b)
    assert (a["business_scope"] != c["business_scope"]).mean() > 0.9


def test_fast_sample_validates_to_the_same_dtypes_as_the_normal_sample(both):
    _, _, normal, fast = both

    assert list(fast.enterprises.columns) == list(normal.enterprises.columns)
    assert fast.enterprises.dtypes.astype(str).to_dict() == normal.enterprises.dtypes.astype(str).to_dict()


def test_only_the_deliberately_broken_rows_are_quarantined(both):
    _, _, normal, fast = both

    def broken(result):
        return result.quarantine.groupby(["column", "reason"]).size()

    expected = {("employees", "below the minimum 0"), ("founded_year", "not a number"),
                ("last_funding_date", "not a date (use YYYY-MM-DD)"), ("name", "missing required value")}
    for result in (normal, fast):
        assert (broken(result)[list(expected)] == N // 500 // 4).all()
        # Beyond them, only the rare draw past a range (growth below -100 %) in either sample.
        assert result.rows_quarantined - N // 500 <= 3


def _summary(frame: pd.DataFrame) -> dict[str, float]:
    texts = frame[S.DESCRIPTION].str.len()
    return {
        "local share": frame[S.IS_LOCAL].mean(),
        "abroad share": (frame[S.COUNTRY] != "CN").mean(),
        "founded median": frame[S.FOUNDED_YEAR].median(),
        "founded p10": frame[S.FOUNDED_YEAR].quantile(0.1),
        "log employees mean": np.log(frame[S.EMPLOYEES].astype(float)).mean(),
        "employees known": frame[S.EMPLOYEES].notna().mean(),
        "revenue known": frame[S.REVENUE].notna().mean(),
        "rd known": frame[S.RD_INTENSITY].notna().mean(),
        "rd mean": frame[S.RD_INTENSITY].astype(float).mean(),
        "growth mean": frame[S.EMPLOYEE_GROWTH].astype(float).mean(),
        "patents mean": np.log1p(frame[S.PATENTS].astype(float)).mean(),
        "funded": frame[S.LAST_FUNDING_DATE].notna().mean(),
        "qualifications per firm": frame[S.QUALIFICATIONS].map(len).mean(),
        "risk share": frame[S.RISK_FLAGS].map(bool).mean(),
        "operating share": (frame[S.STATUS_CLASS] == "operating").mean(),
        "tagged share": frame[S.TAGS].map(bool).mean(),
        "coded share": frame[S.INDUSTRY_CODE].notna().mean(),
        "description chars mean": texts.mean() / 100,
        "description chars p90": texts.quantile(0.9) / 100,
    }


def test_fast_sample_matches_the_normal_sample_distributions(both):
    _, _, normal, fast = both
    expected, got = _summary(normal.enterprises), _summary(fast.enterprises)

    far = {k: (round(expected[k], 3), round(got[k], 3)) for k in expected
           if abs(got[k] - expected[k]) > 0.03 + 0.06 * abs(expected[k])}
    assert not far, far
    # Same segment vocabulary: the distinct description openings overlap heavily.
    words = lambda f: set(f.enterprises[S.DESCRIPTION].str.split().str[0])  # noqa: E731
    assert len(words(normal) & words(fast)) >= 0.6 * len(words(normal))


def test_sample_command_fast_writes_parquet_and_refuses_zh(tmp_path):
    runner = CliRunner()
    done = runner.invoke(app, ["sample", "--fast", "--n", "300", "--out", str(tmp_path), "--home", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "enterprises.parquet").is_file()

    refused = runner.invoke(app, ["sample", "--fast", "--lang", "zh", "--n", "300", "--home", str(tmp_path)])
    assert refused.exit_code == ExitCode.INVALID
    assert "--fast" in refused.output

    too_many = runner.invoke(app, ["sample", "--n", "3000000", "--home", str(tmp_path)])
    assert too_many.exit_code == ExitCode.INVALID
    assert "--fast" in too_many.output
