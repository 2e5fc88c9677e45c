"""Source mappings: YAML loading, column specs, list parsing, is_local and updated_at rules."""

from __future__ import annotations


import pandas as pd
import pytest

from matcher import schemas as S
from matcher.errors import ConfigError, MatcherError, SchemaError
from matcher.mapping import Mapping, load_mapping
from matcher.mapping_apply import apply_mapping, parse_list
from matcher.sources import read_source
from tests.factories import (
    LOCAL_DISTRICT,
    make_enterprises,
    make_mapping,
    mapping_dict,
    write_mapping,
    write_source,
)

MINIMAL = {"enterprise_id": "id", "name": "n", "description": "d"}


def minimal_source(**columns) -> pd.DataFrame:
    base = {"id": ["a", "b"], "n": ["Alpha", "Beta"], "d": ["makes A", "makes B"]}
    return pd.DataFrame({**base, **columns}, dtype=object)


# --- loading ---------------------------------------------------------------------------------


def test_shorthand_string_means_a_source_column():
    mapping = Mapping.model_validate({"columns": MINIMAL})

    assert mapping.columns[S.NAME].column == "n"
    assert mapping.columns[S.NAME].concat is None


def test_load_mapping_reads_the_shipped_mappings():
    from tests.conftest import SAMPLE_MAPPING, YC_MAPPING

    sample = load_mapping(SAMPLE_MAPPING)
    yc = load_mapping(YC_MAPPING)

    assert sample.is_local is not None and "Yangpu" in sample.is_local.values
    assert S.TAGS not in yc.columns  # YC tags are benchmark labels, never the canonical tags
    assert yc.extra["yc_tags"].as_list == "python"


def test_unknown_canonical_column_names_the_file_and_column(tmp_path):
    path = write_mapping(tmp_path / "bad.yaml", {"columns": {**MINIMAL, "headcount": "staff"}})

    with pytest.raises(ConfigError) as info:
        load_mapping(path)

    assert str(path) in str(info.value)
    assert "headcount" in str(info.value)


def test_unmapped_required_column_names_the_file_and_column(tmp_path):
    path = write_mapping(tmp_path / "bad.yaml", {"columns": {"enterprise_id": "id", "name": "n"}})

    with pytest.raises(ConfigError) as info:
        load_mapping(path)

    assert str(path) in str(info.value)
    assert "description" in str(info.value)


def test_extra_column_may_not_reuse_a_canonical_name(tmp_path):
    path = write_mapping(tmp_path / "bad.yaml", {"columns": MINIMAL, "extra": {"city": "town"}})

    with pytest.raises(ConfigError, match="city"):
        load_mapping(path)


def test_misspelt_top_level_key_is_rejected_with_its_name(tmp_path):
    path = write_mapping(tmp_path / "bad.yaml", {"columns": MINIMAL, "is_locl": {"column": "x", "in": []}})

    with pytest.raises(ConfigError) as info:
        load_mapping(path)

    assert "is_locl" in str(info.value) and str(path) in str(info.value)


def test_field_spec_needs_exactly_one_source(tmp_path):
    path = write_mapping(
        tmp_path / "bad.yaml", {"columns": {**MINIMAL, "country": {"column": "c", "constant": "CN"}}}
    )

    with pytest.raises(ConfigError, match="country"):
        load_mapping(path)


def test_status_map_values_must_be_known_classes(tmp_path):
    path = write_mapping(tmp_path / "bad.yaml", {"columns": MINIMAL, "status_map": {"Alive": "alive"}})

    with pytest.raises(ConfigError, match="alive"):
        load_mapping(path)


def test_missing_mapping_file_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_mapping(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("columns: [unclosed\n")

    with pytest.raises(ConfigError, match="broken.yaml"):
        load_mapping(path)


# --- reading sources ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_every_source_format_maps_to_the_same_enterprises(tmp_path, suffix):
    raw = make_enterprises(n=12, seed=1)
    path = write_source(raw, tmp_path / f"firms{suffix}")

    mapped = apply_mapping(read_source(path), make_mapping(), path.name)

    assert list(mapped[S.ENTERPRISE_ID]) == list(raw["firm_id"])
    assert list(mapped[S.NAME]) == list(raw["firm_name"])
    assert mapped[S.IS_LOCAL].tolist() == (raw["district"] == LOCAL_DISTRICT).tolist()


def test_unsupported_source_type_is_a_schema_error_naming_the_file(tmp_path):
    path = tmp_path / "firms.docx"
    path.write_bytes(b"not really")

    with pytest.raises(SchemaError, match="firms.docx"):
        read_source(path)


def test_a_damaged_workbook_is_a_schema_error_naming_the_file(tmp_path):
    path = tmp_path / "firms.xlsx"
    path.write_bytes(b"not really")

    with pytest.raises(SchemaError, match="firms.xlsx: cannot be read as a workbook"):
        read_source(path)


def test_missing_source_file_is_a_schema_error_naming_it(tmp_path):
    with pytest.raises(SchemaError, match="absent.csv"):
        read_source(tmp_path / "absent.csv")


def test_csv_keeps_values_as_text(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,n,d\n007,Bond,spies\n")

    source = read_source(path)

    assert source.loc[0, "id"] == "007"  # leading zeros of ids survive


# --- applying a mapping ------------------------------------------------------------------------


def test_source_column_missing_from_the_file_names_file_and_column():
    mapping = Mapping.model_validate({"columns": {**MINIMAL, "employees": "staff_count"}})

    with pytest.raises(SchemaError) as info:
        apply_mapping(minimal_source(), mapping, "registry.csv")

    assert "registry.csv" in str(info.value)
    assert "staff_count" in str(info.value)


def test_concat_joins_parts_with_the_separator_and_skips_blank_ones():
    mapping = Mapping.model_validate(
        {"columns": {**MINIMAL, "description": {"concat": ["short", "long"], "sep": " | "}}}
    )
    source = minimal_source(short=["Lidar maker", "Payments"], long=["Solid-state units", None])

    mapped = apply_mapping(source, mapping, "s.csv")

    assert mapped[S.DESCRIPTION].tolist() == ["Lidar maker | Solid-state units", "Payments"]


def test_concat_of_only_blank_parts_is_missing():
    mapping = Mapping.model_validate({"columns": {**MINIMAL, "description": {"concat": ["a", "b"]}}})

    mapped = apply_mapping(minimal_source(a=[None, "x"], b=["", None]), mapping, "s.csv")

    assert pd.isna(mapped[S.DESCRIPTION].iloc[0])
    assert mapped[S.DESCRIPTION].iloc[1] == "x"


def test_concat_with_blank_first_part_has_no_leading_separator():
    mapping = Mapping.model_validate(
        {"columns": {**MINIMAL, "description": {"concat": ["short", "long"], "sep": ". "}}}
    )
    source = minimal_source(short=[None, ""], long=["Long text one", "Long text two"])

    mapped = apply_mapping(source, mapping, "s.csv")

    assert mapped[S.DESCRIPTION].tolist() == ["Long text one", "Long text two"]


def test_constant_fills_every_row():
    mapping = Mapping.model_validate({"columns": {**MINIMAL, "country": {"constant": "US"}}})

    mapped = apply_mapping(minimal_source(), mapping, "s.csv")

    assert mapped[S.COUNTRY].tolist() == ["US", "US"]


def test_unmapped_canonical_columns_are_present_and_empty():
    mapped = apply_mapping(minimal_source(), Mapping.model_validate({"columns": MINIMAL}), "s.csv")

    assert set(S.CANONICAL_COLUMNS) <= set(mapped.columns)
    assert mapped[S.REVENUE].isna().all()
    assert mapped[S.IS_LOCAL].tolist() == [False, False]


def test_source_row_is_one_based_data_row():
    mapped = apply_mapping(minimal_source(), Mapping.model_validate({"columns": MINIMAL}), "s.csv")

    assert mapped[S.SOURCE_ROW].tolist() == [1, 2]


def test_extra_columns_are_carried_under_their_own_name():
    mapping = Mapping.model_validate(
        {"columns": MINIMAL, "extra": {"labels": {"column": "lab", "list": "python"}}}
    )

    mapped = apply_mapping(minimal_source(lab=["['x', 'y']", None]), mapping, "s.csv")

    assert mapped["labels"].tolist() == [["x", "y"], None]
    assert "lab" not in mapped.columns


# --- list parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "how", "expected"),
    [
        ("['AI', 'Robotics']", "python", ["AI", "Robotics"]),
        ('["AI", "Robotics"]', "json", ["AI", "Robotics"]),
        ("AI; Robotics;;", ";", ["AI", "Robotics"]),
        ("AI|Robotics", "|", ["AI", "Robotics"]),
        ("AI;Robotics", None, ["AI", "Robotics"]),  # default delimiters
        ("['AI']", None, ["AI"]),  # a python literal is recognised without 'list: python'
        ("solo", ";", ["solo"]),
        (["already", " a list "], ";", ["already", "a list"]),
        ("", ";", None),
        (None, ";", None),
        (float("nan"), ";", None),
    ],
)
def test_parse_list(value, how, expected):
    assert parse_list(value, how) == expected


@pytest.mark.parametrize(("value", "how"), [("['unclosed", "python"), ("{not json", "json"), ("{'a': 1}", "python")])
def test_unparseable_list_is_returned_raw_for_validation_to_report(value, how):
    assert parse_list(value, how) == value


def test_list_columns_are_parsed_even_without_a_list_option():
    mapping = Mapping.model_validate({"columns": {**MINIMAL, "tags": "kw"}})

    mapped = apply_mapping(minimal_source(kw=["a;b", None]), mapping, "s.csv")

    assert mapped[S.TAGS].tolist() == [["a", "b"], None]


# --- is_local and updated_at -------------------------------------------------------------------


def test_is_local_rule_matches_values_case_and_space_insensitively():
    mapping = Mapping.model_validate(
        {"columns": MINIMAL, "is_local": {"column": "district", "in": ["Yangpu", "杨浦区"]}}
    )
    source = pd.DataFrame(
        {
            "id": list("abcde"),
            "n": list("ABCDE"),
            "d": ["x"] * 5,
            "district": [" yangpu ", "杨浦区", "Pudong", None, "Yangpu North"],
        },
        dtype=object,
    )

    mapped = apply_mapping(source, mapping, "s.csv")

    assert mapped[S.IS_LOCAL].tolist() == [True, True, False, False, False]


def test_is_local_rule_column_must_exist_in_the_source():
    mapping = Mapping.model_validate({"columns": MINIMAL, "is_local": {"column": "district", "in": ["Yangpu"]}})

    with pytest.raises(SchemaError, match="district"):
        apply_mapping(minimal_source(), mapping, "s.csv")


def test_mapped_is_local_column_wins_over_the_rule():
    mapping = Mapping.model_validate(
        {"columns": {**MINIMAL, "is_local": "local_flag"}, "is_local": {"column": "district", "in": ["Yangpu"]}}
    )

    mapped = apply_mapping(minimal_source(local_flag=["yes", "no"], district=["Pudong", "Yangpu"]), mapping, "s.csv")

    assert mapped[S.IS_LOCAL].tolist() == ["yes", "no"]  # converted later by validation


def test_updated_at_from_filename():
    mapping = Mapping.model_validate({"columns": MINIMAL, "updated_at_from_filename": r"(\d{4}-\d{2}-\d{2})"})

    mapped = apply_mapping(minimal_source(), mapping, "/data/yc-companies-2024-05-11.csv")

    assert mapped[S.UPDATED_AT].tolist() == ["2024-05-11", "2024-05-11"]


def test_updated_at_from_filename_that_does_not_match_names_the_file_and_pattern():
    mapping = Mapping.model_validate({"columns": MINIMAL, "updated_at_from_filename": r"(\d{4}-\d{2}-\d{2})"})

    with pytest.raises(SchemaError) as info:
        apply_mapping(minimal_source(), mapping, "companies-latest.csv")

    assert "companies-latest.csv" in str(info.value)
    assert r"\d{4}" in str(info.value)


def test_mapped_updated_at_column_wins_over_the_filename():
    mapping = Mapping.model_validate(
        {"columns": {**MINIMAL, "updated_at": "u"}, "updated_at_from_filename": r"(\d{4}-\d{2}-\d{2})"}
    )

    mapped = apply_mapping(minimal_source(u=["2020-01-01", "2021-01-01"]), mapping, "x-2024-05-11.csv")

    assert mapped[S.UPDATED_AT].tolist() == ["2020-01-01", "2021-01-01"]


def test_factory_mapping_round_trips_through_yaml(tmp_path):
    assert load_mapping(write_mapping(tmp_path / "m.yaml", mapping_dict())) == make_mapping()


@pytest.mark.parametrize("pattern", [r"\d{4}-\d{2}-\d{2}", r"(\d{4"])
def test_bad_updated_at_pattern_is_a_readable_mapping_error(tmp_path, pattern):
    path = write_mapping(tmp_path / "m.yaml", {"columns": MINIMAL, "updated_at_from_filename": pattern})

    with pytest.raises(MatcherError, match="updated_at_from_filename"):
        apply_mapping(minimal_source(), load_mapping(path), "x-2024-05-11.csv")


def test_jsonl_native_lists_and_numbers_are_accepted(tmp_path):
    path = tmp_path / "firms.jsonl"
    path.write_text('{"id": 7, "n": "A", "d": "x", "kw": ["lidar", "radar"]}\n{"id": 8, "n": "B", "d": "y", "kw": []}\n')
    mapping = Mapping.model_validate({"columns": {**MINIMAL, "tags": "kw"}})

    mapped = apply_mapping(read_source(path), mapping, path.name)

    assert mapped[S.TAGS].tolist() == [["lidar", "radar"], []]
    assert mapped[S.ENTERPRISE_ID].tolist() == [7, 8]  # validation turns ids into text
