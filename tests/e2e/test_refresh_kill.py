"""Never broken: a real `matcher refresh` process SIGKILLed at several points leaves the
published version untouched (or, once published, complete), and the next run completes the work.

The process kills itself with SIGKILL when it reaches the step named by MATCHER_REFRESH_KILL_AT
(the same signal `kill -9` sends: no cleanup handler runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from matcher import artifacts
from tests.conftest import EMBEDDING_PATH_SETTINGS, REPO_ROOT, SAMPLE_MAPPING
from tests.e2e.conftest import cli

pytestmark = pytest.mark.e2e


def run_refresh(home, source, kill_at: str) -> subprocess.CompletedProcess:
    # The child embeds on the run's embedding path (the workspace's vectors were made on it).
    env = {k: v for k, v in os.environ.items() if (not k.startswith("MATCHER_") or k in EMBEDDING_PATH_SETTINGS)}
    env.update(HF_HUB_OFFLINE="1", MATCHER_REFRESH_KILL_AT=kill_at)
    return subprocess.run([sys.executable, "-m", "pipelines", "refresh", str(source), "--mapping", str(SAMPLE_MAPPING),
                           "--home", str(home)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def records(home) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((home / "models" / "runs").glob("*/record.json"))]


def test_sigkill_at_several_steps_never_breaks_the_published_version(workspace_copy):
    home, artifacts_dir = workspace_copy.home, workspace_copy.artifacts_dir
    raw = pd.read_csv(home / "data" / "samples" / "enterprises.csv", dtype=str, keep_default_na=False)
    raw.loc[[5, 6, 7], "staff_count"] = ["700", "800", "900"]  # numbers only: no model load in the child
    export = home / "next.csv"
    raw.drop(index=[60]).to_csv(export, index=False)
    parent = artifacts.current_version(artifacts_dir)

    killed = run_refresh(home, export, "embed")  # after the snapshot was written
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert artifacts.current_version(artifacts_dir) == parent
    artifacts.verify(artifacts_dir / parent)
    assert records(home)[-1]["status"] == "running" and records(home)[-1]["step"] == "embed"

    killed = run_refresh(home, export, "staged")  # a complete staged version, not published
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert artifacts.current_version(artifacts_dir) == parent
    artifacts.verify(artifacts_dir / parent)
    assert len(list(artifacts_dir.glob(".tmp-*"))) == 1
    first, second = records(home)
    assert first["status"] == "failed" and first["error"]["kind"] == "interrupted" and first["error"]["step"] == "embed"
    assert second["steps"][0]["snapshot"].startswith("reused")  # the killed run's snapshot, not a second copy

    killed = run_refresh(home, export, "report")  # published, then killed before the report
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not list(artifacts_dir.glob(".tmp-*"))  # the dead run's staging was cleaned up
    version = artifacts.current_version(artifacts_dir)
    assert version != parent
    manifest = artifacts.verify(artifacts_dir / version)
    assert manifest["refresh"]["diff"]["changed_other"] == 3 and manifest["refresh"]["diff"]["removed"] == 1

    record = json.loads(cli("refresh", export, "--mapping", SAMPLE_MAPPING, "--home", home, "--json", expect=3).stdout)
    assert record["status"] == "nothing-to-do" and record["version"] == version
    states = [(r["status"], (r.get("error") or {}).get("step")) for r in records(home)]
    assert states == [("failed", "embed"), ("failed", "stage"), ("failed", "report"), ("nothing-to-do", None)]
    assert "had been published" in records(home)[2]["error"]["message"]
    snapshots = [p for p in (home / "models" / "snapshots").iterdir() if not p.name.startswith((".", "rejected"))]
    assert len(snapshots) == 2  # the workspace's and the refresh's: killed runs left no duplicates
