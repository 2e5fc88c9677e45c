"""The refresh run on factory data with the stand-in encoder (fast; the real model, the CLI and
real SIGKILLs are exercised in tests/e2e/test_refresh*.py)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import yaml

from matcher import artifacts
from matcher.catalog import Catalog
from matcher.refresh import PROSPECTS_FILE
from matcher.retrieval import Filters
from matcher.snapshot import ingest
from pipelines import version_files as V
from pipelines import refresh_commands, refresh_records, refresh_run
from pipelines.build_config import BuildConfig
from pipelines.build_index import build
from pipelines.refresh_config import RefreshConfig
from tests.factories import HashingEncoder, make_enterprises, make_mapping, write_mapping, write_source
from tests.pipelines.test_build_index import chain_map_data

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)
N = 60


def config_for(home, **build_overrides) -> RefreshConfig:
    build_config = BuildConfig(snapshots_dir=home / "models" / "snapshots", artifacts_dir=home / "models" / "matcher",
                               cache_dir=home / "models" / "cache", chain_map=home / "chains.yaml", **build_overrides)
    return RefreshConfig(build=build_config, runs_dir=home / "models" / "runs", lock_path=home / "models" / "refresh.lock")


def make_home(path, **build_overrides):
    path.mkdir(parents=True)
    (path / "chains.yaml").write_text(yaml.safe_dump(chain_map_data()))
    write_mapping(path / "mapping.yaml")
    source = write_source(make_enterprises(N, seed=0), path / "firms-0.csv")
    ingest(source, make_mapping(), path / "models" / "snapshots", 0.05, now=NOW)
    build(config_for(path, **build_overrides).build, encoder=HashingEncoder(dim=64), now=NOW)
    return path


@pytest.fixture(scope="module")
def base_home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("refresh") / "home")


@pytest.fixture
def home(base_home, tmp_path):
    copy = tmp_path / "home"
    shutil.copytree(base_home, copy)
    return copy


def next_export(home, name="firms-1.csv", shrink_to=None):
    """Tomorrow's export: 2 texts changed, 3 head counts changed, 2 firms gone, 3 new ones."""
    raw = make_enterprises(N, seed=0)
    raw.loc[[1, 2], "summary"] = ["LiDAR modules now also for agricultural drones", "Payment gateway, now with crypto custody"]
    raw.loc[[6, 7, 8], "headcount"] = ["1500", "1600", "1700"]
    raw = raw.drop(index=[10, 11])
    raw = pd.concat([raw, make_enterprises(3, seed=5)], ignore_index=True)
    if shrink_to is not None:
        raw = raw.iloc[:shrink_to]
    return write_source(raw, home / name)


def refresh(home, source, encoder=None, config=None, **kw):
    return refresh_run.refresh(config or config_for(home), source, home / "mapping.yaml", encoder=encoder or HashingEncoder(dim=64),
                     now=kw.pop("now", NOW + timedelta(days=1)), **kw)


def current(home):
    return artifacts.current_version(home / "models" / "matcher")


def test_refresh_embeds_only_new_and_changed_profiles_and_publishes(home):
    before = current(home)
    encoder = HashingEncoder(dim=64)
    record = refresh(home, next_export(home), encoder)
    assert record["status"] == "published" and record["version"] == current(home) != before
    c = record["counts"]
    assert (c["added"], c["removed"], c["changed_text"], c["changed_other"]) == (3, 2, 2, 3)
    assert c["embedded"] == 5 and c["reused_vectors"] == N - 2 + 3 - 5
    assert len(encoder.encoded) == 5 and any("crypto custody" in t for t in encoder.encoded)
    assert record["index"]["mode"] == "in-place" and record["index"]["same_order_as_snapshot"]
    saved = json.loads((home / "models" / "runs" / record["run_id"] / "record.json").read_text())
    assert saved["status"] == "published" and saved["counts"] == c
    summary = (home / "models" / "runs" / record["run_id"] / "summary.txt").read_text()
    assert "PUBLISHED" in summary and "+3 added, -2 removed, 2 changed text, 3 changed other" in summary
    manifest = artifacts.verify(home / "models" / "matcher" / record["version"])
    assert manifest["parent_version"] == before and manifest["refresh"]["index_mode"] == "in-place"


def test_exact_index_refresh_equals_a_full_build_from_scratch(home, tmp_path):
    record = refresh(home, next_export(home))
    scratch = tmp_path / "scratch"
    (scratch / "models" / "snapshots").mkdir(parents=True)
    shutil.copytree(home / "models" / "snapshots" / record["snapshot_id"], scratch / "models" / "snapshots" / record["snapshot_id"])
    config = config_for(home).build
    config = BuildConfig(**{**config.__dict__, "snapshots_dir": scratch / "models" / "snapshots",
                            "artifacts_dir": scratch / "models" / "matcher", "cache_dir": scratch / "models" / "cache"})
    version, manifest = build(config, encoder=HashingEncoder(dim=64), now=NOW)  # empty cache: everything embedded
    assert manifest["counts"]["embedded"] == N + 1
    refreshed = Catalog.load(home / "models" / "matcher" / record["version"])
    rebuilt = Catalog.load(scratch / "models" / "matcher" / version)
    assert [g["gap_id"] for g in refreshed.gaps] == [g["gap_id"] for g in rebuilt.gaps]
    for gap in refreshed.gaps:
        a = refreshed.prospects(gap["gap_id"], 20, Filters())
        b = rebuilt.prospects(gap["gap_id"], 20, Filters())
        assert a["enterprise_id"].tolist() == b["enterprise_id"].tolist()
        assert np.array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    standing = [pd.read_parquet(c.path / PROSPECTS_FILE).drop(columns="ranked_in") for c in (refreshed, rebuilt)]
    assert standing[0].equals(standing[1])


def test_same_source_twice_publishes_nothing_the_second_time(home):
    source = next_export(home)
    first = refresh(home, source)
    versions = artifacts.list_versions(home / "models" / "matcher")
    second = refresh(home, source, now=NOW + timedelta(days=2))
    assert second["status"] == "nothing-to-do" and second["version"] == first["version"]
    assert second["counts"]["embedded"] == 0 and artifacts.list_versions(home / "models" / "matcher") == versions
    # A new file with the same data is nothing to do either (its snapshot is kept as history).
    copy = home / "firms-copy.csv"
    copy.write_bytes(source.read_bytes() + b"\n")
    third = refresh(home, copy, now=NOW + timedelta(days=3))
    assert third["status"] == "nothing-to-do" and current(home) == first["version"]


def test_shrink_guard_stops_before_publishing_unless_allowed(home):
    before = current(home)
    with pytest.raises(refresh_run.ShrinkGuardError, match=r"--allow-shrink"):
        refresh(home, next_export(home, shrink_to=40))
    assert current(home) == before
    record = refresh_records.list_runs(home / "models" / "runs")[-1]
    assert record["status"] == "failed" and record["error"]["kind"] == "shrink-guard"
    config = config_for(home)
    allowed = refresh(home, next_export(home, shrink_to=40), config=RefreshConfig(**{**config.__dict__, "allow_shrink": True}))
    assert allowed["status"] == "published" and allowed["counts"]["removed"] == 20


def test_a_failing_step_leaves_the_published_version_and_a_rerun_completes(home, monkeypatch):
    before = current(home)
    finish = V.finish_version

    def disk_full(*args, **kw):
        finish(*args, **kw)  # the staged version is complete ...
        raise OSError(28, "No space left on device")  # ... and then the disk fills up

    monkeypatch.setattr(V, "finish_version", disk_full)
    with pytest.raises(OSError):
        refresh(home, next_export(home))
    assert current(home) == before
    artifacts.verify(home / "models" / "matcher" / before)
    assert not list((home / "models" / "matcher").glob(".tmp-*"))
    failed = refresh_records.list_runs(home / "models" / "runs")[-1]
    assert failed["status"] == "failed" and failed["error"]["step"] == "stage" and "No space" in failed["error"]["message"]
    monkeypatch.setattr(V, "finish_version", finish)
    record = refresh(home, next_export(home))
    assert record["status"] == "published" and record["steps"][0]["snapshot"].startswith("reused")
    assert record["counts"]["changed_text"] == 2


def test_one_refresh_at_a_time_and_a_dead_holders_lock_does_not_block(home):
    config = config_for(home)
    with refresh_records.refresh_lock(config.lock_path):
        with pytest.raises(refresh_records.RefreshLockedError, match=r"another refresh is running \(pid \d+"):
            refresh(home, next_export(home))
    # A lock file left by a killed holder (its flock died with it) does not block.
    config.lock_path.write_text("pid 999999 on elsewhere since 2026-01-01T02:00:00Z\n")
    assert refresh(home, next_export(home))["status"] == "published"


def test_hnsw_index_is_updated_in_place_with_tombstones(tmp_path):
    home = make_home(tmp_path / "hnsw", index_factory="HNSW32,Flat")
    record = refresh(home, next_export(home), config=config_for(home, index_factory="HNSW32,Flat"))
    index = record["index"]
    assert index["mode"] == "in-place" and index["removal"] == "tombstoned"
    assert index["tombstones"] == 2 + 2 and index["recall_at_10"] >= 0.95
    catalog = Catalog.load(home / "models" / "matcher" / record["version"])
    assert len(catalog.searcher) == len(catalog.enterprises) == N + 1
    removed = set(make_enterprises(N, seed=0).loc[[10, 11], "firm_id"])
    for gap in catalog.gaps:
        found = catalog.prospects(gap["gap_id"], 50, Filters(include_local=True, include_closed=True))
        assert not removed & set(found["enterprise_id"])


def test_retrain_runs_when_a_new_snapshot_pair_and_the_outcome_files_are_there(home, monkeypatch):
    outcomes = home / "outcomes.csv"
    outcomes.write_text("enterprise_id,gap_id,contacted_at,outcome\nE000001,tech.lidar,2026-01-01,landed\n")
    card = {"data": {"snapshot_id": "older", "outcome_files": [str(outcomes)], "outcomes_used": 1}}
    (home / "models" / "matcher" / current(home) / "model_card.json").write_text(json.dumps(card))
    calls = []
    monkeypatch.setattr(refresh_run, "_retrain", lambda config, files: calls.append(files) or
                        {"status": "not-published", "reason": "the new landing model is worse"})
    record = refresh(home, next_export(home))
    assert calls == [(outcomes,)]
    assert record["models"]["retrain_due"] and "new snapshot pair" in record["models"]["reason"]
    assert record["models"]["status"] == "not-published" and record["status"] == "published"
    assert (home / "models" / "matcher" / record["version"] / "model_card.json").is_file()  # carried forward


def test_schedule_runs_a_refresh_at_the_given_time(monkeypatch):
    ran = []
    scheduler = refresh_commands.make_scheduler(2, 0, lambda: ran.append(1), "Asia/Shanghai")
    job = scheduler.get_jobs()[0]
    trigger = str(job.trigger)
    assert "hour='2'" in trigger and "minute='0'" in trigger
    now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    assert job.trigger.get_next_fire_time(None, now).isoformat() == "2026-11-28T02:00:00+08:00"
    with pytest.raises(Exception, match="HH:MM"):
        refresh_commands.parse_at("25:00")


def test_a_new_chain_map_is_a_full_build_that_still_reuses_every_cached_vector(home):
    data = chain_map_data()
    data["chains"][0]["segments"][0]["description"] += " Also solid-state flash LiDAR for trucks."
    (home / "chains.yaml").write_text(yaml.safe_dump(data))
    encoder = HashingEncoder(dim=64)
    record = refresh(home, next_export(home), encoder)
    assert record["status"] == "published" and record["index"]["mode"] == "rebuild"
    assert "chain map" in record["index"]["reason"]
    assert record["counts"]["embedded"] == 5  # the new and changed profiles; the rest from the cache
    manifest = artifacts.verify(home / "models" / "matcher" / record["version"])
    assert manifest["chain_map"]["sha256"] != json.loads(
        (home / "models" / "matcher" / record["parent_version"] / "manifest.json").read_text())["chain_map"]["sha256"]


def test_another_sheet_of_the_same_workbook_is_other_data(home):
    """A workbook refreshed from one sheet, then from another: the second is read, not taken for
    the same source because the file is the same."""
    today, yesterday = (pd.read_csv(p, dtype=str, keep_default_na=False)
                        for p in (next_export(home), write_source(make_enterprises(N, seed=0), home / "again.csv")))
    workbook = home / "exports.xlsx"
    with pd.ExcelWriter(workbook) as writer:
        today.to_excel(writer, sheet_name="today", index=False)
        yesterday.to_excel(writer, sheet_name="yesterday", index=False)

    first = refresh(home, workbook, sheet="today")
    second = refresh(home, workbook, sheet="yesterday", now=NOW + timedelta(days=2))
    third = refresh(home, workbook, sheet="yesterday", now=NOW + timedelta(days=3))

    assert first["status"] == "published" and second["status"] == "published"
    assert second["counts"]["added"] == 2 and second["version"] != first["version"]  # the two firms today dropped
    assert third["status"] == "nothing-to-do"  # the same sheet again
