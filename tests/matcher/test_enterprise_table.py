"""The published enterprise table: an Arrow IPC file whose text columns stay memory-mapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matcher import schemas as S
from matcher.enterprise_table import read_enterprise_table, write_enterprise_table


def table() -> pd.DataFrame:
    return pd.DataFrame({
        S.ENTERPRISE_ID: pd.array(["E1", "E2", "E3", "E4"], dtype="str"),
        S.DESCRIPTION: pd.array(["Lidar sensors for cars", None, "AI chips", "生物医药研发"], dtype="str"),
        S.TAGS: [["lidar", "auto"], [], ["chips"], ["lidar", "auto"]],
        S.QUALIFICATIONS: [[], [], ["high-tech"], []],
        S.EMPLOYEES: pd.array([120, None, 40, 7], dtype="Int64"),
        S.LAT: pd.array([31.2, 31.3, None, 30.1], dtype="Float64"),
        S.IS_LOCAL: [True, False, False, True],
        S.UPDATED_AT: pd.to_datetime(["2025-01-02", "2025-02-03", "2025-03-04", "2025-04-05"]).astype("datetime64[us]"),
    })


def mapped_ranges(path: Path) -> list[tuple[int, int]]:
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(path)):
            start, stop = line.split()[0].split("-")
            ranges.append((int(start, 16), int(stop, 16)))
    return ranges


def test_the_table_reads_back_with_the_same_columns_dtypes_and_values(tmp_path):
    frame = table()
    write_enterprise_table(frame, tmp_path / "enterprises.arrow")
    back = read_enterprise_table(tmp_path / "enterprises.arrow")
    pd.testing.assert_frame_equal(back, frame)
    assert back[S.TAGS].tolist() == [["lidar", "auto"], [], ["chips"], ["lidar", "auto"]]


def test_equal_list_cells_are_one_object_and_a_missing_list_is_empty(tmp_path):
    frame = table()
    frame[S.QUALIFICATIONS] = [None, [], ["high-tech"], None]
    write_enterprise_table(frame, tmp_path / "enterprises.arrow")
    back = read_enterprise_table(tmp_path / "enterprises.arrow")
    assert back[S.QUALIFICATIONS].tolist() == [[], [], ["high-tech"], []]
    assert back[S.TAGS].iloc[0] is back[S.TAGS].iloc[3]


def test_a_column_subset_keeps_the_files_order(tmp_path):
    write_enterprise_table(table(), tmp_path / "enterprises.arrow")
    back = read_enterprise_table(tmp_path / "enterprises.arrow", columns=[S.TAGS, S.ENTERPRISE_ID])
    assert list(back.columns) == [S.ENTERPRISE_ID, S.TAGS]
    assert back[S.TAGS].iloc[2] == ["chips"]


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/self/maps (Linux)")
def test_text_columns_stay_in_the_files_mapped_pages_in_one_chunk(tmp_path):
    """What lets workers on one host share a 10M-row table: descriptions are not copied."""
    path = tmp_path / "enterprises.arrow"
    frame = table()
    frame = pd.concat([frame] * 5000, ignore_index=True)
    write_enterprise_table(frame, path)
    back = read_enterprise_table(path)
    chunks = back[S.DESCRIPTION].array._pa_array
    assert chunks.num_chunks == 1
    address = chunks.chunk(0).buffers()[2].address
    assert any(start <= address < stop for start, stop in mapped_ranges(path))
    # and the numbers are ordinary columns
    assert np.isclose(back[S.LAT].iloc[0], 31.2)


def test_a_chunked_table_becomes_one_chunk_with_the_same_dtypes():
    """Catalog's ``contiguous``: a frame from ``pd.concat`` (two chunks per text column) keeps
    pandas 3's ``str`` dtype, missing values NaN (as ``pd.NA`` they broke industry-code matching)."""
    from matcher.catalog import contiguous
    from matcher.chains import normalise_industry_code

    parts = [pd.DataFrame({S.INDUSTRY_CODE: pd.array(["6511", None], dtype="str")}),
             pd.DataFrame({S.INDUSTRY_CODE: pd.array(["C39"], dtype="str")})]
    frame = pd.concat(parts, ignore_index=True)
    assert frame[S.INDUSTRY_CODE].array._pa_array.num_chunks == 2

    one = contiguous(frame)

    assert one[S.INDUSTRY_CODE].array._pa_array.num_chunks == 1
    assert one[S.INDUSTRY_CODE].dtype == frame[S.INDUSTRY_CODE].dtype
    assert [normalise_industry_code(c) for c in one[S.INDUSTRY_CODE]][1] is None


def test_list_cells_keep_an_empty_string_a_missing_list_and_separator_characters_apart(tmp_path):
    frame = table()
    frame[S.TAGS] = [[""], [], None, ["a\x1fb"]]
    frame[S.QUALIFICATIONS] = [["a", "b"], ["a\x1fb"], ["a", "b"], []]
    write_enterprise_table(frame, tmp_path / "enterprises.arrow")
    back = read_enterprise_table(tmp_path / "enterprises.arrow")
    assert back[S.TAGS].tolist() == [[""], [], [], ["a\x1fb"]]
    assert back[S.QUALIFICATIONS].tolist() == [["a", "b"], ["a\x1fb"], ["a", "b"], []]


def test_a_list_column_with_every_cell_empty_reads_back(tmp_path):
    frame = table()
    frame[S.QUALIFICATIONS] = [[], [], None, []]  # Arrow infers list<null>
    write_enterprise_table(frame, tmp_path / "enterprises.arrow")
    assert read_enterprise_table(tmp_path / "enterprises.arrow")[S.QUALIFICATIONS].tolist() == [[], [], [], []]


def test_the_numbers_copied_at_load_leave_no_pages_resident_and_the_text_still_reads(tmp_path):
    # A worker on 10M firms otherwise keeps ~2 GB of the table's number pages it has copied.
    from tests.factories import resident_kb

    n = 400_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        S.ENTERPRISE_ID: pd.array([f"E{i}" for i in range(n)], dtype="str"),
        S.EMPLOYEES: pd.array(rng.integers(1, 5_000, n), dtype="Int64"),
        S.LAT: pd.array(rng.uniform(20, 40, n), dtype="Float64"),
        S.TAGS: [["lidar"] if i % 3 else [] for i in range(n)],
    })
    path = tmp_path / "enterprises.arrow"
    write_enterprise_table(frame, path)

    back = read_enterprise_table(path)

    assert resident_kb(path) < 1_000  # of a file of several MB
    pd.testing.assert_series_equal(back[S.EMPLOYEES], frame[S.EMPLOYEES])
    pd.testing.assert_series_equal(back[S.LAT], frame[S.LAT])
    assert back[S.ENTERPRISE_ID].iloc[-1] == f"E{n - 1}" and back[S.TAGS].iloc[1] == ["lidar"]
