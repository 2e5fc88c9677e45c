"""Passes over memory-mapped arrays in bounded resident memory (matcher.mapped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matcher.mapped import passes, release


def resident_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path``."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            inside = head[-1] == str(path)
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


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
