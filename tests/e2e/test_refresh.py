"""`matcher refresh` / `runs` / `report` with the real model on the session's 400-firm workspace:
JSON record, exit codes, idempotency, shrink guard, lock, and results equal to a full build."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from matcher import artifacts
from matcher.catalog import Catalog
from matcher.retrieval import Filters
from pipelines.refresh_records import refresh_lock
from tests.conftest import SAMPLE_MAPPING
from tests.e2e.conftest import cli, cli_json

pytestmark = pytest.mark.e2e


def next_export(home, name="enterprises-next.csv", keep=None):
    """Tomorrow's export of the sample: 3 business scopes changed, 4 head counts, 2 firms gone, 2 new."""
    raw = pd.read_csv(home / "data" / "samples" / "enterprises.csv", dtype=str, keep_default_na=False)
    raw.loc[[20, 21, 22], "business_scope"] = raw.loc[[20, 21, 22], "business_scope"] + " It now also builds industrial AI inspection robots."
    raw.loc[[30, 31, 32, 33], "staff_count"] = ["900", "901", "902", "903"]
    new = raw.loc[[40, 41]].copy()
    new["uscc"] = ["91310000NEWFIRM001", "91310000NEWFIRM002"]
    new["company_name"] = ["Shanghai Newco Robotics Co., Ltd.", "Hangzhou Newco Sensors Co., Ltd."]
    raw = pd.concat([raw.drop(index=[50, 51]), new], ignore_index=True)
    if keep is not None:
        raw = raw.iloc[:keep]
    path = home / name
    raw.to_csv(path, index=False)
    return path


def test_refresh_json_record_exit_codes_runs_report_and_equality_with_a_full_build(workspace_copy, tmp_path):
    home = workspace_copy.home
    parent = artifacts.current_version(workspace_copy.artifacts_dir)
    export = next_export(home)
    result = cli("refresh", export, "--mapping", SAMPLE_MAPPING, "--home", home, "--json", expect=0)
    record = json.loads(result.stdout)
    assert record["status"] == "published" and record["parent_version"] == parent
    assert record["version"] == artifacts.current_version(workspace_copy.artifacts_dir) != parent
    c = record["counts"]
    assert (c["added"], c["removed"], c["changed_text"], c["changed_other"]) == (2, 2, 3, 4)
    assert c["embedded"] == 5  # only the new and the changed profiles went through the model
    assert c["quarantined"] == workspace_copy.ingest["counts"]["quarantined_rows"] > 0
    assert record["quarantine"]["reasons"] and record["index"]["mode"] == "in-place"
    gaps = {g["gap_id"]: g for g in record["report"]["gaps"]}
    assert len(gaps) == len(json.loads((workspace_copy.version_dir / "gaps.json").read_text()))
    entered = [e for g in gaps.values() for e in g["entered"]]
    assert all(e["causes"] for e in entered)
    artifacts.verify(workspace_copy.version_dir)
    check_equals_full_build(workspace_copy, record, tmp_path)

    again = cli("refresh", export, "--mapping", SAMPLE_MAPPING, "--home", home, "--json", expect=3)
    assert json.loads(again.stdout)["status"] == "nothing-to-do"
    assert artifacts.current_version(workspace_copy.artifacts_dir) == record["version"]

    runs = cli_json("runs", "--home", home)
    assert [r["status"] for r in runs] == ["published", "nothing-to-do"]
    assert cli_json("report", record["run_id"], "--home", home)["counts"] == c
    text = cli("report", "latest", "--home", home).stdout
    assert "NOTHING-TO-DO" in text
    text = cli("report", record["run_id"], "--home", home).stdout
    assert "PUBLISHED" in text and "+2 added, -2 removed, 3 changed text, 4 changed other fields; 5 embedded" in text
    assert record["run_id"] in cli("runs", "--home", home).stdout
    missing = cli("report", "nope", "--home", home, expect=None)
    assert missing.exit_code != 0


def test_shrink_guard_and_lock_exit_codes(workspace_copy):
    home = workspace_copy.home
    parent = artifacts.current_version(workspace_copy.artifacts_dir)
    truncated = next_export(home, "truncated.csv", keep=250)
    result = cli("refresh", truncated, "--mapping", SAMPLE_MAPPING, "--home", home, expect=5)
    assert "error:" in result.stderr and "--allow-shrink" in result.stderr
    assert artifacts.current_version(workspace_copy.artifacts_dir) == parent
    with refresh_lock(home / "models" / "refresh.lock"):
        locked = cli("refresh", truncated, "--mapping", SAMPLE_MAPPING, "--home", home, "--allow-shrink", expect=4)
        assert "another refresh is running (pid" in locked.stderr
    cli("refresh", truncated, "--mapping", SAMPLE_MAPPING, "--home", home, "--allow-shrink", expect=0)
    assert artifacts.current_version(workspace_copy.artifacts_dir) != parent
    missing = cli("refresh", home / "nope.csv", "--mapping", SAMPLE_MAPPING, "--home", home, expect=1)
    assert "error: " in missing.stderr and "nope.csv: source file not found" in missing.stderr


def check_equals_full_build(workspace_copy, record, tmp_path):
    """A full build of the refresh's snapshot gets the same vectors (the cache is keyed by profile
    text) and builds the index, BM25, chain analysis and standing lists from scratch; the exact
    index's answers must be identical. (From-scratch embedding too: tests/pipelines/test_refresh.py
    with the stand-in encoder, and benchmarks/bench_refresh.py on the YC pair.)"""
    home = workspace_copy.home
    rebuilt_home = tmp_path / "rebuilt"
    (rebuilt_home / "models" / "snapshots").mkdir(parents=True)
    shutil.copytree(home / "models" / "snapshots" / record["snapshot_id"],
                    rebuilt_home / "models" / "snapshots" / record["snapshot_id"])
    shutil.copytree(home / "models" / "cache", rebuilt_home / "models" / "cache")
    manifest = cli_json("build", "--home", rebuilt_home)
    assert manifest["index"]["exact"] and manifest["counts"]["embedded"] == 0
    refreshed = Catalog.load(workspace_copy.artifacts_dir / record["version"])
    rebuilt = Catalog.load(rebuilt_home / "models" / "matcher" / manifest["version"])
    assert refreshed.gaps == rebuilt.gaps and refreshed.segments.equals(rebuilt.segments)
    # The standing lists (top 50 of every gap, as `matcher prospects` ranks them), and a few gaps
    # asked again through the catalog.
    standing = [pd.read_parquet(c.path / "prospects.parquet").drop(columns="ranked_in") for c in (refreshed, rebuilt)]
    assert standing[0].equals(standing[1])
    for gap in refreshed.gaps[:3]:
        a = refreshed.prospects(gap["gap_id"], 20, Filters())
        b = rebuilt.prospects(gap["gap_id"], 20, Filters())
        assert a["enterprise_id"].tolist() == b["enterprise_id"].tolist(), gap["gap_id"]
        assert np.array_equal(a["score"].to_numpy(), b["score"].to_numpy())
