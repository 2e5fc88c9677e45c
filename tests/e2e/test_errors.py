"""The installed ``matcher`` console script: errors exit non-zero with one readable line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


def matcher(*args) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("matcher")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipelines"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_unknown_gap_exits_2_with_one_line_naming_the_gap(workspace):
    result = matcher("prospects", "--gap", "biotech.teleportation", "--home", workspace.home)

    assert result.returncode == 2
    line = error_line(result)
    assert "biotech.teleportation" in line and "matcher gaps" in line
    assert result.stdout == ""


def test_missing_mapping_file_exits_non_zero_with_one_readable_line(tmp_path):
    source = tmp_path / "firms.csv"
    source.write_text("id,name\n1,A\n")

    result = matcher("ingest", source, "--mapping", tmp_path / "missing.yaml", "--home", tmp_path)

    assert result.returncode != 0
    assert "missing.yaml" in error_line(result)
    assert not (tmp_path / "models" / "snapshots").exists()


def test_help_works_from_the_console_script():
    result = matcher("--help")

    assert result.returncode == 0
    assert "prospects" in result.stdout and "search" in result.stdout


def test_module_entry_runs_the_same_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines", "versions", "--home", str(tmp_path), "--json"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)

    assert result.returncode == 0, result.stderr
    assert '"versions": []' in result.stdout
