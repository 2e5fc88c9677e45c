"""End to end: train the growth and landing models on the sample, then rank and explain prospects.

One module-scoped copy of the session workspace gets last year's export ingested (after this
year's: the earlier snapshot is chosen by data date, not by ingest order) and is trained with
``MATCHER_MIN_OUTCOMES=20`` on the sample's outcomes plus a few hundred more outcomes drawn from
the same kind of hidden process (the 400-firm sample records only ~50: too few for any tree of the
landing model to split, so every prospect would tie). Tests that write work on further copies.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn

from matcher import artifacts
from matcher.catalog import Catalog
from matcher.errors import ArtifactCorruptError, SchemaError
from matcher.explain import DECIMALS, compare_report, industry_labels, reason_text, rounded, why_not_report
from matcher.filters import Filters
from matcher.features import FEATURES
from matcher.enterprise_table import read_enterprise_table
from pipelines.train_ranker import EVALUATION_SPLITS
from tests.conftest import SAMPLE_MAPPING
from tests.e2e.conftest import cli, cli_json

pytestmark = pytest.mark.e2e

CJK = re.compile(r"[\u4e00-\u9fff]")
N_EXTRA_OUTCOMES = 300
TOP = 12


@dataclass
class Trained:
    home: Path
    report: dict
    parent_version: str
    current_snapshot: str
    previous_snapshot: str
    outcome_files: tuple[Path, ...]
    gap: dict

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "models" / "matcher"

    @property
    def version_dir(self) -> Path:
        return artifacts.version_dir(self.artifacts_dir)

    @property
    def outcome_args(self) -> list:
        return [x for path in self.outcome_files for x in ("--outcomes", path)]


def write_extra_outcomes(home: Path, gaps: list[dict], known: set[str], n: int, seed: int = 0) -> Path:
    """More recorded outreach for the sample region: staff mostly approach firms of the gap's
    segment; a firm lands more often when it belongs there, grows, is near and carries no risk."""
    raw = pd.read_csv(home / "data" / "samples" / "enterprises.csv", dtype=str, keep_default_na=False).set_index("uscc")
    labels = pd.read_csv(home / "data" / "samples" / "labels.csv", dtype=str, keep_default_na=False).set_index("enterprise_id")
    outside = [e for e in labels.index if labels.at[e, "is_local"] == "False" and e in known]
    members: dict[str, list[str]] = {}
    for e in outside:
        for segment in labels.at[e, "segments"].split(";"):
            members.setdefault(segment, []).append(e)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        gap = gaps[rng.integers(len(gaps))]
        pool = members.get(gap["segment_id"], [])
        e = pool[rng.integers(len(pool))] if pool and rng.random() < 0.6 else outside[rng.integers(len(outside))]
        segments = labels.at[e, "segments"].split(";")
        fit = 1.0 if segments[0] == gap["segment_id"] else 0.6 if gap["segment_id"] in segments else 0.0
        growth = float(raw.at[e, "staff_growth"]) if raw.at[e, "staff_growth"] else 0.05
        near = {"Shanghai": 1.0, "Jiangsu": 0.6, "Zhejiang": 0.6, "Anhui": 0.5}.get(raw.at[e, "province"], 0.1)
        risky = 1.0 if raw.at[e, "risk_tags"] else 0.0
        logit = -2.5 + 3.0 * fit + 2.0 * growth + 0.9 * near - 1.5 * risky
        landed = rng.random() < 1 / (1 + math.exp(-logit))
        day = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 1400)))
        rows.append({"outcome_id": f"x{k:05d}", "enterprise_id": e, "gap_id": gap["gap_id"],
                     "contacted_at": str(day.date()), "outcome": "landed" if landed else "declined"})
    path = home / "data" / "extra_outcomes.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(workspace, tmp_path_factory) -> Trained:
    home = tmp_path_factory.mktemp("trained") / "home"
    shutil.copytree(workspace.home, home)
    previous = cli_json("ingest", home / "data" / "samples" / "previous.csv", "--mapping", SAMPLE_MAPPING, "--home", home)
    gaps = [g for g in cli_json("gaps", "--home", home) if g["segment_id"]]
    extra = write_extra_outcomes(home, gaps, set(workspace.enterprises()["enterprise_id"]), N_EXTRA_OUTCOMES)
    files = (home / "data" / "samples" / "outcomes.csv", extra)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATCHER_MIN_OUTCOMES", "20")
        report = cli_json("train", *[x for p in files for x in ("--outcomes", p)], "--home", home)
    # The most severe gap whose neighbouring segments have local firms to partner with.
    context = Catalog.load(workspace.version_dir).context
    gap = next(g for g in gaps if len(context.partner_rows.get(g["segment_id"], [])) >= 2)
    return Trained(home, report, workspace.manifest["version"], workspace.ingest["snapshot_id"],
                   previous["snapshot_id"], files, gap)


@pytest.fixture(scope="module")
def catalog(trained) -> Catalog:
    return Catalog.load(trained.version_dir)


@pytest.fixture(scope="module")
def enterprises(trained) -> pd.DataFrame:
    return read_enterprise_table(trained.version_dir / "enterprises.arrow").set_index("enterprise_id")


@pytest.fixture(scope="module")
def ranked40(trained) -> list[dict]:
    return cli_json("prospects", "--gap", trained.gap["gap_id"], "--top", 40, "--home", trained.home)["results"]


@pytest.fixture(scope="module")
def explained(trained) -> list[dict]:
    return cli_json("prospects", "--gap", trained.gap["gap_id"], "--top", TOP, "--explain", "--home", trained.home)["results"]


def pair_features(catalog: Catalog, gap_id: str, enterprise_ids: list[str]) -> pd.DataFrame:
    gap, vector = catalog.gap(gap_id)
    return catalog.features(gap, vector, np.array([catalog.row_of(e) for e in enterprise_ids]))


# Every number an explanation carries is rounded to DECIMALS places (README, JSON results): one
# rounding step apart is as close as two such numbers can be asked to agree, and a sum of n of
# them is within n half-steps of the rounded total it explains.
STEP = 10.0 ** -DECIMALS


def rounding_slack(n_terms: int) -> float:
    return (n_terms + 1) * STEP / 2


def all_outcomes(trained: Trained) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, dtype=str) for p in trained.outcome_files], ignore_index=True)


def check_ranked(results: list[dict], k: int, ranker: str) -> None:
    assert len(results) == k
    assert [r["rank"] for r in results] == list(range(1, k + 1))
    scores = [r["score"] for r in results]
    assert all(a >= b for a, b in zip(scores, scores[1:])), scores
    percentiles = [r["percentile"] for r in results]
    assert all(a > b for a, b in zip(percentiles, percentiles[1:])) and 0 < percentiles[-1] <= percentiles[0] <= 1
    for r in results:
        assert r["ranker"] == ranker
        for field in ("score", "growth_score", "fit_score", "regional_score"):
            assert 0.0 <= r[field] <= 1.0, (field, r)
        assert r["is_local"] is False


# --- training ---------------------------------------------------------------------------------


def test_train_publishes_a_landing_model_version_with_a_growth_model(trained):
    report = trained.report
    outcomes = all_outcomes(trained)
    known = set(read_enterprise_table(trained.version_dir / "enterprises.arrow")["enterprise_id"])
    unknown_firm = int((~outcomes["enterprise_id"].isin(known)).sum())
    manifest = artifacts.verify(trained.version_dir)

    assert report["status"] == "published" and report["ranker"] == "landing-model"
    assert report["parent_version"] == trained.parent_version
    assert artifacts.current_version(trained.artifacts_dir) == report["version"] == manifest["version"]
    assert manifest["parent_version"] == trained.parent_version
    assert manifest["ranker"] == {"kind": "landing-model", "trained_in": report["version"],
                                  "scikit_learn": sklearn.__version__, "outcomes": len(outcomes) - unknown_firm}
    assert {k: report["outcomes"][k] for k in ("usable", "rejected", "rejected_reasons")} == {
        "usable": len(outcomes) - unknown_firm, "rejected": unknown_firm,
        "rejected_reasons": {"enterprise_id not in the published snapshot": unknown_firm} if unknown_firm else {}}
    # No service database yet: every label came from the outcome file.
    assert report["outcomes"]["sources"] == {"files": len(outcomes) - unknown_firm, "database": 0, "reviews": 0}
    # The earlier snapshot is found by data date although it was ingested last.
    growth = report["growth"]
    assert trained.previous_snapshot > trained.current_snapshot
    assert growth["status"] == "trained"
    assert (growth["before"], growth["after"]) == (trained.previous_snapshot, trained.current_snapshot)
    assert growth["counts"]["examples"] >= 300 and 0 < growth["counts"]["grew"] < growth["counts"]["examples"]
    assert 0.5 < growth["metrics"]["growth model (out of fold)"]["roc_auc"] <= 1.0
    scores = np.load(trained.version_dir / "growth_scores.npy")
    assert scores.shape == (len(known),) and ((scores >= 0) & (scores <= 1)).all()
    assert (trained.version_dir / "ranker.joblib").is_file() and (trained.version_dir / "growth_model.joblib").is_file()


def test_model_card_reports_the_landing_model_against_both_baselines(trained):
    card = json.loads((trained.version_dir / "model_card.json").read_text())
    markdown = (trained.version_dir / "model_card.md").read_text()

    assert card["version"] == trained.report["version"] and card["ranker"] == "landing-model"
    assert card["data"]["snapshot_id"] == trained.current_snapshot
    assert card["data"]["outcomes_used"] == trained.report["outcomes"]["usable"]
    assert card["features"] == list(FEATURES)
    assert card["growth"]["status"] == "trained"
    evaluation = card["evaluation"]
    assert evaluation["status"] == "evaluated" and 1 <= evaluation["split"]["repeats"] <= EVALUATION_SPLITS
    assert {"landing model", "similarity only", "cold-start score"} <= set(evaluation["metrics"])
    for name in ("landing model", "similarity only", "cold-start score"):
        metrics = evaluation["metrics"][name]
        for key in ("ndcg@10", "precision@10", "roc_auc"):
            assert 0.0 <= metrics[key] <= 1.0, (name, key)
        assert len(evaluation["ndcg@10_per_split"][name]) == evaluation["split"]["repeats"]
        assert f"| {name} | {metrics['ndcg@10']:.3f} |" in markdown
    assert "## Growth model" in markdown and "**landing-model**" in markdown
    assert card["libraries"]["scikit_learn"] == sklearn.__version__


def test_training_leaves_the_parent_version_intact(trained):
    parent = trained.artifacts_dir / trained.parent_version

    manifest = json.loads((parent / "manifest.json").read_text())

    assert manifest["version"] == trained.parent_version and "ranker" not in manifest
    assert artifacts.verify(parent)["version"] == trained.parent_version
    assert cli_json("chains", "--version", trained.parent_version, "--home", trained.home)["version"] == trained.parent_version


# --- ranked lists -------------------------------------------------------------------------------


def test_prospects_carry_bounded_scores_and_ranks_from_the_landing_model(trained, ranked40, catalog):
    ranker = f"landing-model@{trained.report['version']}"
    check_ranked(ranked40, 40, ranker)
    growth = np.load(trained.version_dir / "growth_scores.npy")

    assert len({r["score"] for r in ranked40}) > 20, "the landing model separates the prospects"
    for r in ranked40:
        # growth_score shows the growth model's probability for the firm
        assert r["growth_score"] == pytest.approx(float(growth[catalog.row_of(r["enterprise_id"])]), abs=1e-4)
    features = pair_features(catalog, trained.gap["gap_id"], [r["enterprise_id"] for r in ranked40])
    expected = catalog.ranker.predict_proba(features)[:, 1]
    np.testing.assert_allclose([r["score"] for r in ranked40], expected, atol=1e-6)


def test_search_results_are_ranked_and_explained_by_the_landing_model(trained):
    results = cli_json("search", trained.gap["text"], "--top", 5, "--explain", "--home", trained.home)["results"]

    check_ranked(results, 5, f"landing-model@{trained.report['version']}")
    for r in results:
        e = r["explanation"]
        total = e["base_value"] + sum(c["contribution"] for c in e["contributions"])
        assert total == pytest.approx(e["model_output"], abs=rounding_slack(len(e["contributions"]) + 1))


# --- explanations -------------------------------------------------------------------------------


def test_explanations_add_up_to_the_landing_models_log_odds(trained, explained, catalog):
    ids = [r["enterprise_id"] for r in explained]
    features = pair_features(catalog, trained.gap["gap_id"], ids)
    margins = catalog.ranker.decision_function(features)

    check_ranked(explained, TOP, f"landing-model@{trained.report['version']}")
    for r, margin in zip(explained, margins):
        e = r["explanation"]
        assert [c["feature"] for c in sorted(e["contributions"], key=lambda c: FEATURES.index(c["feature"]))] == list(FEATURES)
        total = e["base_value"] + sum(c["contribution"] for c in e["contributions"])
        assert total == pytest.approx(e["model_output"], abs=rounding_slack(len(e["contributions"]) + 1))
        assert e["model_output"] == rounded(margin)
        assert (e["enterprise_id"], e["rank"], e["score"], e["ranker"]) == (r["enterprise_id"], r["rank"], r["score"], r["ranker"])
    assert any(abs(c["contribution"]) > 1e-3 for r in explained for c in r["explanation"]["contributions"])
    # The calibrated score is increasing in the explained log-odds: the explanation accounts for the order shown.
    for a, b in zip(explained, explained[1:]):
        if a["score"] > b["score"]:
            assert a["explanation"]["model_output"] >= b["explanation"]["model_output"]


def test_main_business_margins_compare_the_gaps_segment_with_the_firms_best_other_one(trained, ranked40, catalog):
    ctx = catalog.context
    features = pair_features(catalog, trained.gap["gap_id"], [r["enterprise_id"] for r in ranked40])
    rows = np.array([catalog.row_of(r["enterprise_id"]) for r in ranked40])
    column = ctx.segment_row[trained.gap["segment_id"]]
    keyword = np.asarray(ctx.vectors, dtype=np.float64) @ np.asarray(ctx.keyword_vectors, dtype=np.float64).T
    for name, z in (("segment_margin", ctx.segment_z(rows)),
                    ("keyword_margin", ((keyword - keyword.mean(axis=0)) / keyword.std(axis=0))[rows])):
        z = np.array(z, dtype=float)
        own = z[:, column].copy()
        z[:, column] = -np.inf
        np.testing.assert_allclose(features[name].to_numpy(), own - z.max(axis=1), atol=1e-4, err_msg=name)
    # A free-text need is placed in a segment, so it gets margins too.
    gap = catalog.need_as_gap(trained.gap["text"], catalog.gap(trained.gap["gap_id"])[1])
    assert gap["segment_id"] and catalog.features(gap, catalog.gap(trained.gap["gap_id"])[1], rows)["keyword_margin"].notna().all()


def industry_of(catalog, enterprise_id: str) -> str | None:
    """The firm's industry code and name as its explanation quotes them."""
    return industry_labels(catalog.enterprises, [catalog.row_of(enterprise_id)])[0]


def test_every_contribution_text_states_only_the_value_it_rests_on(trained, explained, catalog):
    features = pair_features(catalog, trained.gap["gap_id"], [r["enterprise_id"] for r in explained])
    checked_missing = checked_growth = 0

    for r, (_, f) in zip(explained, features.iterrows()):
        e = r["explanation"]
        for c in e["contributions"]:
            name, raw, text = c["feature"], float(f[c["feature"]]), c["text"]
            assert c["source"]["kind"] in ("observed", "derived")
            if np.isnan(raw):
                assert c["value"] is None
                assert "not reported" in text and "%" not in text and not re.search(r"\d", text), text
                checked_missing += 1
                continue
            # The value is the feature under the explanation's rounding rule, and the text states it.
            value = rounded(raw)
            assert c["value"] == value, (name, raw, c["value"])
            industry = industry_of(catalog, r["enterprise_id"])
            assert text.startswith(reason_text(name, value, "en", industry, not trained.gap["segment_id"])), (name, value, text)
            if name == "industry_code_match" and industry:
                assert text.startswith(f"industry code {industry} ")
            if name in ("employee_growth", "revenue_growth"):
                assert f"{value * 100:+.0f}%" in text
                checked_growth += 1
            if name == "distance_km":
                assert f"{value:,.0f} km" in text
            if name == "gap_similarity":
                assert f"{value:.2f}" in text
            # Why it raises or lowers the score is said relative to the other candidates, not as "(lowers the score)".
            assert "the score" not in text, text
        by_text = {c["text"]: c["contribution"] for c in e["contributions"]}
        assert all(by_text[t] > 0 for t in e["reasons"]["positive"])
        assert all(by_text[t] < 0 for t in e["reasons"]["negative"])
        assert len(e["reasons"]["positive"]) <= 3 and len(e["reasons"]["negative"]) <= 3
    assert checked_growth > 0 and checked_missing > 0


def test_explanations_carry_closure_evidence_partners_risks_policies_and_freshness(trained, explained, enterprises):
    gap = trained.gap
    landed = set(all_outcomes(trained).query("outcome in ['landed', 'signed']")["enterprise_id"])
    manifest = json.loads((trained.version_dir / "manifest.json").read_text())

    for r in explained:
        e = r["explanation"]
        ent = enterprises.loc[r["enterprise_id"]]
        gain = next(c["value"] for c in e["contributions"] if c["feature"] == "strength_gain")
        closure = e["gap_closure"]
        assert closure["segment_id"] == gap["segment_id"]
        assert closure["strength_before"] == gap["strength"]
        assert closure["strength_after"] == closure["strength_before"] + int(gain)
        for sentence in e["evidence"]:
            assert sentence in ent["description"]
        for partner in e["local_partners"]:
            assert bool(enterprises.loc[partner["enterprise_id"], "is_local"]) is True
        sims = [p["similarity"] for p in e["local_partners"]]
        assert sims == sorted(sims, reverse=True) and len(sims) <= 5
        for firm in e["similar_landed"]:
            assert firm["enterprise_id"] in landed and firm["enterprise_id"] != r["enterprise_id"]
        assert e["risk_flags"] == [str(x) for x in ent["risk_flags"]]
        policies = next(c["value"] for c in e["contributions"] if c["feature"] == "eligible_policies")
        assert len(e["eligible_policies"]) == policies
        assert e["freshness"] == {"source_updated_at": str(pd.Timestamp(ent["updated_at"]).date()),
                                  "snapshot_id": trained.current_snapshot, "version": manifest["version"]}
    assert any(e["explanation"]["evidence"] for e in explained)
    assert any(e["explanation"]["local_partners"] for e in explained)
    assert any(e["explanation"]["similar_landed"] for e in explained)


def test_explanations_are_deterministic(trained):
    args = ("prospects", "--gap", trained.gap["gap_id"], "--top", 8, "--explain", "--json", "--home", trained.home)

    assert cli(*args).stdout == cli(*args).stdout


def test_explanations_print_as_text(trained, explained):
    text = cli("prospects", "--gap", trained.gap["gap_id"], "--top", 3, "--explain", "--home", trained.home).stdout

    first = explained[0]["explanation"]
    assert f"#1 {first['name']}" in text and f"ranked by landing-model@{trained.report['version']}" in text
    assert f"segment {trained.gap['segment_id']}: local strength" in text
    assert f"data as of {first['freshness']['source_updated_at']}" in text


def test_chinese_explanations_render_the_same_numbers_in_chinese(trained, explained):
    zh = cli_json("prospects", "--gap", trained.gap["gap_id"], "--top", TOP, "--explain", "--lang", "zh",
                  "--home", trained.home)["results"]

    assert [r["enterprise_id"] for r in zh] == [r["enterprise_id"] for r in explained]
    for r_zh, r_en in zip(zh, explained):
        e, e_en = r_zh["explanation"], r_en["explanation"]
        assert e["lang"] == "zh"
        assert [(c["feature"], c["value"], c["contribution"]) for c in e["contributions"]] == \
               [(c["feature"], c["value"], c["contribution"]) for c in e_en["contributions"]]
        for c in e["contributions"]:
            assert CJK.search(c["text"]), c["text"]
            assert c["text"] != next(x["text"] for x in e_en["contributions"] if x["feature"] == c["feature"])
            if c["value"] is None:
                assert "未披露" in c["text"]
            elif c["feature"] == "employee_growth":
                assert f"{c['value'] * 100:+.0f}%" in c["text"]
        for text in e["reasons"]["positive"] + e["reasons"]["negative"]:
            assert CJK.search(text)


def test_unknown_language_is_refused(trained):
    result = cli("prospects", "--gap", trained.gap["gap_id"], "--explain", "--lang", "fr", "--home", trained.home, expect=2)

    assert "--lang" in result.output


# --- why-not and compare ------------------------------------------------------------------------


def test_why_not_names_the_rank_and_what_holds_a_firm_back(trained, ranked40, catalog):
    last = ranked40[19]
    target = next(r for r in ranked40[27:] if r["score"] < last["score"])
    gap_id = trained.gap["gap_id"]

    report = cli_json("why-not", target["enterprise_id"], "--gap", gap_id, "--home", trained.home)

    assert report["rank"] == target["rank"] and report["retrieved"] is True and report["excluded_by"] == []
    assert report["ranker"] == target["ranker"]
    assert report["score"] == pytest.approx(target["score"], abs=STEP)
    assert report["last_shortlisted"]["enterprise_id"] == last["enterprise_id"]
    assert report["last_shortlisted"]["rank"] == 20
    assert report["last_shortlisted"]["score"] == pytest.approx(last["score"], abs=STEP)
    held = report["holding_it_back"]
    assert held and all(f["difference"] < 0 for f in held)
    assert [f["difference"] for f in held] == sorted(f["difference"] for f in held)
    assert all(f["difference"] > 0 for f in report["in_its_favour"])
    features = pair_features(catalog, gap_id, [target["enterprise_id"], last["enterprise_id"]])
    for f in held:
        assert f["a_text"] == reason_text(f["factor"], rounded(features.iloc[0][f["factor"]]), "en",
                                          industry_of(catalog, target["enterprise_id"]), not trained.gap["segment_id"])
        assert f["same_value"] is False
    # Per-factor differences add up to the log-odds gap between the two firms.
    margins = catalog.ranker.decision_function(features)
    factors = cli_json("compare", target["enterprise_id"], last["enterprise_id"], "--gap", gap_id, "--home", trained.home)["factors"]
    assert sum(f["difference"] for f in factors) == pytest.approx(margins[0] - margins[1], abs=rounding_slack(len(factors)))
    text = cli("why-not", target["enterprise_id"], "--gap", gap_id, "--home", trained.home).stdout
    assert f"rank {target['rank']} of" in text


def test_why_not_and_compare_are_computed_from_the_ranked_pool_they_are_given(trained, ranked40, catalog):
    """The report functions rank nothing themselves: given the gap's pool cut to its first 10, a
    firm ranked 30th is not retrieved and has no shortlist to compare with."""
    gap, vector = catalog.gap(trained.gap["gap_id"])
    ranked, pool = catalog.rank_pool(gap, vector, 40, Filters())
    firm = ranked40[29]["enterprise_id"]
    row = catalog.row_of(firm)
    args = (gap, catalog.enterprises.iloc[[row]], 0.5, 20, Filters())
    rows = np.array([row, int(ranked["_row"].iloc[19])])
    full = why_not_report(*args, ranked, pool, rows, catalog.features(gap, vector, rows),
                          industry_labels(catalog.enterprises, rows), catalog.ranker, catalog.ranker_name)
    assert full == {**catalog.why_not(gap["gap_id"], firm, 20, Filters()), "similarity": 0.5}
    cut = why_not_report(*args, ranked.head(10), pool.head(10), np.array([row]), None, [None], catalog.ranker,
                         catalog.ranker_name)
    assert cut["retrieved"] is False and cut["rank"] is None and cut["candidates_ranked"] == 10
    assert "last_shortlisted" not in cut

    a, b = ranked40[0]["enterprise_id"], ranked40[29]["enterprise_id"]
    rows = np.array([catalog.row_of(a), catalog.row_of(b)])
    report = compare_report(gap, a, b, ranked.head(10), pool.head(10), rows, catalog.features(gap, vector, rows),
                            industry_labels(catalog.enterprises, rows), catalog.ranker, catalog.ranker_name)
    assert report["a"]["rank"] == 1 and report["b"]["rank"] is None


def test_why_not_a_local_firm_names_the_local_exclusion(trained, enterprises):
    local_id = enterprises.index[enterprises["is_local"] & (enterprises["status_class"] == "operating")][0]
    gap_id = trained.gap["gap_id"]

    report = cli_json("why-not", local_id, "--gap", gap_id, "--home", trained.home)
    with_local = cli_json("why-not", local_id, "--gap", gap_id, "--include-local", "--home", trained.home)

    assert any(reason.startswith("local enterprise") for reason in report["excluded_by"])
    assert report["retrieved"] is False and report["rank"] is None and "retrieval" in report
    assert with_local["excluded_by"] == []


def test_why_not_an_unknown_firm_names_the_id(trained):
    result = cli("why-not", "NO-SUCH-FIRM", "--gap", trained.gap["gap_id"], "--home", trained.home, expect=None)

    assert result.exit_code != 0 and "NO-SUCH-FIRM" in str(result.exception)


def test_compare_reports_the_higher_firm_consistently_with_the_prospect_ranks(trained, ranked40):
    better, worse = ranked40[2], ranked40[11]
    assert better["score"] > worse["score"]
    gap_id = trained.gap["gap_id"]

    report = cli_json("compare", worse["enterprise_id"], better["enterprise_id"], "--gap", gap_id, "--home", trained.home)
    text = cli("compare", worse["enterprise_id"], better["enterprise_id"], "--gap", gap_id, "--home", trained.home).stdout

    assert report["higher"] == better["enterprise_id"]
    assert report["a"]["enterprise_id"] == worse["enterprise_id"] and report["b"]["enterprise_id"] == better["enterprise_id"]
    assert report["a"]["score"] == pytest.approx(worse["score"], abs=STEP)
    assert report["b"]["score"] == pytest.approx(better["score"], abs=STEP)
    assert report["b"]["rank"] < report["a"]["rank"]
    assert sum(f["difference"] for f in report["factors"]) < 0
    differences = [f["difference"] for f in report["factors"]]
    assert differences == sorted(differences, reverse=True)
    assert f"higher: {better['enterprise_id']}" in text


# --- evaluation, guard, versions ------------------------------------------------------------------


def test_evaluate_ranking_prints_metrics_against_the_baselines(trained):
    evaluation = cli_json("evaluate", "ranking", *trained.outcome_args, "--home", trained.home)
    text = cli("evaluate", "ranking", *trained.outcome_args, "--home", trained.home).stdout

    assert evaluation["status"] == "evaluated"
    assert evaluation["rejected"] == trained.report["outcomes"]["rejected"]
    assert {"landing model", "similarity only", "cold-start score"} <= set(evaluation["metrics"])
    # Every outcome here trained the published model: it is never scored on pairs it has seen.
    assert "published model" not in evaluation["metrics"]
    card = json.loads((trained.version_dir / "model_card.json").read_text())["evaluation"]["metrics"]
    for name in ("landing model", "similarity only", "cold-start score"):
        assert evaluation["metrics"][name] == pytest.approx(card[name], abs=1e-9)  # same splits, same data
    assert "NDCG@10" in text and "similarity only" in text and "cold-start score" in text


def test_evaluate_ranking_with_too_few_outcomes_names_the_file(trained, tmp_path):
    path = tmp_path / "few.csv"
    all_outcomes(trained).head(5).to_csv(path, index=False)

    result = cli("evaluate", "ranking", "--outcomes", path, "--home", trained.home, expect=None)

    assert isinstance(result.exception, SchemaError) and "few.csv" in str(result.exception)


def test_a_worse_model_is_published_only_with_force(trained, tmp_path, monkeypatch):
    import pipelines.train_ranker as train_ranker

    home = tmp_path / "home"
    shutil.copytree(trained.home, home)
    artifacts_dir = home / "models" / "matcher"
    before = artifacts.current_version(artifacts_dir)
    published_ndcg = json.loads((trained.version_dir / "model_card.json").read_text())["evaluation"]["metrics"]["landing model"]["ndcg@10"]
    assert published_ndcg > 0.1
    real_evaluate = train_ranker.evaluate_ranking

    def worse(catalog, outcomes, features, repeats=5):
        evaluation = real_evaluate(catalog, outcomes, features, repeats=1)
        evaluation["metrics"].pop("published model", None)
        evaluation["metrics"]["landing model"]["ndcg@10"] = published_ndcg - 0.1
        return evaluation

    monkeypatch.setattr(train_ranker, "evaluate_ranking", worse)
    monkeypatch.setattr(train_ranker, "train_growth", lambda catalog, snapshots_dir: (None, None, {"status": "skipped by the test"}))
    monkeypatch.setenv("MATCHER_MIN_OUTCOMES", "20")
    outcome_args = [x for p in trained.outcome_files for x in ("--outcomes", p)]

    refused = cli("train", *outcome_args, "--home", home, expect=6)

    assert "not published" in refused.stdout and "--force" in refused.stdout
    assert artifacts.current_version(artifacts_dir) == before
    assert artifacts.list_versions(artifacts_dir) == [trained.parent_version, before]
    assert not [p for p in artifacts_dir.iterdir() if p.name.startswith(".tmp")]

    forced = json.loads(cli("train", *outcome_args, "--force", "--json", "--home", home).stdout)

    assert forced["status"] == "published" and "NDCG@10" in forced["forced"]
    assert artifacts.current_version(artifacts_dir) == forced["version"] != before
    manifest = artifacts.verify(artifacts_dir / forced["version"])
    assert manifest["parent_version"] == before and manifest["ranker"]["kind"] == "landing-model"


def test_a_ranker_from_another_scikit_learn_version_is_refused(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained.home, home)
    version_dir = artifacts.version_dir(home / "models" / "matcher")
    manifest = json.loads((version_dir / "manifest.json").read_text())
    manifest["ranker"]["scikit_learn"] = "0.24.2"
    (version_dir / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ArtifactCorruptError) as caught:
        Catalog.load(version_dir)
    result = cli("prospects", "--gap", trained.gap["gap_id"], "--home", home, expect=None)

    message = str(caught.value)
    assert "0.24.2" in message and sklearn.__version__ in message and "matcher train" in message
    assert result.exit_code != 0 and isinstance(result.exception, ArtifactCorruptError)


# --- cold start -----------------------------------------------------------------------------------


def test_untrained_workspace_ranks_and_explains_by_the_cold_start_score(workspace):
    gap_id = cli_json("gaps", "--home", workspace.home)[0]["gap_id"]

    results = cli_json("prospects", "--gap", gap_id, "--top", 10, "--explain", "--home", workspace.home)["results"]

    assert not (workspace.version_dir / "ranker.joblib").exists()
    check_ranked(results, 10, "cold-start")
    for r in results:
        e = r["explanation"]
        assert e["ranker"] == "cold-start" and e["base_value"] == 0.0
        parts = {c["feature"]: c for c in e["contributions"]}
        assert set(parts) == {"fit", "growth", "regional", "risk"}
        assert sum(c["contribution"] for c in e["contributions"]) == pytest.approx(e["model_output"], abs=rounding_slack(len(e["contributions"])))
        assert r["score"] == pytest.approx(min(max(e["model_output"], 0.0), 1.0), abs=STEP)
        assert parts["fit"]["value"] == pytest.approx(r["fit_score"], abs=1e-4)
        assert parts["regional"]["value"] == pytest.approx(r["regional_score"], abs=1e-4)
        for c in e["contributions"]:
            assert f"{c['value']:.2f}" in c["text"]
        assert len(e["facts"]) == len(FEATURES)


def test_why_not_under_cold_start_reports_the_scores_of_the_prospect_list(workspace):
    gap_id = cli_json("gaps", "--home", workspace.home)[0]["gap_id"]
    ranked = cli_json("prospects", "--gap", gap_id, "--top", 30, "--home", workspace.home)["results"]
    target, last = ranked[24], ranked[19]

    report = cli_json("why-not", target["enterprise_id"], "--gap", gap_id, "--home", workspace.home)

    assert report["rank"] == 25 and report["ranker"] == "cold-start"
    assert report["last_shortlisted"]["enterprise_id"] == last["enterprise_id"]
    assert report["score"] == pytest.approx(target["score"], abs=STEP)
    assert report["last_shortlisted"]["score"] == pytest.approx(last["score"], abs=STEP)


def test_train_with_too_few_outcomes_publishes_cold_start_and_counts_rejected_rows(workspace_copy):
    home = workspace_copy.home
    sample = pd.read_csv(home / "data" / "samples" / "outcomes.csv", dtype=str)
    known = set(workspace_copy.enterprises()["enterprise_id"])
    some_firm, some_gap = sample["enterprise_id"][sample["enterprise_id"].isin(known)].iloc[0], sample["gap_id"].iloc[0]
    bad = pd.DataFrame([
        {"outcome_id": "b1", "enterprise_id": some_firm, "gap_id": some_gap, "contacted_at": "2024-05-01", "outcome": "maybe"},
        {"outcome_id": "b2", "enterprise_id": some_firm, "gap_id": some_gap, "contacted_at": "soon", "outcome": "landed"},
        {"outcome_id": "b3", "enterprise_id": "NO-SUCH-FIRM", "gap_id": some_gap, "contacted_at": "2024-05-01", "outcome": "landed"},
        {"outcome_id": "b4", "enterprise_id": some_firm, "gap_id": "no-chain.no-segment", "contacted_at": "2024-05-01", "outcome": "declined"},
        {"outcome_id": "b5", "enterprise_id": some_firm, "gap_id": some_gap, "contacted_at": "2024-05-01", "outcome": "visited"},
        {"outcome_id": "b6", "enterprise_id": some_firm, "gap_id": some_gap, "contacted_at": "2024-05-02", "outcome": "negotiating"},
    ])
    path = home / "outcomes_with_problems.csv"
    pd.concat([sample, bad], ignore_index=True).to_csv(path, index=False)
    sample_unknown = int((~sample["enterprise_id"].isin(known)).sum())

    report = cli_json("train", "--outcomes", path, "--home", home)

    usable = len(sample) - sample_unknown
    assert report["status"] == "published" and report["ranker"] == "cold-start"
    assert report["outcomes"]["usable"] == usable
    assert report["outcomes"]["rejected"] == len(bad) + sample_unknown
    reasons = report["outcomes"]["rejected_reasons"]
    assert reasons["still open (no final outcome yet)"] == 2
    assert reasons["enterprise_id not in the published snapshot"] == 1 + sample_unknown
    assert reasons["contacted_at is not a date"] == 1
    assert reasons["gap_id is neither a published gap nor a chain_id.segment_id"] == 1
    assert sum(v for k, v in reasons.items() if k.startswith("unknown outcome")) == 1
    assert "need 200" in report["cold_start_reason"] and str(usable) in report["cold_start_reason"]
    assert report["growth"]["status"].startswith("no earlier snapshot")
    version_dir = workspace_copy.artifacts_dir / report["version"]
    assert artifacts.current_version(workspace_copy.artifacts_dir) == report["version"]
    assert artifacts.verify(version_dir)["ranker"]["kind"] == "cold-start"
    assert not (version_dir / "ranker.joblib").exists()
    card = json.loads((version_dir / "model_card.json").read_text())
    assert card["ranker"] == "cold-start" and card["data"]["outcomes_rejected"] == report["outcomes"]["rejected"]
    results = cli_json("prospects", "--gap", some_gap, "--top", 3, "--home", home)["results"]
    assert {r["ranker"] for r in results} == {"cold-start"}
