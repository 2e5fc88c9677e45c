"""BM25 index over profile texts: stemming, stop words, scores, save/load round trip."""

from __future__ import annotations

import numpy as np

from matcher.lexical import LexicalIndex, tokenize

TEXTS = [
    "Acme. Solid-state LiDAR sensors for autonomous driving.",
    "PayCo. Online payment gateway and digital wallets for merchants.",
    "GeneLab. Gene sequencing instruments for hospitals.",
    "Acme Robotics. Delivery robots with lidar perception.",
]


def test_tokenize_lowercases_stems_and_drops_stop_words():
    tokens = tokenize(["The Sensors and the Sensor"])[0]

    assert tokens == ["sensor", "sensor"]


def test_query_tokens_keep_only_indexed_vocabulary():
    index = LexicalIndex.build(TEXTS)

    assert index.query_tokens("lidar sensors for bakeries") == ["lidar", "sensor"]
    assert index.query_tokens("bakery") == []


def test_scores_rank_matching_documents_and_zero_the_rest():
    index = LexicalIndex.build(TEXTS)

    scores = index.scores(index.query_tokens("lidar"))

    assert scores.shape == (4,) and scores.dtype == np.float32
    assert scores[0] > 0 and scores[3] > 0
    assert scores[1] == 0 and scores[2] == 0


def test_rarer_matches_score_higher():
    index = LexicalIndex.build(TEXTS)

    scores = index.scores(index.query_tokens("payment gateway"))

    assert int(np.argmax(scores)) == 1


def test_no_tokens_give_all_zero_scores():
    index = LexicalIndex.build(TEXTS)

    assert np.array_equal(index.scores([]), np.zeros(4, dtype=np.float32))


def test_saved_and_reloaded_index_scores_identically(tmp_path):
    index = LexicalIndex.build(TEXTS)
    index.save(tmp_path / "lexical")

    loaded = LexicalIndex.load(tmp_path / "lexical")

    for query in ("lidar sensors", "gene sequencing hospitals", "wallets"):
        np.testing.assert_array_equal(
            loaded.scores(loaded.query_tokens(query)), index.scores(index.query_tokens(query))
        )


def test_saved_index_records_its_tokenizer(tmp_path):
    from matcher.lexical import TOKENIZER_FILE, tokenizer_id

    index = LexicalIndex.build(TEXTS)
    index.save(tmp_path / "lexical")

    assert (tmp_path / "lexical" / TOKENIZER_FILE).is_file()
    assert LexicalIndex.load(tmp_path / "lexical").tokenizer == index.tokenizer == tokenizer_id()


def test_english_and_chinese_documents_share_one_index():
    index = LexicalIndex.build(TEXTS + ["快充科技。电动汽车充电桩运营。"])

    assert int(np.argmax(index.scores(index.query_tokens("充电桩")))) == 4
    assert index.scores(index.query_tokens("充电桩"))[:4].max() == 0
    assert index.query_tokens("lidar sensors for bakeries") == ["lidar", "sensor"]


# --- retrieval at scale: top-k over postings, estimated statistics (matcher/lexical_topk.py) ---

import pytest  # noqa: E402

from matcher.lexical_topk import SAMPLE_FILE, LexicalStats, lexical_top  # noqa: E402

WORDS_EN = ("lidar sensor battery cathode anode wafer lithography photoresist enzyme fermentation vaccine "
            "robot gripper payment wallet ledger drone antenna satellite inverter turbine graphene polymer "
            "software platform cloud data analytics service").split()
WORDS_ZH = ("芯片 设计 电池 正极 负极 材料 光刻胶 半导体 硅片 靶材 新能源 汽车 充电桩 软件 开发 服务 平台 数据 "
            "机器人 无人机 卫星 疫苗 发酵 生物 医药 储能 逆变器").split()


def corpus(words: tuple[str, ...] | list[str], n: int, seed: int, sep: str) -> list[str]:
    """``n`` documents of 3-12 words drawn with Zipf-like frequencies (common words in many)."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, len(words) + 1) ** 0.8
    return [sep.join(rng.choice(words, size=rng.integers(3, 13), p=p / p.sum())) for _ in range(n)]


QUERIES_EN = ["lidar sensor", "battery cathode anode material", "software platform cloud data", "graphene",
              "robot gripper software robot", "payment wallet ledger platform service data cloud"]
QUERIES_ZH = ["招引芯片设计企业", "新能源汽车电池正极材料", "软件开发服务平台数据", "光刻胶", "储能逆变器与充电桩"]


@pytest.fixture(scope="module")
def english():
    return LexicalIndex.build(corpus(WORDS_EN, 600, 0, " "))


@pytest.fixture(scope="module")
def chinese():
    return LexicalIndex.build(corpus(WORDS_ZH, 400, 1, "、"))


def both_ways(index: LexicalIndex, text: str, is_chinese: bool):
    tokens = index.query_tokens(text)
    return index.query(tokens, is_chinese, exact_max=10**9), index.query(tokens, is_chinese, exact_max=0)


@pytest.mark.parametrize("depth", [1, 5, 40, 1000])
@pytest.mark.parametrize("share", [1.0, 0.5, 0.05])
@pytest.mark.parametrize("full_scan", [0.0, 1e9])  # every query scored in full / every one by MaxScore
def test_top_k_over_postings_is_the_full_scorings_top_k(english, depth, share, full_scan, monkeypatch):
    import matcher.lexical_topk as topk

    monkeypatch.setattr(topk, "FULL_SCAN_SHARE", full_scan)
    allowed = np.random.default_rng(depth).random(english.num_docs) < share

    for text in QUERIES_EN:
        exact, estimated = both_ways(english, text, False)

        assert np.array_equal(estimated.top(allowed, depth), exact.top(allowed, depth)), text


def test_english_scores_of_given_rows_are_the_full_scorings_bit_for_bit(english):
    rows = np.array([5, 3, 5, 599, 0, 17])

    for text in QUERIES_EN:
        exact, estimated = both_ways(english, text, False)

        assert np.array_equal(estimated.rows(rows), exact.rows(rows))
        assert estimated.rows(rows).dtype == np.float32


@pytest.mark.parametrize("is_chinese", [False, True])
@pytest.mark.parametrize("full_scan", [0.0, 1e9])
def test_statistics_from_a_sample_as_large_as_the_corpus_are_exact(english, chinese, is_chinese, full_scan, monkeypatch):
    import matcher.lexical_topk as topk

    monkeypatch.setattr(topk, "FULL_SCAN_SHARE", full_scan)
    index, queries = (chinese, QUERIES_ZH) if is_chinese else (english, QUERIES_EN)
    allowed = np.ones(index.num_docs, dtype=bool)

    for text in queries:
        exact, estimated = both_ways(index, text, is_chinese)

        assert estimated.mean == pytest.approx(exact.mean, abs=1e-5)
        assert estimated.sd == pytest.approx(exact.sd, rel=1e-5)
        np.testing.assert_allclose(estimated.rows(np.arange(index.num_docs)), exact.relevance, atol=1e-5)
        top, expected = estimated.top(allowed, 20), exact.top(allowed, 20)
        assert set(top) == set(expected)
        np.testing.assert_allclose(exact.relevance[top], exact.relevance[expected], atol=1e-5)


def test_chinese_and_english_statistics_from_a_small_sample_stay_close():
    for words, queries, sep, is_chinese in ((WORDS_EN, QUERIES_EN, " ", False), (WORDS_ZH, QUERIES_ZH, "、", True)):
        texts = corpus(words, 2000, 2, sep)
        index = LexicalIndex.build(texts, sample_size=256)
        bm25 = [index.query(index.query_tokens(q), False, exact_max=10**9) for q in queries]
        estimated = [index.query(index.query_tokens(q), False, exact_max=0) for q in queries]

        for a, b in zip(bm25, estimated):  # BM25's mean is exact; its spread within 10 %
            assert b.mean == pytest.approx(a.mean, rel=1e-6)
            assert b.sd == pytest.approx(a.sd, rel=0.1)
        if is_chinese:
            for q in queries:
                exact, approx = both_ways(index, q, True)
                assert len(set(approx.top(np.ones(2000, bool), 20)) & set(exact.top(np.ones(2000, bool), 20))) >= 18


def test_a_query_of_rare_words_keeps_its_exact_spread_with_a_small_sample():
    texts = corpus(WORDS_EN, 3000, 3, " ")
    texts[1] += " perovskite tandem"
    texts[2000] += " perovskite"
    index = LexicalIndex.build(texts, sample_size=256)  # neither document is in the sample
    assert not {1, 2000} & set(index.stats.rows.tolist())

    exact, estimated = both_ways(index, "perovskite tandem", False)

    assert exact.sd > 0
    assert estimated.sd == pytest.approx(exact.sd, rel=1e-6)
    assert estimated.mean == pytest.approx(exact.mean, rel=1e-6)
    assert estimated.top(np.ones(3000, bool), 5).tolist() == [1, 2000]


def test_the_statistics_sample_is_fixed_and_saved_with_the_index(tmp_path):
    texts = corpus(WORDS_ZH, 500, 4, "、")
    first, second = LexicalIndex.build(texts, sample_size=300), LexicalIndex.build(texts, sample_size=300)
    first.save(tmp_path / "lexical")

    loaded = LexicalIndex.load(tmp_path / "lexical")

    assert (tmp_path / "lexical" / SAMPLE_FILE).is_file()
    assert len(first.stats.rows) == 300
    for a, b in ((first.stats, second.stats), (first.stats, loaded.stats)):
        for name in ("rows", "b1", "b2", "bmax", "c1", "c2", "bc", "cmax"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(a.sample_c.data, b.sample_c.data)
    for text in QUERIES_ZH:
        a = first.query(first.query_tokens(text), True, exact_max=0)
        b = loaded.query(loaded.query_tokens(text), True, exact_max=0)
        assert (a.mean, a.sd) == (b.mean, b.sd)
        np.testing.assert_array_equal(a.rows(np.arange(500)), b.rows(np.arange(500)))


def test_an_index_saved_without_statistics_gets_the_same_ones_at_load(tmp_path):
    index = LexicalIndex.build(TEXTS)
    index.save(tmp_path / "lexical")
    (tmp_path / "lexical" / SAMPLE_FILE).unlink()

    loaded = LexicalIndex.load(tmp_path / "lexical")

    np.testing.assert_array_equal(loaded.stats.b2, index.stats.b2)


def test_no_tokens_have_no_lexical_candidates_both_ways(english):
    exact, estimated = english.query([], False, exact_max=10**9), english.query([], False, exact_max=0)

    assert len(estimated.top(np.ones(600, bool), 10)) == len(exact.top(np.ones(600, bool), 10)) == 0
    assert (estimated.mean, estimated.sd) == (0.0, 0.0) == (exact.mean, exact.sd)
    assert not estimated.rows(np.arange(5)).any()


def test_lexical_top_of_a_full_relevance_is_the_plain_top_k():
    relevance = np.random.default_rng(0).random(5000).astype(np.float32)
    relevance[::3] = 0
    allowed = np.random.default_rng(1).random(5000) < 0.3

    top = lexical_top(relevance, allowed, 50)

    matched = np.flatnonzero((relevance > 0) & allowed)
    assert top.tolist() == matched[np.argsort(-relevance[matched], kind="stable")][:50].tolist()
    assert isinstance(LexicalStats.build(3, *LexicalIndex.build(TEXTS[:3])._postings()), LexicalStats)


def test_without_numba_the_numpy_loops_give_the_same_top_k(english, chinese, monkeypatch):
    import matcher.lexical_topk as topk
    from matcher.lexical_kernels import gather_numpy

    allowed = np.random.default_rng(7).random(english.num_docs) < 0.6
    compiled = {q: both_ways(english, q, False)[1].top(allowed, 30) for q in QUERIES_EN}
    compiled_zh = {q: both_ways(chinese, q, True)[1].top(np.ones(400, bool), 30) for q in QUERIES_ZH}
    monkeypatch.setattr(topk, "gather", gather_numpy)
    monkeypatch.setattr(topk, "places_at", lambda rows, docs: None)

    for q in QUERIES_EN:
        exact, estimated = both_ways(english, q, False)
        assert np.array_equal(estimated.top(allowed, 30), compiled[q])
        assert np.array_equal(estimated.top(allowed, 30), exact.top(allowed, 30))
    for q in QUERIES_ZH:
        assert np.array_equal(both_ways(chinese, q, True)[1].top(np.ones(400, bool), 30), compiled_zh[q])


@pytest.mark.parametrize("n_rows, n_docs", [(300, 1000), (50, 200_000), (2000, 500_000)])  # a merge / searches
def test_places_at_finds_each_row_in_a_postings_list(n_rows, n_docs):
    from matcher.lexical_kernels import places_at

    rng = np.random.default_rng(n_rows)
    docs = np.sort(rng.choice(4 * n_docs, size=n_docs, replace=False)).astype(np.int32)
    rows = np.sort(np.concatenate([rng.choice(docs, n_rows // 2, replace=False),
                                   rng.choice(4 * n_docs, n_rows - n_rows // 2, replace=False)]))
    rows = np.unique(np.concatenate([[0, docs[0], docs[-1], 4 * n_docs - 1], rows])).astype(np.int64)

    found = places_at(rows, docs)

    if found is None:
        pytest.skip("numba is not installed")
    at = np.searchsorted(docs, rows).clip(0, n_docs - 1)
    np.testing.assert_array_equal(found, np.where(docs[at] == rows, at, -1))


@pytest.mark.parametrize("compiled", [True, False])
def test_seek_finds_the_first_place_at_or_above_from_any_guess(compiled):
    """The search of the block loops and of row lookups: from a guess below, above, at or outside
    the answer, inside any window of the list."""
    from matcher.lexical_kernels import _kernel, _seek

    seek = _kernel(_seek) if compiled else _seek
    if seek is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(5)
    indices = np.sort(rng.choice(10_000, size=700, replace=False)).astype(np.int32)
    for _ in range(3000):
        low, hi = np.sort(rng.integers(0, len(indices) + 1, size=2))
        d = int(rng.integers(-5, 10_005))
        guess = int(rng.integers(-10, len(indices) + 10))
        expected = low + int(np.searchsorted(indices[low:hi], d))
        assert seek(indices, low, hi, d, guess) == expected, (low, hi, d, guess)


def test_places_at_finds_rows_in_lists_whose_documents_are_clustered():
    """Row lookups guess a place from a straight line through the list; documents bunched at both
    ends (an industry-ordered corpus) make that guess far off, and the search still finds them."""
    from matcher.lexical_kernels import places_at

    docs = np.concatenate([np.arange(0, 30_000, 3), np.arange(9_000_000, 9_060_000, 2)]).astype(np.int32)
    rows = np.unique(np.concatenate([docs[::97], docs[::89] + 1, [5, 8_999_999, 9_059_998, 9_100_000]])).astype(np.int64)

    places = places_at(rows, docs)

    if places is None:
        pytest.skip("numba is not installed")
    at = np.searchsorted(docs, rows).clip(0, len(docs) - 1)
    np.testing.assert_array_equal(places, np.where(docs[at] == rows, at, -1))


def test_sample_sums_compiled_and_in_numpy_agree(chinese, monkeypatch):
    import matcher.lexical_kernels as kernels

    b, c = chinese._postings()
    terms = np.flatnonzero(np.diff(b.indptr) > 0)[::7]
    weights, weights2 = np.linspace(1, 2, len(terms)), np.linspace(0.5, 3, len(terms))

    def sums():
        values, products = np.zeros((2, chinese.num_docs)), np.zeros((2, 2))
        kernels.sample_sums(b.indptr, b.indices, b.data, c.data, terms, weights, weights2, values, products)
        return values, products

    compiled = sums()
    monkeypatch.setattr(kernels, "_kernel", lambda function: None)
    in_numpy = sums()

    for a, e in zip(compiled, in_numpy):
        np.testing.assert_allclose(a, e, rtol=1e-9)
    x = np.array([[w * b.column(t)[1].astype(np.float64) for w, t in zip(weights, terms)][0]])
    assert compiled[1][0, 0] >= (x ** 2).sum() > 0  # the first term's own square is part of the sum
