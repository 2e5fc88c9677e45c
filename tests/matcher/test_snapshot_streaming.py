"""Streamed ingest: a source read in small chunks gives the same snapshot as one read whole —
rows, types, quarantine (original row numbers, duplicates across chunks), repairs, manifest."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from matcher import schemas as S
from matcher.errors import SchemaError, ValidationFailedError
from matcher.snapshot import MANIFEST_FILE, QUARANTINE_FILE, REPAIRS_FILE, ingest, iter_enterprises, load_enterprises
from matcher.sources import read_source, read_source_chunks
from tests.factories import make_enterprises, make_mapping, write_source

NOW = datetime(2026, 11, 27, 10, 15, tzinfo=timezone.utc)


def awkward_source() -> pd.DataFrame:
    """60 rows with problems spread over several 7-row chunks."""
    frame = make_enterprises(n=60, seed=3)
    frame.loc[0:6, "revenue"] = ""  # a column empty in the whole first chunk
    frame.loc[0:6, "honors"] = ""
    frame.loc[40, "firm_id"] = frame.loc[3, "firm_id"]  # duplicate in a later chunk, newer: wins
    frame.loc[40, "last_update"] = "2026-12-30"
    frame.loc[50, "firm_id"] = frame.loc[10, "firm_id"]  # duplicate in a later chunk, older: loses
    frame.loc[50, "last_update"] = "2020-01-01"
    frame.loc[20, "headcount"] = "-3"
    frame.loc[33, "firm_name"] = ""
    frame.loc[45, "summary"] = "Makes\x00 lidar units"
    return frame


def snapshot(tmp_path, source, chunk_rows):
    info = ingest(source, make_mapping(), tmp_path / f"snapshots-{chunk_rows}", 0.2, now=NOW, chunk_rows=chunk_rows)
    manifest = json.loads((info.path / MANIFEST_FILE).read_text())
    return info, manifest


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_chunked_ingest_writes_the_same_snapshot_as_a_whole_read(tmp_path, suffix):
    source = write_source(awkward_source(), tmp_path / f"firms{suffix}")

    whole, whole_manifest = snapshot(tmp_path, source, 1_000_000)
    chunked, chunked_manifest = snapshot(tmp_path, source, 7)

    pd.testing.assert_frame_equal(load_enterprises(chunked), load_enterprises(whole))
    assert pd.read_parquet(chunked.enterprises_path).dtypes.equals(pd.read_parquet(whole.enterprises_path).dtypes)
    for name in (QUARANTINE_FILE, REPAIRS_FILE):
        assert (chunked.path / name).read_bytes() == (whole.path / name).read_bytes(), name
    for key in ("counts", "as_of", "data_sha256", "extra_columns", "source"):
        assert chunked_manifest[key] == whole_manifest[key], key
    assert not list(chunked.path.glob("part*")) and not list(chunked.path.parent.glob(".tmp-*"))


def test_chunked_ingest_names_original_rows_and_duplicates_across_chunks(tmp_path):
    frame = awkward_source()
    source = write_source(frame, tmp_path / "firms.csv")

    info, manifest = snapshot(tmp_path, source, 7)
    quarantine = pd.read_csv(info.path / QUARANTINE_FILE)
    enterprises = load_enterprises(info)

    rows = quarantine.set_index("row")
    assert rows.loc[21, "column"] == S.EMPLOYEES and rows.loc[34, "column"] == S.NAME
    assert rows.loc[4, "reason"] == "duplicate enterprise_id; kept row 41 (latest updated_at)"
    assert rows.loc[51, "reason"] == "duplicate enterprise_id; kept row 11 (latest updated_at)"
    assert enterprises[S.ENTERPRISE_ID].is_unique
    assert len(enterprises) == 60 - 4 == manifest["counts"]["enterprises"]
    assert manifest["counts"]["quarantined_rows"] == 4
    assert pd.read_csv(info.path / REPAIRS_FILE)["row"].tolist() == [46]


def test_chunked_ingest_over_the_bad_row_limit_publishes_nothing(tmp_path):
    frame = make_enterprises(n=40, seed=1)
    frame.loc[30:39, "headcount"] = "-1"  # all the bad rows in the last chunks
    source = write_source(frame, tmp_path / "firms.csv")

    with pytest.raises(ValidationFailedError, match=r"10 of 40 rows"):
        ingest(source, make_mapping(), tmp_path / "snapshots", 0.05, now=NOW, chunk_rows=8)
    assert [p.name for p in (tmp_path / "snapshots").iterdir()] == ["rejected"]


def test_a_damaged_cell_in_a_later_chunk_is_named_by_its_row_in_the_file(tmp_path):
    frame = make_enterprises(n=30, seed=2)
    frame.loc[24, "summary"] = "Lidar \ufffd units"
    source = write_source(frame, tmp_path / "firms.csv")

    with pytest.raises(SchemaError, match=r"row 25, column 'summary'"):
        ingest(source, make_mapping(), tmp_path / "snapshots", 0.05, now=NOW, chunk_rows=10)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_source_chunks_concatenate_to_the_whole_read(tmp_path, suffix):
    source = write_source(make_enterprises(n=25, seed=4), tmp_path / f"firms{suffix}")

    fmt, chunks = read_source_chunks(source, 10)
    parts = list(chunks)

    assert [len(p) for p in parts] == [10, 10, 5]
    assert fmt == read_source(source).attrs["source_format"]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), read_source(source))


def test_header_only_source_is_refused_when_streamed(tmp_path):
    source = tmp_path / "firms.csv"
    source.write_text(",".join(make_enterprises(n=1).columns) + "\n")

    with pytest.raises(ValidationFailedError, match="no data rows"):
        ingest(source, make_mapping(), tmp_path / "snapshots", 0.05, now=NOW, chunk_rows=5)
    assert not list((tmp_path / "snapshots").glob(".tmp-*"))


def test_iter_enterprises_yields_the_loaded_table_in_batches(tmp_path):
    source = write_source(awkward_source(), tmp_path / "firms.csv")
    info, _ = snapshot(tmp_path, source, 7)

    batches = list(iter_enterprises(info, batch_rows=10))
    some = list(iter_enterprises(info, columns=[S.ENTERPRISE_ID, S.TAGS], batch_rows=25))

    assert [len(b) for b in batches] == [10] * 5 + [6]
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), load_enterprises(info))
    assert list(some[0].columns) == [S.ENTERPRISE_ID, S.TAGS] and isinstance(some[0][S.TAGS][0], list)
