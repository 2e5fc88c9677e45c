"""The synthetic sample region: deterministic, realistic enough to exercise every pipeline path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from matcher import schemas as S
from matcher.chain_map import load_chain_map
from matcher.mapping import load_mapping
from matcher.mapping_apply import apply_mapping
from matcher.sample import generate_sample
from matcher.sample_outcomes import draw_outcomes, segment_gap_plan, segment_partners
from matcher.sample_zh import CN_REGISTRY_COLUMNS
from matcher.validation import validate_enterprises
from tests.conftest import CHAIN_MAP, REPO_ROOT, SAMPLE_MAPPING

VOCABULARY = REPO_ROOT / "data" / "generator" / "vocabulary.yaml"


@pytest.fixture(scope="module")
def chain_map():
    return load_chain_map(CHAIN_MAP)


@pytest.fixture(scope="module")
def vocabulary():
    return yaml.safe_load(VOCABULARY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample(chain_map, vocabulary):
    return generate_sample(chain_map, vocabulary, n=400, seed=3)


def test_same_seed_gives_identical_frames(chain_map, vocabulary, sample):
    again = generate_sample(chain_map, vocabulary, n=400, seed=3)

    for name in ("enterprises", "outcomes", "labels"):
        pd.testing.assert_frame_equal(sample[name], again[name])


def test_other_seed_gives_other_data(chain_map, vocabulary, sample):
    other = generate_sample(chain_map, vocabulary, n=400, seed=4)

    assert set(other["enterprises"]["uscc"]).isdisjoint(sample["enterprises"]["uscc"])
    assert other["enterprises"]["business_scope"].tolist() != sample["enterprises"]["business_scope"].tolist()


def test_sizes_and_unique_ids(sample):
    enterprises, labels = sample["enterprises"], sample["labels"]

    assert len(enterprises) == len(labels) == 400
    assert enterprises["uscc"].is_unique
    assert labels["enterprise_id"].tolist() == enterprises["uscc"].tolist()


def test_contains_local_and_outside_firms_of_several_countries(sample):
    enterprises = sample["enterprises"]

    local = enterprises["district"] == "Yangpu"
    assert 10 <= local.sum() <= 80
    assert (~local).sum() > 300
    assert sample["labels"]["is_local"].tolist() == local.tolist()
    assert {"CN", "DE", "US"} <= set(enterprises["country_code"])


def test_has_a_few_broken_rows_that_ingest_quarantines_but_accepts(sample):
    mapped = apply_mapping(sample["enterprises"], load_mapping(SAMPLE_MAPPING), "enterprises.csv")

    result = validate_enterprises(mapped, "enterprises.csv")

    assert 4 <= result.rows_quarantined <= 10
    assert result.bad_share <= 0.05  # under the default limit, so the sample always ingests
    assert {S.EMPLOYEES, S.NAME, S.LAST_FUNDING_DATE, S.FOUNDED_YEAR} <= set(result.quarantine["column"])


def test_firm_kinds_include_generic_and_distractor_firms(sample):
    kinds = set(sample["labels"]["kind"])

    assert {"normal", "multi", "distractor", "generic"} <= kinds
    no_segment = sample["labels"]["segments"].fillna("") == ""
    assert set(sample["labels"].loc[no_segment, "kind"]) <= {"distractor", "generic"}


def test_local_firms_leave_at_least_one_segment_of_every_chain_empty(chain_map, vocabulary):
    labels = generate_sample(chain_map, vocabulary, n=3000, seed=5)["labels"]
    local_segments = {s for segs in labels.loc[labels["is_local"], "segments"].fillna("") for s in segs.split(";") if s}

    for chain in chain_map.chains:
        assert {s.id for s in chain.segments} - local_segments, chain.id


def test_outcomes_have_both_labels_and_point_at_outside_firms_and_known_gaps(sample, chain_map):
    outcomes = sample["outcomes"]
    outside = set(sample["labels"].loc[~sample["labels"]["is_local"], "enterprise_id"])
    segment_gaps = {f"{c.id}.{s.id}" for c, s in chain_map.segments()}

    assert set(outcomes["outcome"]) == {"landed", "declined"}
    assert set(outcomes["enterprise_id"]) <= outside
    assert set(outcomes["gap_id"]) <= segment_gaps
    assert outcomes["outcome_id"].is_unique
    assert outcomes["contacted_at"].tolist() == sorted(outcomes["contacted_at"])


def test_landing_logits_are_those_the_outcomes_were_drawn_with(chain_map, vocabulary, sample):
    # benchmarks/ranking_ceiling.py reads the hidden landing probability of each outcome: one
    # logit per outreach, in outcome_id order, and asking for them changes nothing drawn.
    logits: list[float] = []
    again = generate_sample(chain_map, vocabulary, n=400, seed=3, landing_logits=logits)

    for name in sample:
        pd.testing.assert_frame_equal(again[name], sample[name])
    assert len(logits) == len(sample["outcomes"])
    by_id = dict(zip(sorted(sample["outcomes"]["outcome_id"]), logits))
    landed = sample["outcomes"]["outcome"] == "landed"
    mean_logit = {flag: np.mean([by_id[i] for i in sample["outcomes"].loc[landed == flag, "outcome_id"]]) for flag in (True, False)}
    assert mean_logit[True] > mean_logit[False]  # landings were drawn with higher probabilities


def test_outreach_history_can_be_redrawn_on_the_same_universe(chain_map, vocabulary, sample):
    plan = segment_gap_plan(chain_map, np.random.default_rng(3))  # the generator's first draws
    enterprises = sample["enterprises"]
    logits: list[float] = []

    fresh = draw_outcomes(np.random.default_rng([3, 1000]), enterprises, sample["labels"], chain_map, plan, logits=logits)

    assert set(plan.values()) <= {0.0, 0.04, 1.0}
    assert len(fresh) == len(logits) == max(50, len(enterprises) // 10)
    assert set(fresh["enterprise_id"]) <= set(sample["labels"].loc[~sample["labels"]["is_local"], "enterprise_id"])
    assert {g.split(".", 1)[1] for g in fresh["gap_id"]} <= {s for s, w in plan.items() if w < 1.0}
    partners = segment_partners(chain_map, plan)
    assert set(partners) == {s.id for _, s in chain_map.segments()}


def test_vocabulary_must_cover_every_segment(chain_map, vocabulary):
    partial = {**vocabulary, "segments": dict(list(vocabulary["segments"].items())[:-1])}

    with pytest.raises(ValueError, match="vocabulary has no entry"):
        generate_sample(chain_map, partial, n=100, seed=0)


# ----------------------------------------------------------------------------- Chinese sample

VOCABULARY_ZH = REPO_ROOT / "data" / "generator" / "vocabulary_zh.yaml"
CN_REGISTRY_MAPPING = REPO_ROOT / "data" / "mappings" / "cn-registry.yaml"
ZH_STATUS_WORDS = {"存续", "在业", "存续（在营、开业、在册）", "注销", "迁出", "撤销", "吊销，未注销", "吊销", "停业"}


@pytest.fixture(scope="module")
def vocabulary_zh():
    return yaml.safe_load(VOCABULARY_ZH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample_zh(chain_map, vocabulary, vocabulary_zh):
    return generate_sample(chain_map, vocabulary, n=400, seed=3, lang="zh", vocabulary_zh=vocabulary_zh)


def test_every_segment_has_chinese_matching_text_and_industry_codes(chain_map):
    for _, segment in chain_map.segments():
        assert segment.description_zh.count("。") >= 3, segment.id
        assert 8 <= len(segment.keywords_zh) <= 15, segment.id
        assert segment.industry_codes, segment.id
        assert segment.text_zh.startswith(segment.name_zh)
    for chain in chain_map.chains:
        for gap in chain.gaps:
            assert (gap.text is None) == (gap.text_zh is None), gap.id


def test_chinese_sample_has_the_english_firms_labels_and_outcomes(sample, sample_zh):
    pd.testing.assert_frame_equal(sample_zh["labels"], sample["labels"])
    pd.testing.assert_frame_equal(sample_zh["outcomes"], sample["outcomes"])
    assert sample_zh["enterprises"]["统一社会信用代码"].tolist() == sample["enterprises"]["uscc"].tolist()
    assert len(sample_zh["previous"]) == len(sample["previous"])


def test_chinese_export_has_the_cn_registry_headers_and_chinese_text(sample_zh):
    export = sample_zh["enterprises"]
    named = export[export["企业名称"] != ""]

    assert list(export.columns) == list(CN_REGISTRY_COLUMNS)
    assert named["企业名称"].str.endswith("公司").all()
    assert named["企业名称"].str.contains(r"[\u4e00-\u9fff]{4,}").all()
    assert export["经营范围"].str.contains("依法须经批准的项目|依法自主开展经营活动").all()
    assert export["经营范围"].str.contains("一般项目：").mean() > 0.5
    assert set(export["登记状态"]) - ZH_STATUS_WORDS == {"正常经营中"}  # the one deliberately unknown word
    assert export["注册资本"].str.contains(r"^\d+(?:\.\d+)?(?:万|亿)").mean() > 0.99
    assert export["成立日期"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").mean() > 0.99
    assert {"是", "否"} >= set(export["高新技术企业"])


def test_chinese_export_places_local_firms_in_yangpu(sample, sample_zh):
    export = sample_zh["enterprises"]
    local = sample["labels"]["is_local"]

    assert (export["所属区县"] == "杨浦区").tolist() == local.tolist()
    assert set(export.loc[local, "所属城市"]) == {"上海市"}
    assert export.loc[local, "注册地址"].str.startswith("上海市杨浦区").all()


def test_chinese_industry_codes_follow_each_firms_true_segment(chain_map, sample_zh):
    codes = {s.id: s.industry_codes for _, s in chain_map.segments()}
    export, labels = sample_zh["enterprises"], sample_zh["labels"]
    with_code = export["国标行业小类"] != "-"
    primary = labels["segments"].fillna("").str.split(";").str[0]
    code = export["国标行业小类"].str.split(" ").str[0]

    in_segment = [
        any(c.startswith(p) for p in codes[s]) for c, s, k, has in zip(code, primary, labels["kind"], with_code)
        if k in ("normal", "multi") and has
    ]
    generic = [
        any(c.startswith(p) for cs in codes.values() for p in cs)
        for c, k, has in zip(code, labels["kind"], with_code) if k == "generic" and has
    ]
    # Most firms that carry a code carry one of their segment's (55 in 85 drawn), the rest a catch-all class.
    assert 0.55 <= sum(in_segment) / len(in_segment) < 0.8
    assert not any(generic)
    for column, level in (("国标行业门类", 1), ("国标行业大类", 3), ("国标行业中类", 4)):
        assert (export.loc[with_code, column].str.split(" ").str[0] == code[with_code].str[:level]).all()


def test_chinese_sample_is_deterministic_per_seed(chain_map, vocabulary, vocabulary_zh, sample_zh):
    again = generate_sample(chain_map, vocabulary, n=400, seed=3, lang="zh", vocabulary_zh=vocabulary_zh)
    other = generate_sample(chain_map, vocabulary, n=400, seed=4, lang="zh", vocabulary_zh=vocabulary_zh)

    for name in ("enterprises", "previous", "outcomes", "labels"):
        pd.testing.assert_frame_equal(again[name], sample_zh[name])
    assert other["enterprises"]["经营范围"].tolist() != sample_zh["enterprises"]["经营范围"].tolist()


def test_a_firms_fixed_attributes_are_the_same_in_both_yearly_exports(sample_zh):
    current = sample_zh["enterprises"].set_index("统一社会信用代码")
    previous = sample_zh["previous"].set_index("统一社会信用代码")
    both = previous.index.intersection(current.index)
    fixed = ["经营范围", "法定代表人", "注册资本", "国标行业小类", "所属区县"]

    # only the deliberately broken current rows differ
    assert (current.loc[both, fixed] != previous.loc[both, fixed]).any(axis=1).sum() <= 1


def test_chinese_export_ingests_with_only_the_broken_rows_quarantined(sample_zh):
    mapping = load_mapping(CN_REGISTRY_MAPPING)
    mapped = apply_mapping(sample_zh["enterprises"], mapping, "enterprises-2026-11-01.xlsx")

    result = validate_enterprises(mapped, "enterprises-2026-11-01.xlsx", mapping.status_map)

    assert result.rows_quarantined == 6
    assert {S.EMPLOYEES, S.NAME, S.LAST_FUNDING_DATE, S.FOUNDED_YEAR, S.REGISTERED_CAPITAL, S.STATUS} <= set(result.quarantine["column"])
    valid = result.enterprises
    assert valid[S.INDUSTRY_CODE].dropna().str.fullmatch(r"[A-T]\d{4}").all()
    assert set(valid[S.STATUS_CLASS]) <= {"operating", "closed"}
    assert valid[S.IS_LOCAL].sum() == valid["district"].eq("杨浦区").sum() > 0


def test_chinese_vocabulary_must_cover_every_segment_within_its_codes(chain_map, vocabulary, vocabulary_zh):
    partial = {**vocabulary_zh, "segments": dict(list(vocabulary_zh["segments"].items())[:-1])}
    with pytest.raises(ValueError, match="no entry for segments"):
        generate_sample(chain_map, vocabulary, n=100, seed=0, lang="zh", vocabulary_zh=partial)

    robots = {**vocabulary_zh["segments"]["industrial-robots"], "industry_classes": ["I6513"]}
    outside = {**vocabulary_zh, "segments": {**vocabulary_zh["segments"], "industrial-robots": robots}}
    with pytest.raises(ValueError, match="industrial-robots class I6513"):
        generate_sample(chain_map, vocabulary, n=100, seed=0, lang="zh", vocabulary_zh=outside)


def test_unknown_language_or_missing_chinese_vocabulary_is_refused(chain_map, vocabulary):
    with pytest.raises(ValueError, match="unknown sample language 'fr'"):
        generate_sample(chain_map, vocabulary, n=100, seed=0, lang="fr")
    with pytest.raises(ValueError, match="vocabulary_zh.yaml"):
        generate_sample(chain_map, vocabulary, n=100, seed=0, lang="zh")
