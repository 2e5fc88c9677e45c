"""Snapshots: written whole, never overwritten, threshold failures publish nothing, hashes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from matcher import schemas as S
from matcher.errors import ArtifactNotFoundError, UnknownEntityError, ValidationFailedError
from matcher.snapshot import (
    ENTERPRISES_FILE,
    MANIFEST_FILE,
    QUARANTINE_FILE,
    REJECTED_DIR,
    REPAIRS_FILE,
    add_hashes,
    find_snapshot,
    ingest,
    list_snapshots,
    load_enterprises,
    profile_text,
    profile_texts,
)
from tests.factories import make_enterprises, make_mapping, make_validated, write_source

NOW = datetime(2026, 11, 27, 10, 15, tzinfo=timezone.utc)


@pytest.fixture
def source(tmp_path):
    return write_source(make_enterprises(n=30, seed=0), tmp_path / "firms.csv")


def ingest_to(snapshots_dir, source, share=0.05, now=NOW):
    return ingest(source, make_mapping(), snapshots_dir, share, now=now)


def test_ingest_writes_enterprises_quarantine_and_manifest(tmp_path, source):
    snapshots = tmp_path / "snapshots"

    info = ingest_to(snapshots, source)

    assert info.path.parent == snapshots
    assert {p.name for p in info.path.iterdir()} == {ENTERPRISES_FILE, QUARANTINE_FILE, REPAIRS_FILE, MANIFEST_FILE}
    manifest = json.loads((info.path / MANIFEST_FILE).read_text())
    assert manifest["snapshot_id"] == info.snapshot_id
    assert manifest["counts"] == {
        "rows_in": 30, "enterprises": 30, "local": 6, "quarantined_rows": 0, "quarantine_records": 0,
        "repaired_values": 0,
    }
    assert manifest["source"]["name"] == "firms.csv"
    assert manifest["source"]["format"] == "csv" and manifest["source"]["encoding"] == "utf-8"
    assert manifest["extra_columns"] == ["district"]
    enterprises = load_enterprises(info)
    assert len(enterprises) == 30
    assert enterprises[S.CONTENT_HASH].is_unique and enterprises[S.PROFILE_HASH].is_unique
    assert not any(p.name.startswith(".tmp") for p in snapshots.iterdir())


def test_loaded_snapshot_keeps_kinds_and_lists(tmp_path, source):
    enterprises = load_enterprises(ingest_to(tmp_path, source))

    assert enterprises[S.EMPLOYEES].dtype == "Int64"
    assert enterprises[S.EMPLOYEES].isna().sum() == 5  # unknown stays unknown
    assert all(isinstance(tags, list) for tags in enterprises[S.TAGS])
    assert all(isinstance(q, list) for q in enterprises[S.QUALIFICATIONS])


def test_two_ingests_give_two_snapshots_and_never_overwrite(tmp_path, source):
    first = ingest_to(tmp_path, source)
    before = (first.path / ENTERPRISES_FILE).read_bytes()

    second = ingest_to(tmp_path, source)  # same source, same second

    assert second.snapshot_id != first.snapshot_id
    assert [s.snapshot_id for s in list_snapshots(tmp_path)] == [first.snapshot_id, second.snapshot_id]
    assert (first.path / ENTERPRISES_FILE).read_bytes() == before
    assert find_snapshot(tmp_path).snapshot_id == second.snapshot_id


def test_find_snapshot_newest_and_by_id(tmp_path, source):
    old = ingest_to(tmp_path, source, now=NOW)
    new = ingest_to(tmp_path, source, now=NOW + timedelta(hours=1))

    assert find_snapshot(tmp_path).snapshot_id == new.snapshot_id
    assert find_snapshot(tmp_path, old.snapshot_id).path == old.path


def test_newest_snapshot_is_the_last_ingested_even_within_one_second(tmp_path):
    sources = [write_source(make_enterprises(n=10, seed=s), tmp_path / f"firms{s}.csv") for s in range(6)]
    snapshots = tmp_path / "snapshots"

    for path in sources:
        info = ingest_to(snapshots, path, now=NOW)
        assert find_snapshot(snapshots).snapshot_id == info.snapshot_id


def test_find_snapshot_errors(tmp_path, source):
    with pytest.raises(ArtifactNotFoundError, match="matcher ingest"):
        find_snapshot(tmp_path / "none")
    ingest_to(tmp_path, source)
    with pytest.raises(UnknownEntityError, match="no-such-id"):
        find_snapshot(tmp_path, "no-such-id")


def test_bad_rows_are_quarantined_and_counted(tmp_path):
    raw = make_enterprises(n=40, seed=0)
    raw.loc[3, "headcount"] = "-5"
    raw.loc[7, "firm_name"] = ""
    source = write_source(raw, tmp_path / "firms.csv")

    info = ingest_to(tmp_path / "snapshots", source)

    quarantine = pd.read_csv(info.path / QUARANTINE_FILE)
    assert sorted(quarantine["row"]) == [4, 8]
    assert set(quarantine["file"]) == {"firms.csv"}
    assert set(quarantine["column"]) == {S.EMPLOYEES, S.NAME}
    assert info.manifest["counts"]["quarantined_rows"] == 2
    assert info.manifest["counts"]["enterprises"] == 38


def test_too_many_bad_rows_fail_naming_the_file_and_publish_nothing(tmp_path):
    raw = make_enterprises(n=20, seed=0)
    raw.loc[[1, 2], "headcount"] = "lots"  # 10 % bad, limit 5 %
    source = write_source(raw, tmp_path / "registry.csv")
    snapshots = tmp_path / "snapshots"

    with pytest.raises(ValidationFailedError) as info:
        ingest_to(snapshots, source, share=0.05)

    message = str(info.value)
    assert "registry.csv" in message
    assert "2 of 20" in message
    assert "employees" in message
    assert "nothing was published" in message
    assert list_snapshots(snapshots) == []
    rejected = list((snapshots / REJECTED_DIR).iterdir())
    assert len(rejected) == 1 and sorted(pd.read_csv(rejected[0])["row"]) == [2, 3]


def test_bad_share_at_the_limit_is_accepted(tmp_path):
    raw = make_enterprises(n=20, seed=0)
    raw.loc[1, "headcount"] = "lots"  # exactly 5 %
    source = write_source(raw, tmp_path / "registry.csv")

    info = ingest_to(tmp_path / "snapshots", source, share=0.05)

    assert info.manifest["counts"]["enterprises"] == 19


def test_source_without_rows_fails_with_a_clear_message(tmp_path):
    source = write_source(make_enterprises(n=3).iloc[0:0], tmp_path / "empty.csv")

    with pytest.raises(ValidationFailedError, match="empty.csv"):
        ingest_to(tmp_path / "snapshots", source)
    assert list_snapshots(tmp_path / "snapshots") == []


# --- hashes and profile text -------------------------------------------------------------------


def hashes_after(change):
    enterprises = make_validated(n=5, seed=0)
    before = add_hashes(enterprises)
    changed = enterprises.copy()
    change(changed)
    after = add_hashes(changed)
    return before.iloc[0], after.iloc[0], before.iloc[1:], after.iloc[1:]


def set_cell(column, value):
    def change(frame):
        frame.at[0, column] = value
    return change


def test_hashes_are_deterministic():
    enterprises = make_validated(n=10, seed=3)

    first, second = add_hashes(enterprises), add_hashes(enterprises.copy())

    assert first[S.CONTENT_HASH].tolist() == second[S.CONTENT_HASH].tolist()
    assert first[S.PROFILE_HASH].tolist() == second[S.PROFILE_HASH].tolist()


def test_changed_description_changes_both_hashes_of_that_row_only():
    before, after, rest_before, rest_after = hashes_after(set_cell(S.DESCRIPTION, "now makes robots"))

    assert after[S.PROFILE_HASH] != before[S.PROFILE_HASH]
    assert after[S.CONTENT_HASH] != before[S.CONTENT_HASH]
    assert rest_after[S.PROFILE_HASH].tolist() == rest_before[S.PROFILE_HASH].tolist()
    assert rest_after[S.CONTENT_HASH].tolist() == rest_before[S.CONTENT_HASH].tolist()


def test_changed_tags_change_the_profile_hash():
    before, after, *_ = hashes_after(set_cell(S.TAGS, ["brand-new-tag"]))

    assert after[S.PROFILE_HASH] != before[S.PROFILE_HASH]


@pytest.mark.parametrize(
    ("column", "value"), [(S.EMPLOYEES, 99_999), (S.COUNTRY, "JP"), (S.STATUS, "注销"), (S.REVENUE, 1.5)]
)
def test_changed_numbers_or_facts_change_only_the_content_hash(column, value):
    before, after, *_ = hashes_after(set_cell(column, value))

    assert after[S.CONTENT_HASH] != before[S.CONTENT_HASH]
    assert after[S.PROFILE_HASH] == before[S.PROFILE_HASH]


def test_changed_updated_at_or_extra_column_changes_no_hash():
    def change(frame):
        frame.at[0, S.UPDATED_AT] = pd.Timestamp("2030-01-01")
        frame.at[0, "district"] = "Elsewhere"

    before, after, *_ = hashes_after(change)

    assert after[S.CONTENT_HASH] == before[S.CONTENT_HASH]
    assert after[S.PROFILE_HASH] == before[S.PROFILE_HASH]


def test_unknown_and_zero_employees_hash_differently():
    _, unknown, *_ = hashes_after(set_cell(S.EMPLOYEES, pd.NA))
    _, zero, *_ = hashes_after(set_cell(S.EMPLOYEES, 0))

    assert unknown[S.CONTENT_HASH] != zero[S.CONTENT_HASH]


def test_profile_text_uses_name_description_and_tags_only():
    assert profile_text(" Acme ", " Lidar maker. ", ["lidar", "robots"]) == "Acme. Lidar maker. Tags: lidar, robots."
    assert profile_text("Acme", "Lidar maker.", []) == "Acme. Lidar maker."
    assert profile_text("Acme", "Lidar maker.", None) == "Acme. Lidar maker."


def test_profile_texts_ignore_extra_columns():
    enterprises = make_validated(n=4, seed=0)
    enterprises["secret_labels"] = [["SECRET-LABEL"]] * 4

    texts = profile_texts(enterprises)

    assert len(texts) == 4
    assert not any("SECRET-LABEL" in t for t in texts)
    assert all(t.startswith(f"{n}. ") for t, n in zip(texts, enterprises[S.NAME]))


def test_csv_parquet_and_jsonl_of_the_same_data_give_the_same_enterprises(tmp_path):
    raw = make_enterprises(n=25, seed=6)
    hashes = {}
    for suffix in (".csv", ".parquet", ".jsonl"):
        source = write_source(raw, tmp_path / f"firms{suffix}")
        info = ingest_to(tmp_path / f"snapshots{suffix}", source)
        hashes[suffix] = load_enterprises(info).set_index(S.ENTERPRISE_ID)[[S.CONTENT_HASH, S.PROFILE_HASH]]

    pd.testing.assert_frame_equal(hashes[".parquet"], hashes[".csv"])
    pd.testing.assert_frame_equal(hashes[".jsonl"], hashes[".csv"])
