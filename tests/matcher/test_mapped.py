"""Passes over memory-mapped arrays in bounded resident memory (matcher.mapped)."""

from __future__ import annotations

import numpy as np

from matcher.mapped import gather, passes, release, release_text, take_rows
from tests.factories import resident_kb


def test_released_rows_leave_the_resident_set_and_keep_their_values(tmp_path):
    path = tmp_path / "vectors.npy"
    expected = np.random.default_rng(0).random((20_000, 384), dtype=np.float32)  # 30 MB
    np.save(path, expected)
    vectors = np.load(path, mmap_mode="r").view(np.ndarray)

    assert float(vectors.sum()) > 0  # every page read
    assert resident_kb(path) > 25_000
    assert release(vectors)
    assert resident_kb(path) < 1_000
    np.testing.assert_array_equal(vectors, expected)  # read again from the page cache


def test_a_pass_holds_about_one_chunk_and_written_rows_reach_the_file(tmp_path):
    path = tmp_path / "out.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(20_000, 384))
    peak = 0
    for start, rows in passes(out, 2_000):
        rows[:] = np.arange(start, start + len(rows), dtype=np.float32)[:, None]
        peak = max(peak, resident_kb(path))
    assert resident_kb(path) < 1_000 and peak < 8_000  # ~3 MB a chunk, never the 30 MB file
    out.flush()
    del out, rows
    again = np.load(path)
    np.testing.assert_array_equal(again[:, 0], np.arange(20_000, dtype=np.float32))
    np.testing.assert_array_equal(again[:, -1], np.arange(20_000, dtype=np.float32))


def test_an_array_in_memory_is_left_alone():
    assert not release(np.zeros((10, 4), dtype=np.float32))


def test_a_gather_copies_the_rows_and_leaves_their_pages_released(tmp_path):
    path = tmp_path / "vectors.npy"
    expected = np.random.default_rng(1).random((20_000, 384), dtype=np.float32)
    np.save(path, expected)
    vectors = np.load(path, mmap_mode="r").view(np.ndarray)
    rows = np.sort(np.random.default_rng(2).choice(20_000, 4_000, replace=False))  # pages all over the file

    got = gather(vectors, rows, chunk=500)

    np.testing.assert_array_equal(got, expected[rows])
    assert resident_kb(path) < 1_000


def test_a_memory_mapped_text_column_releases_read_rows_and_an_in_memory_one_is_untouched(tmp_path):
    import pyarrow as pa
    import pyarrow.ipc as ipc

    texts = [f"profile {i} " + "word " * (i % 50) for i in range(60_000)]
    path = tmp_path / "texts.arrow"
    table = pa.table({"description": pa.array(texts, type=pa.large_string())})
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    column = ipc.open_file(pa.memory_map(str(path))).read_all().column("description")

    assert sum(len(t) for t in column.to_pylist()) > 0  # every page read
    assert resident_kb(path) > 8_000
    assert release_text(column, 0, len(column))
    assert resident_kb(path) < 1_000
    assert column.to_pylist() == texts  # read again from the file
    assert not release_text(table.column("description"), 0, 100)  # in memory: left alone
    assert table.column("description").to_pylist()[:100] == texts[:100]


def test_taking_rows_a_chunk_at_a_time_equals_a_mask_and_leaves_the_text_released(tmp_path):
    import pandas as pd

    from matcher.enterprise_table import read_enterprise_table, write_enterprise_table

    n = 60_000
    frame = pd.DataFrame({"enterprise_id": pd.array([f"E{i}" for i in range(n)], dtype="str"),
                          "description": pd.array([f"profile {i} " + "word " * (i % 50) for i in range(n)], dtype="str"),
                          "employees": pd.array(np.arange(n), dtype="Int64")})
    path = tmp_path / "enterprises.arrow"
    write_enterprise_table(frame, path)
    table = read_enterprise_table(path)
    mask = np.random.default_rng(3).random(n) < 0.1  # a tenth, all over the file

    taken = take_rows(table, np.flatnonzero(mask), chunk=1_000)

    assert resident_kb(path) < 1_000
    pd.testing.assert_frame_equal(taken, table[mask])  # (reads every page again)
