"""End to end queries on the built sample workspace: prospects, search, batch search, filters."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from matcher.catalog import Catalog
from matcher.retrieval import Filters, retrieve
from matcher.snapshot import profile_texts
from tests.e2e.conftest import cli, cli_json

pytestmark = pytest.mark.e2e

RESULT_FIELDS = {"enterprise_id", "name", "score", "similarity", "is_local", "city", "province", "country", "employees"}


@pytest.fixture(scope="module")
def enterprises(workspace) -> pd.DataFrame:
    return workspace.enterprises().set_index("enterprise_id", drop=False)


@pytest.fixture(scope="module")
def first_gap(workspace) -> dict:
    return cli_json("gaps", "--home", workspace.home)[0]


def outside_open(enterprises: pd.DataFrame) -> pd.Series:
    return ~enterprises["is_local"] & (enterprises["status_class"] != "closed")


def check_ranked(results: list[dict], k: int) -> None:
    assert len(results) == k
    for row in results:
        assert RESULT_FIELDS <= set(row)
    assert len({r["enterprise_id"] for r in results}) == k
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


# --- prospects ---------------------------------------------------------------------------------


def test_prospects_for_the_first_gap_are_ten_outside_open_firms_best_first(workspace, first_gap, enterprises):
    answer = cli_json("prospects", "--gap", first_gap["gap_id"], "--top", 10, "--home", workspace.home)

    assert answer["query"]["gap_id"] == first_gap["gap_id"]
    assert answer["query"]["text"] == first_gap["text"]
    results = answer["results"]
    check_ranked(results, 10)
    assert not any(r["is_local"] for r in results)
    assert set(enterprises.loc[[r["enterprise_id"] for r in results], "status_class"]) <= {"operating", "acquired", "listed", "unknown"}
    for row in results:
        assert row["country"] == enterprises.loc[row["enterprise_id"], "country"]


def test_prospects_with_include_local_are_ranked_and_flag_local_firms_truthfully(workspace, first_gap, enterprises):
    results = cli_json("prospects", "--gap", first_gap["gap_id"], "--top", 10, "--include-local",
                       "--home", workspace.home)["results"]

    check_ranked(results, 10)
    for row in results:
        assert row["is_local"] == bool(enterprises.loc[row["enterprise_id"], "is_local"])


def test_local_firms_come_back_only_with_include_local(workspace, enterprises):
    local = enterprises[enterprises["is_local"] & (enterprises["status_class"] != "closed")].iloc[0]
    text = profile_texts(local.to_frame().T)[0]

    default = cli_json("search", text, "--top", 50, "--home", workspace.home)["results"]
    with_local = cli_json("search", text, "--top", 50, "--include-local", "--home", workspace.home)["results"]

    assert not any(r["is_local"] for r in default)
    assert local["enterprise_id"] not in {r["enterprise_id"] for r in default}
    found = {r["enterprise_id"]: r for r in with_local}
    assert local["enterprise_id"] in found
    assert found[local["enterprise_id"]]["is_local"] is True
    assert found[local["enterprise_id"]]["similarity"] == max(r["similarity"] for r in with_local)


def test_selective_country_filter_returns_exactly_min_k_matching(workspace, first_gap, enterprises):
    de = enterprises[outside_open(enterprises) & (enterprises["country"] == "DE")]
    assert len(de) >= 1

    results = cli_json("prospects", "--gap", first_gap["gap_id"], "--country", "DE", "--top", 5,
                       "--home", workspace.home)["results"]

    check_ranked(results, min(5, len(de)))
    assert {r["country"] for r in results} == {"DE"}


def test_filter_with_fewer_matches_than_k_returns_all_of_them(workspace, first_gap, enterprises):
    de = enterprises[outside_open(enterprises) & (enterprises["country"] == "DE")]
    sizes = sorted(de["employees"].dropna().astype(int), reverse=True)
    assert sizes, "the sample has German firms of known size"
    min_employees = sizes[min(2, len(sizes) - 1)]  # about three firms qualify
    matching = de[de["employees"].fillna(-1) >= min_employees]
    assert 0 < len(matching) < 10

    results = cli_json("prospects", "--gap", first_gap["gap_id"], "--country", "DE", "--min-employees",
                       min_employees, "--top", 10, "--home", workspace.home)["results"]

    assert sorted(r["enterprise_id"] for r in results) == sorted(matching["enterprise_id"])
    assert all(r["employees"] >= min_employees for r in results)


@pytest.mark.parametrize(
    ("options", "predicate"),
    [
        (["--province", "Jiangsu", "--province", "Zhejiang"], lambda e: e["province"].isin(["Jiangsu", "Zhejiang"])),
        (["--max-employees", 5], lambda e: e["employees"].fillna(10**9) <= 5),
        (["--founded-after", 2020], lambda e: e["founded_year"].fillna(0) > 2020),
        (["--qualification", "high-tech enterprise"],
         lambda e: e["qualifications"].map(lambda q: "high-tech enterprise" in list(q))),
        (["--country", "CN", "--min-employees", 20, "--max-employees", 40, "--founded-after", 2015],
         lambda e: (e["country"] == "CN") & e["employees"].fillna(-1).between(20, 40) & (e["founded_year"].fillna(0) > 2015)),
    ],
)
def test_filters_are_exact(workspace, first_gap, enterprises, options, predicate):
    matching = enterprises[outside_open(enterprises) & predicate(enterprises)]
    k = 15

    results = cli_json("prospects", "--gap", first_gap["gap_id"], *options, "--top", k,
                       "--home", workspace.home)["results"]

    check_ranked(results, min(k, len(matching)))
    assert {r["enterprise_id"] for r in results} <= set(matching["enterprise_id"])


def test_closed_firms_come_back_only_with_include_closed(workspace, enterprises):
    closed = enterprises[~enterprises["is_local"] & (enterprises["status_class"] == "closed")].iloc[0]
    text = profile_texts(closed.to_frame().T)[0]

    default = cli_json("search", text, "--top", 50, "--home", workspace.home)["results"]
    with_closed = cli_json("search", text, "--top", 50, "--include-closed", "--home", workspace.home)["results"]

    closed_ids = set(enterprises.loc[enterprises["status_class"] == "closed", "enterprise_id"])
    assert not closed_ids & {r["enterprise_id"] for r in default}
    found = {r["enterprise_id"]: r for r in with_closed}
    assert closed["enterprise_id"] in found
    assert found[closed["enterprise_id"]]["similarity"] == max(r["similarity"] for r in with_closed)


def test_prospects_table_output(workspace, first_gap):
    result = cli("prospects", "--gap", first_gap["gap_id"], "--top", 3, "--home", workspace.home)

    assert first_gap["gap_id"] in result.stdout


def test_unknown_gap_is_an_error_naming_it(workspace):
    result = cli("prospects", "--gap", "no-chain.no-segment", "--home", workspace.home, expect=None)

    assert result.exit_code != 0
    assert "no-chain.no-segment" in str(result.exception)


# --- search ------------------------------------------------------------------------------------


def test_search_returns_k_outside_firms_best_first(workspace):
    answer = cli_json("search", "laser radar sensors for self-driving cars", "--top", 8, "--home", workspace.home)

    assert answer["query"]["text"] == "laser radar sensors for self-driving cars"
    assert answer["query"]["version"] == workspace.manifest["version"]
    check_ranked(answer["results"], 8)
    assert not any(r["is_local"] for r in answer["results"])


def test_search_with_a_firms_own_profile_finds_it_near_the_top(workspace, enterprises):
    target = enterprises[outside_open(enterprises)].iloc[5]
    text = profile_texts(target.to_frame().T)[0]

    results = cli_json("search", text, "--top", 10, "--home", workspace.home)["results"]

    found = {r["enterprise_id"]: r for r in results}
    assert target["enterprise_id"] in found
    assert found[target["enterprise_id"]]["similarity"] == pytest.approx(1.0, abs=0.02)
    assert found[target["enterprise_id"]]["similarity"] == max(r["similarity"] for r in results)


def segment_recovery(workspace, candidates_for) -> list[float]:
    """Per segment gap: share of the top 10 that truly belong to the segment (by the generator's
    hidden labels), out of at most 10 outside members."""
    catalog = Catalog.load(workspace.version_dir)
    labels = pd.read_csv(workspace.home / "data" / "samples" / "labels.csv", keep_default_na=False)
    outside_labels = labels[~labels["is_local"]].set_index("enterprise_id")["segments"].str.split(";")
    shares = []
    for gap, vector in zip(catalog.gaps, catalog.gap_vectors):
        members = {e for e, segs in outside_labels.items() if gap["segment_id"] in segs}
        if not gap["segment_id"] or not members:
            continue
        found = set(candidates_for(catalog, gap, vector)["enterprise_id"])
        shares.append(len(found & members) / min(10, len(members)))
    assert len(shares) >= 20
    return shares


def test_retrieval_recovers_the_outside_firms_of_each_gap_segment(workspace):
    """Quality floor of hybrid retrieval: measured about 0.8 on this sample."""
    def retrieved(catalog, gap, vector):
        return retrieve(catalog.enterprises, catalog.searcher, catalog.lexical, vector,
                        catalog.lexical.query_tokens(gap["text"]), 10, Filters())

    shares = segment_recovery(workspace, retrieved)

    assert sum(shares) / len(shares) >= 0.6


def test_ranked_prospects_keep_the_gap_segment_in_the_top_ten(workspace):
    shares = segment_recovery(workspace, lambda catalog, gap, _: catalog.prospects(gap["gap_id"], 10, Filters()))

    assert sum(shares) / len(shares) >= 0.6


def write_needs(path, *lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def batch_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_batch_search_answers_valid_lines_and_reports_the_invalid_one(workspace, tmp_path):
    needs = write_needs(
        tmp_path / "needs.jsonl",
        json.dumps({"id": "lidar", "text": "LiDAR sensors for autonomous driving"}),
        "{this is not json",
        json.dumps({"id": "de-pay", "text": "online payment gateway", "country": "DE"}),
    )

    result = cli("search", "--batch", needs, "--top", 4, "--home", workspace.home, "--json", expect=1)

    lines = batch_lines(result)
    assert [line["id"] for line in lines] == ["lidar", "line-2", "de-pay"]
    assert len(lines[0]["results"]) == 4 and not any(r["is_local"] for r in lines[0]["results"])
    assert "needs.jsonl line 2" in lines[1]["error"] and "results" not in lines[1]
    assert lines[2]["results"] and {r["country"] for r in lines[2]["results"]} == {"DE"}
    assert "1 of 3" in result.stderr


def test_batch_answers_equal_single_searches(workspace, tmp_path):
    text = "gene sequencing and genomic diagnostics for hospitals"
    needs = write_needs(tmp_path / "needs.jsonl", json.dumps({"id": "a", "text": text}))

    batch = batch_lines(cli("search", "--batch", needs, "--top", 5, "--home", workspace.home))
    single = cli_json("search", text, "--top", 5, "--home", workspace.home)["results"]

    assert [r["enterprise_id"] for r in batch[0]["results"]] == [r["enterprise_id"] for r in single]


def test_batch_line_with_a_wrongly_typed_filter_gets_an_error_line(workspace, tmp_path):
    needs = write_needs(
        tmp_path / "needs.jsonl",
        json.dumps({"id": "ok", "text": "online education platform"}),
        json.dumps({"id": "bad", "text": "online payments", "min_employees": "many"}),
    )

    result = cli("search", "--batch", needs, "--top", 3, "--home", workspace.home, expect=None)

    lines = batch_lines(result)
    assert [line["id"] for line in lines] == ["ok", "bad"]
    assert "min_employees" in lines[1]["error"]
    assert result.exit_code == 1
