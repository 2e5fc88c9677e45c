"""``matcher gaps declare | edit | close | reopen`` on the workspace database, ``matcher gaps`` listing
them, and ``matcher build`` / ``refresh`` publishing the database's open gaps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from matcher import artifacts
from matcher.store import Store, upgrade
from matcher.store.models import AuditEntry
from tests.conftest import SAMPLE_MAPPING
from tests.e2e.conftest import cli_json, shared_model, workspace, workspace_copy  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e
AI = "artificial-intelligence"


def one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def gap_list(home) -> dict:
    return {g["gap_id"]: g for g in cli_json("gaps", "--home", home)}


def published(home) -> tuple[list[dict], np.ndarray, pd.DataFrame]:
    version = artifacts.version_dir(home / "models" / "matcher")
    return (json.loads((version / "gaps.json").read_text()), np.load(version / "gap_vectors.npy"),
            pd.read_parquet(version / "prospects.parquet"))


def audit_actions(home) -> list[tuple[str, str, str]]:
    store = Store(f"sqlite:///{home / 'matcher.db'}")
    try:
        with store.read() as s:
            return [(a.action, a.target, a.key_prefix) for a in s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))]
    finally:
        store.dispose()


def test_declare_edit_close_reopen_from_the_command_line(run_main, workspace_copy):
    home = workspace_copy.home
    before = gap_list(home)

    code, out, err = run_main(["gaps", "declare", AI, "--text", "Liquid cooling for AI data centres", "--priority", "high",
                               "--note", "two sites ready", "--home", home, "--json"])

    assert code == 0, err
    row = json.loads(out)
    assert row["gap_id"] == f"{AI}.liquid-cooling-for-ai-data-centres" and row["origin"] == "service"
    assert row["created_by"].startswith("cli:")
    listed = gap_list(home)
    assert listed[row["gap_id"]]["severity"] == 0.9 and listed[row["gap_id"]]["note"] == "two sites ready"
    assert set(listed) == set(before) | {row["gap_id"]}
    # Ranked from the command line at once, before any build publishes it.
    prospects = cli_json("prospects", "--gap", row["gap_id"], "--top", "5", "--home", home)["results"]
    assert len(prospects) == 5 and all(p["enterprise_id"] for p in prospects)
    first = prospects[0]["enterprise_id"]
    why = cli_json("why-not", first, "--gap", row["gap_id"], "--home", home)
    assert why["rank"] == 1

    code, out, err = run_main(["gaps", "edit", row["gap_id"], "--priority", "low", "--home", home])
    assert code == 0 and "edited" in out, err
    assert gap_list(home)[row["gap_id"]]["severity"] == 0.3

    missing = next(g for g in before.values() if g["kind"] == "missing")["gap_id"]
    code, out, err = run_main(["gaps", "close", missing, "--home", home])
    assert code == 0 and "closed" in out, err
    assert missing not in gap_list(home)
    assert "already closed" in one_line_error(*run_main(["gaps", "close", missing, "--home", home])[::2])
    code, out, err = run_main(["gaps", "reopen", missing, "--home", home])
    assert code == 0, err
    assert gap_list(home)[missing]["severity"] == before[missing]["severity"]
    assert "already open" in one_line_error(*run_main(["gaps", "reopen", missing, "--home", home])[::2])

    actions = audit_actions(home)
    assert [a[0] for a in actions] == ["gap.declare", "gap.edit", "gap.close", "gap.reopen"]
    assert all(a[2].startswith("cli:") for a in actions)


@pytest.mark.parametrize("args, field", [
    (["declare", AI], "--segment/--text"),
    (["declare", AI, "--segment", "no-such-segment"], "--segment"),
    (["declare", AI, "--text", "  "], "--text"),
    (["declare", AI, "--text", "x" * 1001], "--text"),
    (["declare", AI, "--text", "Robots", "--priority", "urgent"], "--priority"),
    (["edit", f"{AI}.ai-chips", "--text", "other words"], "--text"),
    (["edit", f"{AI}.no-such-gap", "--note", "x"], "not found"),
    (["close", "no-such-chain.x"], "no-such-chain"),
])
def test_bad_gap_commands_are_one_line_and_write_nothing(run_main, workspace, tmp_path, args, field):
    # The published version is read only; a database of this test's own.
    url = f"sqlite:///{tmp_path / 'gaps.db'}"
    upgrade(url)
    code, _, err = run_main(["gaps", *args, "--home", workspace.home, "--database-url", url])

    assert field in one_line_error(code, err)
    store = Store(url)
    try:
        with store.read() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0
    finally:
        store.dispose()


def test_build_and_refresh_publish_the_database_gaps(run_main, workspace_copy):
    home = workspace_copy.home
    code, out, err = run_main(["gaps", "declare", AI, "--text", "Photonic interconnects for AI clusters", "--home", home, "--json"])
    assert code == 0, err
    declared = json.loads(out)["gap_id"]
    closed = next(g for g in gap_list(home).values() if g["kind"] == "missing")["gap_id"]
    assert run_main(["gaps", "close", closed, "--home", home])[0] == 0

    manifest = cli_json("build", "--home", home)

    gaps, vectors, standing = published(home)
    ids = [g["gap_id"] for g in gaps]
    assert declared in ids and closed not in ids and len(vectors) == len(gaps)
    assert gaps[ids.index(declared)]["origin"] == "service" and gaps[ids.index(declared)]["status"] == "open"
    assert declared in set(standing["gap_id"])
    assert manifest["chain_map"]["database_gaps"]["open"] == 1

    # A gap change alone makes the nightly refresh publish (the same export: nothing else changed).
    code, out, err = run_main(["gaps", "reopen", closed, "--home", home])
    assert code == 0, err
    source = home / "data" / "samples" / "enterprises.csv"
    code, out, err = run_main(["refresh", source, "--mapping", SAMPLE_MAPPING, "--home", home, "--json"])
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "published"
    gaps, vectors, standing = published(home)
    ids = [g["gap_id"] for g in gaps]
    assert closed in ids and declared in ids and len(vectors) == len(gaps)
    assert closed in set(standing["gap_id"])
    # Nothing changed since: nothing to do.
    code, out, err = run_main(["refresh", source, "--mapping", SAMPLE_MAPPING, "--home", home, "--json"])
    assert code == 3, err
