"""Filters (exact, applied before ranking), reciprocal-rank fusion, retrieve() and JSON records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from matcher import schemas as S
from matcher.index import EXACT_FACTORY, VectorSearcher, build_index, enterprise_faiss_ids
from matcher.lexical import LexicalIndex
from matcher.retrieval import RESULT_COLUMNS, Filters, filter_mask, fuse, records, retrieve
from matcher.snapshot import profile_texts
from tests.factories import TOPICS, HashingEncoder, make_frame, make_validated

FRAME = make_frame(
    [
        {S.COUNTRY: "CN", S.PROVINCE: "Jiangsu", S.EMPLOYEES: 50, S.FOUNDED_YEAR: 2010},  # F0
        {S.COUNTRY: "DE", S.PROVINCE: "Bavaria", S.EMPLOYEES: 500, S.FOUNDED_YEAR: 2020,
         S.QUALIFICATIONS: ["High-Tech Enterprise", "university spin-off"]},  # F1
        {S.COUNTRY: "CN", S.PROVINCE: "Shanghai", S.IS_LOCAL: True, S.EMPLOYEES: 80},  # F2 local
        {S.COUNTRY: "CN", S.PROVINCE: "Zhejiang", S.STATUS_CLASS: "closed", S.EMPLOYEES: 80},  # F3 closed
        {S.COUNTRY: "US", S.PROVINCE: "California", S.EMPLOYEES: None, S.FOUNDED_YEAR: None,
         S.QUALIFICATIONS: ["high-tech enterprise"]},  # F4 unknown size and age
        {S.COUNTRY: None, S.PROVINCE: None, S.EMPLOYEES: 10, S.FOUNDED_YEAR: 2021,
         S.STATUS_CLASS: "acquired"},  # F5
    ]
)


def passing(filters: Filters) -> list[str]:
    return FRAME[S.ENTERPRISE_ID][filter_mask(FRAME, filters)].tolist()


# --- filter_mask -------------------------------------------------------------------------------


def test_default_filters_exclude_local_and_closed_only():
    assert passing(Filters()) == ["F0", "F1", "F4", "F5"]


def test_include_local_and_include_closed():
    assert passing(Filters(include_local=True)) == ["F0", "F1", "F2", "F4", "F5"]
    assert passing(Filters(include_closed=True)) == ["F0", "F1", "F3", "F4", "F5"]
    assert passing(Filters(include_local=True, include_closed=True)) == ["F0", "F1", "F2", "F3", "F4", "F5"]


def test_countries_are_alternatives_and_case_insensitive():
    assert passing(Filters(countries=("de",))) == ["F1"]
    assert passing(Filters(countries=("DE", "us"))) == ["F1", "F4"]
    assert passing(Filters(countries=("FR",))) == []


def test_provinces_are_alternatives_and_case_insensitive():
    assert passing(Filters(provinces=("jiangsu", "CALIFORNIA"))) == ["F0", "F4"]


def test_employee_bounds_are_inclusive_and_exclude_unknown_counts():
    assert passing(Filters(min_employees=50)) == ["F0", "F1"]
    assert passing(Filters(max_employees=50)) == ["F0", "F5"]
    assert passing(Filters(min_employees=0)) == ["F0", "F1", "F5"]  # F4: unknown, cannot confirm
    assert passing(Filters(min_employees=20, max_employees=100)) == ["F0"]


def test_founded_after_is_exclusive_and_excludes_unknown_years():
    assert passing(Filters(founded_after=2010)) == ["F1", "F5"]
    assert passing(Filters(founded_after=1900)) == ["F0", "F1", "F5"]


def test_qualifications_must_all_be_held_case_insensitively():
    assert passing(Filters(qualifications=("high-tech enterprise",))) == ["F1", "F4"]
    assert passing(Filters(qualifications=("high-tech enterprise", "University Spin-Off"))) == ["F1"]
    assert passing(Filters(qualifications=("high-tech enterprise", "green factory"))) == []


def test_filters_combine_with_and():
    assert passing(Filters(countries=("CN", "US"), qualifications=("high-tech enterprise",))) == ["F4"]
    assert passing(Filters(countries=("CN",), include_local=True, min_employees=60)) == ["F2"]


def test_exclude_ids():
    assert passing(Filters(exclude_ids=("F0", "F5"))) == ["F1", "F4"]


def test_is_default():
    assert Filters().is_default()
    assert Filters(include_local=True).is_default()
    assert not Filters(countries=("DE",)).is_default()


# --- fuse --------------------------------------------------------------------------------------

CANDIDATES = np.array([3, 8, 11, 20])
DENSE = np.array([0.9, 0.5, 0.7, 0.1], dtype=np.float32)
LEXICAL = np.array([0.0, 9.0, 4.0, 1.0], dtype=np.float32)


def test_fuse_is_a_convex_combination_of_standardised_scores():
    order, fused = fuse(CANDIDATES, DENSE, LEXICAL, (0.5, 0.2), (2.0, 4.0), dense_weight=0.5)

    expected = 0.5 * (DENSE - 0.5) / 0.2 + 0.5 * (LEXICAL - 2.0) / 4.0
    np.testing.assert_allclose(fused, expected[order], rtol=1e-5)
    assert order.tolist() == np.argsort(-expected, kind="stable").tolist()
    assert np.all(np.diff(fused) <= 0)


@pytest.mark.parametrize(("weight", "signal"), [(1.0, DENSE), (0.0, LEXICAL)])
def test_fuse_with_all_weight_on_one_signal_follows_that_signal(weight, signal):
    order, _ = fuse(CANDIDATES, DENSE, LEXICAL, (0.5, 0.2), (2.0, 4.0), dense_weight=weight)

    assert order.tolist() == np.argsort(-signal, kind="stable").tolist()


def test_fuse_scale_of_a_signal_does_not_change_the_order():
    order, _ = fuse(CANDIDATES, DENSE, LEXICAL, (0.5, 0.2), (2.0, 4.0), dense_weight=0.5)
    scaled, _ = fuse(CANDIDATES, DENSE, LEXICAL * 100, (0.5, 0.2), (200.0, 400.0), dense_weight=0.5)

    assert order.tolist() == scaled.tolist()


def test_fuse_ties_go_to_the_higher_dense_similarity_then_the_lower_position():
    # Lexical signal has no spread, so it contributes nothing: only dense decides, then position.
    order, _ = fuse(np.array([9, 4, 7]), np.array([0.2, 0.5, 0.5], np.float32), np.zeros(3, np.float32),
                    (0.0, 1.0), (0.0, 0.0), dense_weight=0.0)

    assert np.array([9, 4, 7])[order].tolist() == [4, 7, 9]


def test_fuse_of_nothing_is_empty():
    order, fused = fuse(np.array([], np.int64), np.array([], np.float32), np.array([], np.float32),
                        (0.0, 1.0), (0.0, 1.0), dense_weight=0.5)

    assert len(order) == 0 and len(fused) == 0


# --- retrieve ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def universe():
    enterprises = make_validated(n=60, seed=4)
    texts = profile_texts(enterprises)
    encoder = HashingEncoder(dim=128)
    vectors = encoder.encode(texts)
    index = build_index(vectors, enterprise_faiss_ids(enterprises[S.ENTERPRISE_ID]), EXACT_FACTORY)
    return enterprises, VectorSearcher(index, vectors), LexicalIndex.build(texts), encoder


def ask(universe, text, k, filters=Filters(), depth=200):
    enterprises, searcher, lexical, encoder = universe
    return retrieve(
        enterprises, searcher, lexical, encoder.encode([text])[0], lexical.query_tokens(text), k, filters, depth=depth
    )


def test_retrieve_returns_k_outside_operating_results_best_first(universe):
    enterprises = universe[0]

    results = ask(universe, TOPICS["lidar"][0], k=10)

    assert set(RESULT_COLUMNS) <= set(results.columns)
    assert len(results) == 10
    assert results[S.ENTERPRISE_ID].is_unique
    assert not results[S.IS_LOCAL].any()
    closed = set(enterprises.loc[enterprises[S.STATUS_CLASS] == "closed", S.ENTERPRISE_ID])
    assert not closed & set(results[S.ENTERPRISE_ID])
    assert (results["score"].diff().dropna() <= 0).all()


def test_retrieve_finds_the_topic(universe):
    results = ask(universe, "solid-state lidar point cloud perception for robotaxis", k=5)

    assert all("Lidar" in name for name in results[S.NAME])


def test_a_firms_own_profile_finds_it_first_in_both_signals(universe):
    enterprises = universe[0]
    target = enterprises[~enterprises[S.IS_LOCAL] & (enterprises[S.STATUS_CLASS] != "closed")].iloc[0]
    text = profile_texts(target.to_frame().T)[0]

    results = ask(universe, text, k=3)

    assert results.iloc[0][S.ENTERPRISE_ID] == target[S.ENTERPRISE_ID]
    assert results.iloc[0]["score"] > results.iloc[1]["score"]
    assert results.iloc[0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert results.iloc[0]["dense_rank"] == 1 and results.iloc[0]["lexical_rank"] == 1


@pytest.mark.parametrize(
    "filters",
    [
        Filters(countries=("DE",)),
        Filters(countries=("US", "SG"), min_employees=100),
        Filters(include_local=True),
        Filters(qualifications=("high-tech enterprise",)),
        Filters(founded_after=2015, max_employees=1500),
        Filters(provinces=("Jiangsu",), include_closed=True),
    ],
)
def test_filtered_retrieve_returns_exactly_min_k_allowed_and_all_pass(universe, filters):
    enterprises = universe[0]
    allowed = filter_mask(enterprises, filters)
    assert 0 < allowed.sum() < len(enterprises)

    for k in (3, int(allowed.sum()), 50):
        results = ask(universe, "battery packs for electric vehicles", k=k, filters=filters)
        assert len(results) == min(k, allowed.sum())
        assert set(results[S.ENTERPRISE_ID]) <= set(enterprises[S.ENTERPRISE_ID][allowed])


def test_query_with_no_matching_words_still_returns_k_by_the_dense_signal(universe):
    results = ask(universe, "zzzz qqqq", k=7)

    assert len(results) == 7
    assert results["lexical_rank"].isna().all()


def test_k_larger_than_depth_is_honoured(universe):
    results = ask(universe, "games", k=30, depth=10)

    assert len(results) == 30


def test_only_local_firms_come_back_when_asked_for_local_ones(universe):
    enterprises = universe[0]
    local = enterprises[enterprises[S.IS_LOCAL]]
    text = profile_texts(local.iloc[[0]])[0]

    default = ask(universe, text, k=60)
    with_local = ask(universe, text, k=5, filters=Filters(include_local=True))

    assert local.iloc[0][S.ENTERPRISE_ID] not in set(default[S.ENTERPRISE_ID])
    assert with_local.iloc[0][S.ENTERPRISE_ID] == local.iloc[0][S.ENTERPRISE_ID]
    assert bool(with_local.iloc[0][S.IS_LOCAL]) is True


# --- records -----------------------------------------------------------------------------------


def test_records_are_json_ready_with_none_for_missing(universe):
    results = ask(universe, "online courses", k=60, filters=Filters(include_local=True, include_closed=True))

    rows = records(results)

    json.dumps(rows)  # no numpy or pandas scalars left
    assert not [key for key in rows[0] if key.startswith("_")]  # internal columns are never printed
    assert {S.ENTERPRISE_ID, S.NAME, "score", "similarity", S.IS_LOCAL, S.CITY, S.PROVINCE, S.COUNTRY,
            S.EMPLOYEES} <= set(rows[0])
    assert any(row[S.EMPLOYEES] is None for row in rows)  # unknown stays unknown, not 0 or NaN
    assert all(isinstance(row[S.IS_LOCAL], bool) for row in rows)
    assert all(isinstance(row[S.QUALIFICATIONS], list) for row in rows)


def test_records_keep_whole_numbers_whole(universe):
    results = ask(universe, "online courses", k=60, filters=Filters(include_local=True, include_closed=True))

    rows = records(results)

    assert any(row[S.EMPLOYEES] is None for row in rows)
    for row in rows:
        assert row[S.EMPLOYEES] is None or type(row[S.EMPLOYEES]) is int, row[S.EMPLOYEES]
        assert row[S.FOUNDED_YEAR] is None or type(row[S.FOUNDED_YEAR]) is int


def test_records_of_hand_made_frame():
    frame = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "b": [["x"], []], "c": [np.float32(0.5), np.nan]})

    assert records(frame) == [{"a": 1, "b": ["x"], "c": 0.5}, {"a": None, "b": [], "c": None}]


def test_each_query_language_picks_its_dense_weight():
    from types import SimpleNamespace

    from matcher.catalog import Catalog

    catalog = SimpleNamespace(dense_weight=0.5, dense_weight_zh=0.0)

    assert Catalog.dense_weight_for(catalog, "fermentation-based enzyme production") == 0.5
    assert Catalog.dense_weight_for(catalog, "招引CPU、GPU、AI芯片等数字芯片设计企业") == 0.0


# --- the lexical signal from postings and estimated statistics (matcher/lexical_topk.py) --------

ZH_PROFILES = ("半导体芯片设计、集成电路开发", "锂电池正极材料、负极材料研发", "新能源汽车充电桩运营服务", "光刻胶与电子特种气体生产",
               "工业机器人、无人机研发制造", "医药研发外包服务、生物发酵", "储能逆变器、光伏组件销售", "软件开发、数据服务平台")


def both_paths(universe, text, filters=Filters(), dense_weight=0.5, chinese=False):
    from matcher.retrieval import retrieve_arrays

    enterprises, searcher, lexical, encoder = universe
    allowed = filter_mask(enterprises, filters)
    vector, tokens = encoder.encode([text])[0], lexical.query_tokens(text)
    return [retrieve_arrays(searcher, lexical, vector, tokens, 20, allowed, dense_weight=dense_weight, chinese=chinese,
                            lexical_exact_max=exact_max) for exact_max in (10**9, 0)]


@pytest.mark.parametrize("filters", [Filters(), Filters(countries=("DE", "US")), Filters(include_local=True)])
def test_english_retrieval_from_postings_is_the_full_scorings(universe, filters):
    for text in (TOPICS["lidar"][0], "battery packs for electric vehicles", "payment software", "zzzz"):
        exact, estimated = both_paths(universe, text, filters)

        assert estimated.rows.tolist() == exact.rows.tolist()
        np.testing.assert_array_equal(estimated.bm25, exact.bm25)
        np.testing.assert_allclose(estimated.fused, exact.fused, atol=1e-5)
        np.testing.assert_allclose(estimated.lexical_z, exact.lexical_z, atol=1e-5)
        assert estimated.lexical_rank.tolist() == exact.lexical_rank.tolist()


@pytest.fixture(scope="module")
def chinese_universe(universe):
    enterprises, _, _, encoder = universe
    texts = [f"{ZH_PROFILES[i % len(ZH_PROFILES)]}、{ZH_PROFILES[(3 * i + 1) % len(ZH_PROFILES)][:6]}" for i in range(len(enterprises))]
    vectors = encoder.encode(texts)
    index = build_index(vectors, enterprise_faiss_ids(enterprises[S.ENTERPRISE_ID]), EXACT_FACTORY)
    return enterprises, VectorSearcher(index, vectors), LexicalIndex.build(texts), encoder


def test_chinese_retrieval_from_postings_agrees_with_the_full_scoring(chinese_universe):
    from matcher.lexical_topk import LexicalStats

    lexical = chinese_universe[2]
    for text in ("招引芯片设计企业", "新能源汽车电池材料", "机器人与无人机"):
        exact, estimated = both_paths(chinese_universe, text, dense_weight=0.0, chinese=True)
        assert estimated.rows.tolist() == exact.rows.tolist()
        np.testing.assert_allclose(estimated.fused, exact.fused, atol=1e-4)

    exact_stats = lexical.stats
    lexical.stats = LexicalStats.build(lexical.num_docs, *lexical._postings(), size=20)  # a third of the corpus
    try:
        for text in ("招引芯片设计企业", "新能源汽车电池材料", "机器人与无人机"):
            exact, estimated = both_paths(chinese_universe, text, dense_weight=0.0, chinese=True)
            assert len(set(estimated.rows) & set(exact.rows)) >= 19
    finally:
        lexical.stats = exact_stats
