"""The command line without the embedding model: help, settings errors, ingest, batch parsing,
and the one-line error contract of ``main()``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from matcher.errors import ConfigError
from matcher.retrieval import Filters
from pipelines.batch_needs import read_needs
from pipelines.cli import app
from pipelines.cli_app import ExitCode, settings_for
from tests.factories import make_enterprises, write_mapping, write_source

COMMANDS = ["sample", "ingest", "build", "versions", "chains", "gaps", "prospects", "search", "demo"]


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture
def source(tmp_path):
    return write_source(make_enterprises(n=30, seed=0), tmp_path / "firms.csv")


@pytest.fixture
def mapping(tmp_path):
    return write_mapping(tmp_path / "factory.yaml")


def test_top_level_help_lists_every_command(runner):
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_takes_home(runner, command):
    result = runner.invoke(app, [command, "--help"])

    assert result.exit_code == 0, result.output
    assert "--home" in result.stdout


def test_no_arguments_shows_help(runner):
    result = runner.invoke(app, [])

    assert "Usage" in result.output
    assert result.exit_code in (0, 2)


def test_settings_from_the_environment_are_validated_with_the_variable_named(monkeypatch):
    monkeypatch.setenv("MATCHER_KEEP_VERSIONS", "0")

    with pytest.raises(ConfigError, match="MATCHER_KEEP_VERSIONS"):
        settings_for(None)


def test_cli_options_override_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MATCHER_HOME", str(tmp_path / "from-env"))
    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", "env-model")

    settings = settings_for(tmp_path / "from-cli", embedding_model=None)

    assert settings.home == tmp_path / "from-cli"
    assert settings.embedding_model == "env-model"
    assert settings.snapshots_dir == tmp_path / "from-cli" / "models" / "snapshots"


# --- ingest through main() ---------------------------------------------------------------------


def test_ingest_prints_a_json_summary_and_writes_a_snapshot(run_main, tmp_path, source, mapping):
    code, out, err = run_main(["ingest", source, "--mapping", mapping, "--home", tmp_path, "--json"])

    assert code == 0, err
    summary = json.loads(out)
    assert summary["counts"]["enterprises"] == 30 and summary["counts"]["local"] == 6
    assert (tmp_path / "models" / "snapshots" / summary["snapshot_id"] / "enterprises.parquet").is_file()


def one_line_error(code, err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def test_missing_mapping_file_is_one_readable_line(run_main, tmp_path, source):
    code, _, err = run_main(["ingest", source, "--mapping", tmp_path / "nope.yaml", "--home", tmp_path])

    assert "nope.yaml" in one_line_error(code, err)
    assert "not found" in err


def test_missing_source_file_is_one_readable_line(run_main, tmp_path, mapping):
    code, _, err = run_main(["ingest", tmp_path / "absent.csv", "--mapping", mapping, "--home", tmp_path])

    assert "absent.csv" in one_line_error(code, err)


def test_source_lacking_a_mapped_column_names_it(run_main, tmp_path, mapping):
    source = write_source(make_enterprises(n=10).drop(columns=["headcount"]), tmp_path / "firms.csv")

    code, _, err = run_main(["ingest", source, "--mapping", mapping, "--home", tmp_path])

    line = one_line_error(code, err)
    assert "firms.csv" in line and "headcount" in line


def test_bad_source_fails_naming_the_file_and_publishes_no_snapshot(run_main, tmp_path, mapping):
    raw = make_enterprises(n=20)
    raw.loc[[2, 5, 9], "founded"] = "long ago"
    source = write_source(raw, tmp_path / "registry.csv")

    code, out, err = run_main(["ingest", source, "--mapping", mapping, "--home", tmp_path])

    line = one_line_error(code, err)
    assert "registry.csv" in line and "3 of 20" in line and "founded_year" in line
    snapshots = tmp_path / "models" / "snapshots"
    assert [p.name for p in snapshots.iterdir()] == ["rejected"]


def test_threshold_comes_from_the_environment(run_main, monkeypatch, tmp_path, mapping):
    raw = make_enterprises(n=20)
    raw.loc[[2, 5, 9], "founded"] = "long ago"
    source = write_source(raw, tmp_path / "registry.csv")
    monkeypatch.setenv("MATCHER_MAX_BAD_ROW_SHARE", "0.2")

    code, out, err = run_main(["ingest", source, "--mapping", mapping, "--home", tmp_path, "--json"])

    assert code == 0, err
    assert json.loads(out)["counts"]["quarantined_rows"] == 3


def test_invalid_environment_setting_is_one_line_naming_the_variable(run_main, monkeypatch, tmp_path, source, mapping):
    monkeypatch.setenv("MATCHER_MAX_BAD_ROW_SHARE", "lots")

    code, _, err = run_main(["ingest", source, "--mapping", mapping, "--home", tmp_path])

    assert "MATCHER_MAX_BAD_ROW_SHARE" in one_line_error(code, err)


@pytest.mark.parametrize(
    "args",
    [["gaps"], ["chains"], ["prospects", "--gap", "x.y"], ["search", "lidar"]],
)
def test_queries_before_any_build_say_to_build(run_main, tmp_path, args):
    code, _, err = run_main([*args, "--home", tmp_path])

    assert "matcher build" in one_line_error(code, err)


def test_build_before_any_ingest_says_to_ingest(run_main, tmp_path):
    code, _, err = run_main(["build", "--home", tmp_path])

    assert "matcher ingest" in one_line_error(code, err)


def test_versions_of_an_empty_home(run_main, tmp_path):
    code, out, _ = run_main(["versions", "--home", tmp_path, "--json"])

    assert code == 0
    assert json.loads(out) == {"current": None, "versions": []}


def test_search_needs_text_or_batch_but_not_both(runner, tmp_path):
    neither = runner.invoke(app, ["search", "--home", str(tmp_path)])
    both = runner.invoke(app, ["search", "lidar", "--batch", str(tmp_path / "b.jsonl"), "--home", str(tmp_path)])

    assert neither.exit_code == 2 and both.exit_code == 2
    assert "--batch" in neither.output and "--batch" in both.output


@pytest.mark.parametrize("args", [["prospects", "--gap", "g", "--top", "0"], ["sample", "--n", "5"]])
def test_out_of_range_options_are_usage_errors(runner, tmp_path, args):
    result = runner.invoke(app, [*args, "--home", str(tmp_path)])

    assert result.exit_code == 2


# --- batch needs -------------------------------------------------------------------------------


def write_needs(tmp_path, *lines):
    path = tmp_path / "needs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_needs_parses_ids_texts_and_filter_overrides(tmp_path):
    path = write_needs(
        tmp_path,
        json.dumps({"id": "n1", "text": "lidar", "country": "DE", "min_employees": 10}),
        "",
        json.dumps({"text": "payments", "qualifications": ["high-tech enterprise"], "include_local": True}),
    )
    defaults = Filters(provinces=("Bavaria",), max_employees=500)

    needs, failures = read_needs(path, defaults)

    assert failures == 0
    assert [n["id"] for n in needs] == ["n1", "line-3"]
    assert needs[0]["filters"] == Filters(countries=("DE",), provinces=("Bavaria",), min_employees=10, max_employees=500)
    assert needs[1]["filters"] == Filters(provinces=("Bavaria",), max_employees=500,
                                          qualifications=("high-tech enterprise",), include_local=True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2"),
        ('["a list"]', "not a JSON object"),
        ('{"id": "x"}', "'text'"),
        ('{"id": "x", "text": "  "}', "'text'"),
        ('{"id": "x", "text": "ok", "colour": "red"}', "colour"),
        ('{"id": "x", "text": "ok", "founded_after": 5}', "field 'founded_after'"),
        ('{"id": "x", "text": "ok", "country": ["DE", 7]}', "field 'country"),
    ],
)
def test_invalid_need_lines_become_error_entries_never_skipped(tmp_path, line, message):
    path = write_needs(tmp_path, '{"id": "good", "text": "lidar"}', line)

    needs, failures = read_needs(path, Filters())

    assert failures == 1
    assert needs[0] == {"id": "good", "text": "lidar", "filters": Filters()}
    assert "error" in needs[1]
    assert "needs.jsonl" in needs[1]["error"] and message in needs[1]["error"]


def test_missing_batch_file_names_it(tmp_path):
    from matcher.errors import SchemaError

    with pytest.raises(SchemaError, match="absent.jsonl"):
        read_needs(tmp_path / "absent.jsonl", Filters())


def test_every_exit_code_has_one_meaning():
    assert len(ExitCode.__members__) == len(set(ExitCode))  # two names on one code would be an alias
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.INVALID) == (0, 1, 2)  # as typer and click use them
