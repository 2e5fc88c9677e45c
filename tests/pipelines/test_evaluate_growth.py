"""``matcher evaluate growth`` on the sample's two exports (``previous.csv`` a year before
``enterprises.csv``): the out-of-fold ROC-AUC and average precision it documents, and one readable
error line for inputs it cannot use."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import SAMPLE_MAPPING


@pytest.fixture
def sample_pair(run_main, tmp_path):
    """(before, after): the 300-enterprise sample region's previous and current export."""
    code, _, err = run_main(["sample", "--n", 300, "--out", tmp_path / "sample", "--home", tmp_path])
    assert code == 0, err
    return tmp_path / "sample" / "previous.csv", tmp_path / "sample" / "enterprises.csv"


def evaluate(run_main, before, after, *extra):
    return run_main(["evaluate", "growth", "--before", before, "--after", after, "--mapping", SAMPLE_MAPPING,
                     "--folds", 3, *extra])


def test_reports_out_of_fold_quality_of_the_model_and_the_baselines(run_main, sample_pair, tmp_path):
    before, after = sample_pair
    oof = tmp_path / "oof.csv"

    code, out, err = evaluate(run_main, before, after, "--oof-out", oof, "--json")

    assert code == 0, err
    report = json.loads(out)
    counts = report["counts"]
    assert 0 < counts["grew"] < counts["examples"] <= counts["operating_before"] <= 300
    model = report["metrics"]["growth model (out of fold)"]
    assert model["roc_auc"] > 0.5 and 0 < model["average_precision"] <= 1  # learns more than chance
    assert any(name.startswith("log team size") for name in report["metrics"])
    assert any(name.startswith("company age") for name in report["metrics"])
    scores = pd.read_csv(oof)
    assert list(scores.columns) == ["enterprise_id", "score"] and len(scores) == counts["examples"]
    assert scores["score"].between(0, 1).all()


def test_table_names_the_metrics(run_main, sample_pair):
    code, out, err = evaluate(run_main, *sample_pair)

    assert code == 0, err
    assert "examples" in out and "ROC-AUC" in out and "average precision" in out
    assert "growth model (out of fold)" in out


def test_missing_file_is_one_error_line(run_main, sample_pair, tmp_path):
    _, after = sample_pair

    code, _, err = evaluate(run_main, tmp_path / "nope.csv", after)

    assert code != 0
    assert err.strip().splitlines() == [f"error: {tmp_path / 'nope.csv'}: source file not found"]


def test_the_same_export_twice_is_one_error_line(run_main, sample_pair):
    _, after = sample_pair

    code, _, err = evaluate(run_main, after, after)

    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "same label" in lines[0]


def test_a_source_without_data_rows_is_one_error_line(run_main, sample_pair, tmp_path):
    before, after = sample_pair
    headers_only = tmp_path / "headers.csv"
    headers_only.write_text(before.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")

    code, _, err = evaluate(run_main, headers_only, after)

    assert code != 0
    assert err.strip().splitlines() == [f"error: {headers_only}: the source has no data rows"]
