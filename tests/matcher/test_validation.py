"""Row validation: type conversion, ranges, quarantine records and de-duplication."""

from __future__ import annotations

import pandas as pd
import pytest

from matcher import schemas as S
from matcher.mapping import Mapping
from matcher.mapping_apply import apply_mapping
from matcher.sources import read_source
from matcher.validation import QUARANTINE_COLUMNS, validate_enterprises
from tests.factories import make_enterprises, make_mapping, write_source

MAPPING = Mapping.model_validate(
    {
        "columns": {
            "enterprise_id": "id",
            "name": "name",
            "description": "desc",
            "employees": "staff",
            "founded_year": "founded",
            "revenue": "revenue",
            "lat": "lat",
            "is_local": "local",
            "last_funding_date": "funded",
            "updated_at": "updated",
            "tags": {"column": "tags", "list": "python"},
            "status": "status",
        }
    }
)
GOOD = {
    "id": "E1",
    "name": "Acme Lidar",
    "desc": "solid-state lidar",
    "staff": "120",
    "founded": "2015",
    "revenue": "1,250,000.5",
    "lat": "31.2",
    "local": "yes",
    "funded": "2024-03-01",
    "updated": "2026-01-01",
    "tags": "['lidar']",
    "status": "存续",
}


def validate(*rows: dict, source_name: str = "firms.csv", status_map=None):
    frame = pd.DataFrame([{**GOOD, "id": f"E{i}", **row} for i, row in enumerate(rows)], dtype=object)
    return validate_enterprises(apply_mapping(frame, MAPPING, source_name), source_name, status_map)


def test_valid_rows_are_converted_to_their_kinds():
    result = validate({})

    row = result.enterprises.iloc[0]
    assert len(result.quarantine) == 0
    assert row[S.EMPLOYEES] == 120 and result.enterprises[S.EMPLOYEES].dtype == "Int64"
    assert row[S.FOUNDED_YEAR] == 2015
    assert row[S.REVENUE] == pytest.approx(1_250_000.5)  # thousands separators are accepted
    assert row[S.LAT] == pytest.approx(31.2)
    assert bool(row[S.IS_LOCAL]) is True
    assert row[S.LAST_FUNDING_DATE] == pd.Timestamp("2024-03-01")
    assert row[S.UPDATED_AT] == pd.Timestamp("2026-01-01")
    assert row[S.TAGS] == ["lidar"]
    assert row[S.STATUS_CLASS] == "operating"


@pytest.mark.parametrize(
    ("column", "source_column", "value", "reason"),
    [
        (S.EMPLOYEES, "staff", "many", "not a number"),
        (S.EMPLOYEES, "staff", "-5", "below the minimum"),
        (S.EMPLOYEES, "staff", "12.5", "not a whole number"),
        (S.FOUNDED_YEAR, "founded", "unknown", "not a number"),
        (S.FOUNDED_YEAR, "founded", "1700", "below the minimum"),
        (S.LAT, "lat", "91", "above the maximum"),
        (S.IS_LOCAL, "local", "maybe", "not a boolean"),
        (S.LAST_FUNDING_DATE, "funded", "last spring", "not a date"),
        (S.UPDATED_AT, "updated", "2026-13-45", "not a date"),
        (S.TAGS, "tags", "['unclosed", "not a list"),
        (S.NAME, "name", "", "missing required value"),
        (S.NAME, "name", "   ", "missing required value"),
        (S.ENTERPRISE_ID, "id", None, "missing required value"),
        (S.DESCRIPTION, "desc", None, "missing required value"),
    ],
)
def test_each_invalid_value_is_quarantined_with_file_row_column_and_reason(column, source_column, value, reason):
    result = validate({}, {source_column: value}, {})

    assert result.enterprises[S.SOURCE_ROW].tolist() == [1, 3]
    assert list(result.quarantine.columns) == QUARANTINE_COLUMNS
    assert len(result.quarantine) == 1
    record = result.quarantine.iloc[0]
    assert record["file"] == "firms.csv"
    assert record["row"] == 2
    assert record["column"] == column
    assert reason in record["reason"]
    assert result.rows_quarantined == 1
    assert result.bad_share == pytest.approx(1 / 3)


def test_a_row_with_several_problems_counts_once_but_lists_each():
    result = validate({"staff": "-1", "founded": "soon", "funded": "never"})

    assert set(result.quarantine["column"]) == {S.EMPLOYEES, S.FOUNDED_YEAR, S.LAST_FUNDING_DATE}
    assert result.rows_quarantined == 1
    assert len(result.enterprises) == 0


def test_quarantine_keeps_the_offending_value():
    result = validate({"staff": "lots"})

    assert result.quarantine.iloc[0]["value"] == "lots"
    assert result.quarantine.iloc[0]["enterprise_id"] == "E0"


def test_missing_optional_numbers_stay_missing_not_zero():
    result = validate({"staff": "", "revenue": None, "founded": "", "lat": ""})

    row = result.enterprises.iloc[0]
    assert len(result.quarantine) == 0
    for column in (S.EMPLOYEES, S.REVENUE, S.FOUNDED_YEAR, S.LAT, S.PATENTS):
        assert pd.isna(row[column]), column


def test_missing_optional_values_of_every_kind_are_valid():
    result = validate({"local": "", "funded": None, "tags": "", "status": None})

    row = result.enterprises.iloc[0]
    assert len(result.quarantine) == 0
    assert bool(row[S.IS_LOCAL]) is False
    assert pd.isna(row[S.LAST_FUNDING_DATE])
    assert row[S.TAGS] == []
    assert row[S.STATUS_CLASS] == "unknown"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("Yes", True), ("1", True), ("是", True), ("FALSE", False), ("n", False), ("0", False), ("否", False)],
)
def test_boolean_spellings(text, expected):
    result = validate({"local": text})

    assert len(result.quarantine) == 0
    assert bool(result.enterprises.iloc[0][S.IS_LOCAL]) is expected


@pytest.mark.parametrize("text", ["2024-03-01", "2024/03/01", "2024-03-01T08:30:00Z", "20240301"])
def test_date_formats_normalise_to_midnight(text):
    result = validate({"funded": text})

    assert len(result.quarantine) == 0
    assert result.enterprises.iloc[0][S.LAST_FUNDING_DATE] == pd.Timestamp("2024-03-01")


def test_integer_written_as_float_text_is_accepted():
    # Exports (the YC file among them) write counts as "3.0".
    result = validate({"staff": "3.0", "founded": "2024.0"})

    assert len(result.quarantine) == 0
    assert result.enterprises.iloc[0][S.EMPLOYEES] == 3
    assert result.enterprises.iloc[0][S.FOUNDED_YEAR] == 2024


def test_status_classes_use_defaults_and_the_mapping_status_map():
    result = validate(
        {"status": "注销"}, {"status": "Public"}, {"status": "Zombie"}, {"status": "Sleeping"},
        status_map={"Sleeping": "closed"},
    )

    assert result.enterprises[S.STATUS_CLASS].tolist() == ["closed", "listed", "unknown", "closed"]
    assert result.enterprises[S.STATUS].tolist() == ["注销", "Public", "Zombie", "Sleeping"]


def test_duplicate_ids_keep_the_latest_updated_at():
    result = validate(
        {"id": "DUP", "name": "Newest", "updated": "2026-05-01"},
        {"id": "DUP", "name": "Oldest", "updated": "2024-01-01"},
        {"id": "DUP", "name": "Middle", "updated": "2025-01-01"},
        {"id": "OTHER"},
    )

    kept = result.enterprises.set_index(S.ENTERPRISE_ID)
    assert kept.loc["DUP", S.NAME] == "Newest"
    assert sorted(result.enterprises[S.ENTERPRISE_ID]) == ["DUP", "OTHER"]
    dups = result.quarantine[result.quarantine["column"] == S.ENTERPRISE_ID]
    assert sorted(dups["row"]) == [2, 3]
    assert all("kept row 1" in reason for reason in dups["reason"])


def test_duplicate_ids_with_equal_dates_keep_the_last_row():
    result = validate({"id": "DUP", "name": "First"}, {"id": "DUP", "name": "Second"})

    assert result.enterprises[S.NAME].tolist() == ["Second"]


def test_duplicate_with_a_date_beats_one_without():
    result = validate({"id": "DUP", "name": "Dated"}, {"id": "DUP", "name": "Undated", "updated": ""})

    assert result.enterprises[S.NAME].tolist() == ["Dated"]


def test_an_invalid_duplicate_does_not_displace_the_valid_one():
    result = validate({"id": "DUP", "name": "Valid"}, {"id": "DUP", "name": "Broken", "staff": "-3", "updated": "2027-01-01"})

    assert result.enterprises[S.NAME].tolist() == ["Valid"]


def test_extra_columns_pass_through_validation():
    raw = make_enterprises(n=10, seed=2)

    result = validate_enterprises(apply_mapping(raw, make_mapping(), "f.csv"), "f.csv")

    assert result.enterprises["district"].tolist() == raw["district"].tolist()


def test_factory_source_is_clean_and_complete():
    raw = make_enterprises(n=30, seed=0)

    result = validate_enterprises(apply_mapping(raw, make_mapping(), "f.csv"), "f.csv")

    assert len(result.quarantine) == 0
    assert len(result.enterprises) == 30
    assert result.enterprises[S.IS_LOCAL].sum() == 6
    assert (result.enterprises[S.STATUS_CLASS] == "closed").sum() == 4
    assert result.enterprises[S.EMPLOYEES].isna().sum() == 5


def test_no_rows_gives_empty_result():
    frame = pd.DataFrame(columns=list(GOOD), dtype=object)

    result = validate_enterprises(apply_mapping(frame, MAPPING, "empty.csv"), "empty.csv")

    assert result.rows_in == 0 and result.bad_share == 0.0 and len(result.enterprises) == 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("value", ["1e20", "inf"])
def test_huge_integer_value_is_quarantined_not_a_crash(value):
    result = validate({}, {"staff": value})

    assert result.quarantine["row"].tolist() == [2]
    assert result.quarantine.iloc[0]["column"] == S.EMPLOYEES
    assert result.enterprises[S.SOURCE_ROW].tolist() == [1]


def test_infinite_number_is_quarantined():
    result = validate({"revenue": "inf"})

    assert len(result.quarantine) == 1
    assert result.quarantine.iloc[0]["column"] == S.REVENUE


def test_parquet_source_with_nullable_missing_numbers_keeps_them_missing(tmp_path):
    raw = pd.DataFrame([{**GOOD, "id": "E0"}, {**GOOD, "id": "E1"}])
    raw["staff"] = pd.array([12, None], dtype="Int64")
    raw["founded"] = pd.array([2001, None], dtype="Int64")
    path = write_source(raw, tmp_path / "firms.parquet")

    result = validate_enterprises(apply_mapping(read_source(path), MAPPING, path.name), path.name)

    assert len(result.quarantine) == 0, result.quarantine.to_dict("records")
    assert result.enterprises[S.EMPLOYEES].tolist()[0] == 12
    assert pd.isna(result.enterprises[S.EMPLOYEES].iloc[1])


def test_jsonl_source_with_nulls_keeps_them_missing(tmp_path):
    path = tmp_path / "firms.jsonl"
    path.write_text(
        '{"id": 1, "name": "A", "desc": "x", "staff": 5, "founded": null, "revenue": null}\n'
        '{"id": 2, "name": "B", "desc": "y", "staff": null, "founded": 1999, "revenue": 2.5}\n'
    )
    mapping = Mapping.model_validate(
        {"columns": {"enterprise_id": "id", "name": "name", "description": "desc", "employees": "staff",
                     "founded_year": "founded", "revenue": "revenue"}}
    )

    result = validate_enterprises(apply_mapping(read_source(path), mapping, path.name), path.name)

    assert len(result.quarantine) == 0
    assert result.enterprises[S.ENTERPRISE_ID].tolist() == ["1", "2"]
    assert pd.isna(result.enterprises[S.FOUNDED_YEAR].iloc[0])
    assert result.enterprises[S.EMPLOYEES].isna().tolist() == [False, True]
