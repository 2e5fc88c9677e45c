"""End to end: sample -> ingest -> build with the real model; gaps, chains, rebuild, rollback."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from matcher import artifacts
from matcher.chain_map import load_chain_map
from tests.conftest import CHAIN_MAP
from tests.e2e.conftest import N_SAMPLE, cli, cli_json

pytestmark = pytest.mark.e2e

GAP_KINDS = {"missing", "weak", "declared"}


def test_ingest_counts_and_quarantines_the_broken_sample_rows(workspace):
    counts = workspace.ingest["counts"]
    quarantine = pd.read_csv(workspace.home / "models" / "snapshots" / workspace.ingest["snapshot_id"] / "quarantine.csv")

    assert counts["rows_in"] == N_SAMPLE
    assert counts["quarantined_rows"] >= 4
    assert counts["enterprises"] == N_SAMPLE - counts["quarantined_rows"]
    assert 0 < counts["local"] < counts["enterprises"]
    assert set(quarantine["file"]) == {"enterprises.csv"}
    assert quarantine["row"].between(1, N_SAMPLE).all()
    assert quarantine["column"].notna().all() and quarantine["reason"].notna().all()


def test_build_publishes_a_verified_version_with_the_real_model(workspace):
    manifest = workspace.manifest
    counts = manifest["counts"]

    assert artifacts.current_version(workspace.artifacts_dir) == manifest["version"]
    assert artifacts.verify(workspace.version_dir)["version"] == manifest["version"]
    assert counts["enterprises"] == workspace.ingest["counts"]["enterprises"]
    assert counts["embedded"] == counts["enterprises"] and counts["reused_vectors"] == 0
    assert manifest["index"]["ntotal"] == counts["enterprises"]
    assert manifest["index"]["exact"] is True
    assert manifest["embedding"]["dim"] == 384
    assert manifest["embedding"]["model"] == "all-MiniLM-L6-v2"


def test_versions_lists_the_current_version(workspace):
    assert cli_json("versions", "--home", workspace.home) == {
        "current": workspace.manifest["version"], "versions": [workspace.manifest["version"]],
    }


def test_gaps_json_lists_typed_gaps_most_severe_first(workspace):
    gaps = cli_json("gaps", "--home", workspace.home)
    chain_map = load_chain_map(CHAIN_MAP)

    assert isinstance(gaps, list) and gaps
    for gap in gaps:
        assert {"gap_id", "chain_id", "segment_id", "kind", "severity", "text"} <= set(gap)
        assert gap["kind"] in GAP_KINDS
        assert 0 < gap["severity"] <= 1
        assert gap["text"].strip()
    assert len({g["gap_id"] for g in gaps}) == len(gaps)
    assert [g["severity"] for g in gaps] == sorted((g["severity"] for g in gaps), reverse=True)
    free_text = {f"{c.id}.{g.id}" for c in chain_map.chains for g in c.gaps if g.text}
    assert free_text <= {g["gap_id"] for g in gaps if g["segment_id"] is None}
    declared_segments = {g.segment for c in chain_map.chains for g in c.gaps if g.segment}
    assert declared_segments <= {g["segment_id"] for g in gaps}


def test_gaps_can_be_limited_to_one_chain(workspace):
    chain_id = load_chain_map(CHAIN_MAP).chains[0].id

    gaps = cli_json("gaps", "--chain", chain_id, "--home", workspace.home)

    assert gaps and {g["chain_id"] for g in gaps} == {chain_id}


def test_chains_json_agrees_with_the_gap_list(workspace):
    report = cli_json("chains", "--home", workspace.home)
    gaps = {g["segment_id"]: g for g in cli_json("gaps", "--home", workspace.home) if g["segment_id"]}
    chain_map = load_chain_map(CHAIN_MAP)

    assert report["region"]["id"] == "yangpu"
    assert report["region"]["general_leader"] == chain_map.region.general_leader
    assert report["version"] == workspace.manifest["version"]
    assert [c["chain_id"] for c in report["chains"]] == [c.id for c in chain_map.chains]
    assert [c["leaders"] for c in report["chains"]] == [c.leaders for c in chain_map.chains]
    assert any(len(c["leaders"]) > 1 for c in report["chains"])  # the district gives some chains two leaders
    segments = [s for c in report["chains"] for s in c["segments"]]
    assert len(segments) == len(chain_map.segments())
    statuses = {s["status"] for s in segments}
    assert statuses <= {"missing", "weak", "strong"} and "missing" in statuses
    declared = {g.segment for c in chain_map.chains for g in c.gaps if g.segment}
    for segment in segments:
        assert isinstance(segment["strength"], int) and segment["strength"] >= 0
        assert (segment["strength"] == 0) == (segment["status"] == "missing")
        if segment["status"] in ("missing", "weak"):
            assert gaps[segment["segment_id"]]["kind"] == segment["status"]
            assert gaps[segment["segment_id"]]["strength"] == segment["strength"]
        elif segment["segment_id"] in declared:
            assert gaps[segment["segment_id"]]["kind"] == "declared"
        else:
            assert segment["segment_id"] not in gaps


def test_table_output_of_gaps_and_chains(workspace):
    gaps = cli("gaps", "--home", workspace.home)
    chains = cli("chains", "--home", workspace.home)

    assert workspace.manifest["version"] in gaps.stdout
    chain_map = load_chain_map(CHAIN_MAP)
    assert chain_map.chains[0].name in chains.stdout
    assert f"general chain leader: {chain_map.region.general_leader}" in chains.stdout
    two = next(c for c in chain_map.chains if len(c.leaders) > 1)
    words = " ".join(chains.stdout.split())  # titles wrap at the terminal's width
    assert f"chain leaders: {', '.join(two.leaders)}" in words


def test_rebuild_reuses_every_vector_and_gives_the_same_gaps(workspace_copy):
    before = cli_json("gaps", "--home", workspace_copy.home)

    manifest = cli_json("build", "--home", workspace_copy.home)

    assert manifest["counts"]["embedded"] == 0
    assert manifest["counts"]["reused_vectors"] == manifest["counts"]["enterprises"]
    assert manifest["version"] != workspace_copy.manifest["version"]
    assert cli_json("versions", "--home", workspace_copy.home) == {
        "current": manifest["version"],
        "versions": sorted([workspace_copy.manifest["version"], manifest["version"]]),
    }
    assert cli_json("gaps", "--home", workspace_copy.home) == before


def test_reingest_with_one_changed_profile_embeds_exactly_one(workspace_copy):
    home = workspace_copy.home
    source = home / "data" / "samples" / "enterprises.csv"
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)
    raw.loc[10, "business_scope"] = "Designs superconducting quantum processors and cryogenic control electronics."
    raw.loc[11, "staff_count"] = "4321"  # a fact, not profile text
    changed = home / "enterprises-2.csv"
    raw.to_csv(changed, index=False)

    summary = cli_json("ingest", changed, "--mapping", "data/mappings/sample.yaml", "--home", home)
    manifest = cli_json("build", "--home", home)

    assert summary["snapshot_id"] != workspace_copy.ingest["snapshot_id"]
    assert manifest["snapshot"]["snapshot_id"] == summary["snapshot_id"]
    assert manifest["counts"]["embedded"] == 1


def test_rollback_by_set_current_serves_the_old_version(workspace_copy):
    home = workspace_copy.home
    old = workspace_copy.manifest["version"]
    new = cli_json("build", "--home", home)["version"]

    artifacts.set_current(home / "models" / "matcher", old)

    gaps = json.loads(cli("prospects", "--gap", cli_json("gaps", "--home", home)[0]["gap_id"],
                          "--top", 3, "--home", home, "--json").stdout)
    assert gaps["query"]["version"] == old
    assert cli_json("versions", "--home", home)["current"] == old
    assert new in cli_json("versions", "--home", home)["versions"]
