"""Block-max top-k (matcher/lexical_topk.py): the same documents in the same order as full scoring
for English BM25, on real YC text and on the generated sample, with ties and the filter mask;
saved with the index; the numpy loops give what the compiled ones give."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import matcher.lexical_topk as topk
from matcher.lexical import LexicalIndex
from matcher.lexical_topk import BLOCKS_FILE, BlockMax, EstimatedRelevance, LexicalStats, lexical_top, visit_blocks
from tests.conftest import CHAIN_MAP, SHARED_DIR

YC = SHARED_DIR / "datasets" / "yc" / "yc-companies-2024-05-11.csv"
CN = SHARED_DIR / "datasets" / "cn-listed" / "cn-listed-companies-2025-10-25.csv"
BLOCK_DOCS = 64  # small blocks, so a few thousand documents make many
DEPTHS = (1, 10, 200)
SHARES = (1.0, 0.3)


def with_blocks(index: LexicalIndex, min_postings: int | None) -> LexicalIndex:
    """``index`` with block tables of ``BLOCK_DOCS`` documents for lists of ``min_postings`` or more."""
    index.blocks = BlockMax.build(index.num_docs, *index._postings(), block_docs=BLOCK_DOCS, min_postings=min_postings)
    return index


@pytest.fixture(scope="module")
def yc():
    """2,000 real YC profiles, with three profiles repeated across blocks (exact ties), and the
    development needs plus real short descriptions as queries."""
    if not YC.is_file():
        pytest.skip(f"{YC} is not available")
    frame = pd.read_csv(YC).head(2000)
    texts = (frame.company_name.fillna("") + ". " + frame.short_description.fillna("") + ". "
             + frame.long_description.fillna("")).tolist()
    for source, copies in ((3, (70, 700, 1999)), (500, (501, 1200)), (64, (65, 128, 1600))):
        for at in copies:
            texts[at] = texts[source]
    needs = [q["text"] for q in json.loads((SHARED_DIR / "eval" / "queries_dev.json").read_text())]
    queries = needs + frame.short_description.dropna().iloc[::97].tolist() + [texts[3], texts[64]]
    return LexicalIndex.build(texts), queries


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """1,500 profiles of the generated sample universe; queries: some of their own scopes."""
    from pipelines.make_sample import write_sample

    paths = write_sample(tmp_path_factory.mktemp("sample"), n=1500, seed=0, chain_map_path=CHAIN_MAP)
    frame = pd.read_csv(paths["enterprises"], dtype=str)
    texts = (frame.company_name.fillna("") + ". " + frame.business_scope.fillna("")).tolist()
    queries = ["chronic disease management platform", "lithium battery cathode materials supplier",
               "industrial robot arm vision inspection"] + texts[::150]
    return LexicalIndex.build(texts), queries


def assert_same_top(index: LexicalIndex, queries: list[str], seed: int = 0) -> np.ndarray:
    """Block-max top against full scoring for every query, depth and filter; returns what the
    top-k did, summed (blocks visited, postings read, documents kept, blocks pruned by MaxScore)."""
    visited = np.zeros(4, dtype=np.int64)
    for share in SHARES:
        allowed = np.random.default_rng(seed).random(index.num_docs) < share
        for text in queries:
            tokens = index.query_tokens(text)
            exact, estimated = index.query(tokens, False, 10**9), index.query(tokens, False, 0)
            for depth in DEPTHS:
                top = estimated.top(allowed, depth)
                assert np.array_equal(top, exact.top(allowed, depth)), (text[:40], depth, share)
                assert np.array_equal(estimated.rows(top), exact.relevance[top])
                visited += estimated.visit_counts
    return visited


@pytest.mark.parametrize("maxscore", [False, True])  # blocks scored in full / MaxScore inside blocks (Chinese's)
@pytest.mark.parametrize("min_postings", [1, 40, 10**9])  # every list / the long ones / none has a table
def test_block_max_top_k_is_full_scorings_on_real_yc_text(yc, min_postings, maxscore, monkeypatch):
    monkeypatch.setattr(topk, "MAXSCORE_ENGLISH", maxscore)
    index, queries = yc

    visited, _, _, pruned = assert_same_top(with_blocks(index, min_postings), queries)

    blocks = index.blocks.blocks
    assert blocks == 32
    assert visited < len(queries) * len(DEPTHS) * len(SHARES) * blocks  # blocks were skipped
    assert (pruned > 0) == maxscore


def test_block_max_top_k_is_full_scorings_on_the_sample(sample):
    index, queries = sample

    assert_same_top(with_blocks(index, 30), queries, seed=1)


def test_ties_are_ranked_lower_position_first(yc):
    index, queries = yc
    with_blocks(index, 40)
    allowed = np.ones(index.num_docs, dtype=bool)
    allowed[700] = False
    tokens = index.query_tokens(queries[-2])  # the text of profile 3, also at 70, 700 and 1999

    exact, estimated = index.query(tokens, False, 10**9), index.query(tokens, False, 0)
    top = estimated.top(allowed, 5)

    assert top[:3].tolist() == [3, 70, 1999]
    assert np.array_equal(top, exact.top(allowed, 5))
    assert estimated.top(allowed, 2).tolist() == [3, 70]


def test_without_numba_the_block_loops_give_the_same_top_k(yc, monkeypatch):
    index, queries = yc
    with_blocks(index, 40)
    allowed = np.random.default_rng(3).random(index.num_docs) < 0.5
    compiled = {q: index.query(index.query_tokens(q), False, 0).top(allowed, 30) for q in queries}
    monkeypatch.setattr(topk, "_kernel", lambda function: None)

    for q in queries:
        assert np.array_equal(index.query(index.query_tokens(q), False, 0).top(allowed, 30), compiled[q]), q


def test_a_floor_guessed_from_the_sample_keeps_the_top_k_exact(yc, monkeypatch):
    """With a statistics sample much smaller than the corpus, the top-k starts from a threshold
    guessed from the sample (so MaxScore prunes from the first block); the result is still the
    full scoring's, also when the guess is above the true depth-th score (it runs again without).
    English BM25 through the Chinese path's MaxScore loop, so the result must be bit-identical."""
    monkeypatch.setattr(topk, "MAXSCORE_ENGLISH", True)
    index, queries = yc
    with_blocks(index, 40)
    monkeypatch.setattr(index, "stats", LexicalStats.build(index.num_docs, *index._postings(), size=256))
    floors, guess = [], EstimatedRelevance._floor
    monkeypatch.setattr(EstimatedRelevance, "_floor", lambda self, *a: floors.append(guess(self, *a)) or floors[-1])

    assert_same_top(index, queries)

    assert np.isfinite(floors).mean() > 0.5
    monkeypatch.setattr(EstimatedRelevance, "_floor", lambda self, *a: 1e6)  # nothing reaches it
    assert_same_top(index, queries)


@pytest.mark.parametrize("numba, sample, pilot_margin", [(True, None, 1.5), (False, None, 1.5), (True, 128, 1.5),
                                                          (True, None, 0.001)])
def test_chinese_block_max_top_k_is_the_top_of_its_own_relevance(numba, sample, pilot_margin, monkeypatch):
    """The Chinese relevance (BM25 and TF-IDF, standardised with estimated statistics) has no
    full-scoring twin to be bit-identical to; its block-max top is the top of :meth:`rows`, with
    exact statistics and with a sample of 128 documents (estimated, and a floor guessed from it),
    also when the pilot pass's guess is far too high (a margin of 0.001: it runs again without).
    :meth:`rows` answers the documents the top-k scored from what it kept: the same values as
    computing them afresh."""
    if not CN.is_file():
        pytest.skip(f"{CN} is not available")
    if not numba:
        monkeypatch.setattr(topk, "_kernel", lambda function: None)
    monkeypatch.setattr(topk, "PILOT_MARGIN", pilot_margin)
    visits = []
    monkeypatch.setattr(topk, "visit_blocks", lambda *a, **k: visits.append(len(a[0])) or visit_blocks(*a, **k))
    frame = pd.read_csv(CN, dtype=str).head(1200)
    texts = (frame["企业名称"].fillna("") + "。" + frame["经营范围"].fillna("") + "。" + frame["主营业务"].fillna("")).tolist()
    index = with_blocks(LexicalIndex.build(texts, **({"sample_size": sample} if sample else {})), 40)
    allowed = np.random.default_rng(2).random(index.num_docs) < 0.7
    everyone = np.arange(index.num_docs)

    for text in ["锂电池正极材料", "半导体芯片设计与封装测试", "创新药研发生产"] + [t.split("。")[0] for t in frame["主营业务"].dropna().iloc[::200]]:
        estimated = index.query(index.query_tokens(text), True, 0)
        for depth in (1, 20, 200):
            top = estimated.top(allowed, depth)
            assert np.array_equal(estimated.rows(everyone), index.query(index.query_tokens(text), True, 0).rows(everyone))
            assert np.array_equal(top, lexical_top(estimated.rows(everyone), allowed, depth)), text
    blocks = index.blocks.blocks
    pilot = -(-blocks // topk.PILOT_STRIDE)
    assert pilot in visits and blocks - pilot in visits  # the pilot pass ran, then the other blocks
    if pilot_margin < 1:
        assert blocks in visits  # a guess too high: everything ran again without it


def cn_index(rows: int = 1200, **build) -> tuple[LexicalIndex, list[str]]:
    """Real A-share profiles with 64-document block tables, and Chinese needs."""
    if not CN.is_file():
        pytest.skip(f"{CN} is not available")
    frame = pd.read_csv(CN, dtype=str).head(rows)
    texts = (frame["企业名称"].fillna("") + "。" + frame["经营范围"].fillna("") + "。" + frame["主营业务"].fillna("")).tolist()
    needs = ["锂电池正极材料", "半导体芯片设计与封装测试", "创新药研发生产"] + [t.split("。")[0] for t in frame["主营业务"].dropna().iloc[::200]]
    return with_blocks(LexicalIndex.build(texts, **build), 40), needs


def test_reading_a_term_through_and_searching_it_find_the_same_top_k(monkeypatch):
    """A non-essential term's candidates are found by a search each or, where the term has few
    postings against them, by reading its postings through (``SEEK_COST``). Either way the top-k is
    the top of :meth:`rows`. The MaxScore loop runs uncompiled here, so that the setting takes
    effect (numba fixes a global's value when it compiles)."""
    index, needs = cn_index(600)
    monkeypatch.setattr(topk, "_compiled", lambda loop: loop)
    allowed = np.random.default_rng(5).random(index.num_docs) < 0.8
    everyone = np.arange(index.num_docs)
    read = {}
    for seek_cost in (0, 10**9):  # always search / always read through
        monkeypatch.setattr(topk, "SEEK_COST", seek_cost)
        read[seek_cost] = 0
        for text in needs[:4]:
            estimated = index.query(index.query_tokens(text), True, 0)
            for depth in (5, 60):
                top = estimated.top(allowed, depth)
                assert np.array_equal(top, lexical_top(estimated.rows(everyone), allowed, depth)), (text, seek_cost)
                read[seek_cost] += int(estimated.visit_counts[1])
    assert read[10**9] > read[0]  # reading through reads whole lists: the other branch ran


@pytest.mark.parametrize("share", [0.83, 0.1])  # the best sample documents hold enough allowed ones / too few
def test_the_floor_is_the_sample_guess_whether_or_not_the_filter_is_narrow(share):
    """The top-k's starting threshold reads the filter only at the best few sample documents; it is
    the same guess as reading it at every sample document: the relevance the ``hits``-th best
    allowed sample document reaches."""
    index, needs = cn_index(1200, sample_size=256)
    allowed = np.random.default_rng(3).random(index.num_docs) < share
    rows = index.stats.rows
    guessed = 0
    for text in needs:
        estimated = index.query(index.query_tokens(text), True, 0)
        for depth in (1, 20):
            signals = estimated._sample[0] + estimated._sample_values(estimated._rare)[0]
            values = (estimated.scale[:, None] * signals).sum(axis=0)[(signals[0] > 0) & allowed[rows]] + estimated.shift
            hits = max(topk.FLOOR_SAMPLE_HITS, -(-topk.FLOOR_MARGIN * depth * len(rows) // index.num_docs))
            expected = np.sort(values)[-hits] if len(values) >= hits else -np.inf
            expected = expected if expected > 0 else -np.inf
            assert estimated._floor(allowed, depth) == pytest.approx(expected, rel=1e-9), (text, depth)
            guessed += np.isfinite(expected)
    assert guessed > 0


def test_block_tables_cover_long_lists_only_and_are_saved_with_the_index(tmp_path):
    texts = [("lidar sensor " * (i % 3 + 1) + ("battery" if i % 10 == 0 else "wallet") + (" drone" if i % 100 == 0 else ""))
             for i in range(1000)]
    index = LexicalIndex.build(texts)
    index.blocks = BlockMax.build(index.num_docs, *index._postings(), block_docs=128)  # 8 blocks: tables from 64 postings
    lidar, battery, drone = (index.retriever.vocab_dict[index.query_tokens(w)[0]] for w in ("lidar", "battery", "drone"))
    index.save(tmp_path / "lexical")

    loaded = LexicalIndex.load(tmp_path / "lexical")

    assert (tmp_path / "lexical" / BLOCKS_FILE).is_file()
    assert index.blocks.slot[lidar] >= 0 and index.blocks.slot[battery] >= 0 > index.blocks.slot[drone]  # 1,000, 100, 10 postings
    assert index.blocks.offsets.shape == (int((index.blocks.slot >= 0).sum()), 9)
    for name in ("slot", "offsets", "b_peaks"):
        np.testing.assert_array_equal(getattr(loaded.blocks, name), getattr(index.blocks, name))
    row = index.blocks.slot[battery]
    docs, values = index._postings()[0].column(battery)
    assert index.blocks.b_peaks[row, 0] == values[docs < 128].max()
    assert index.blocks.offsets[row].tolist() == [int((docs < 128 * b).sum()) for b in range(9)]
    with pytest.raises(ValueError, match="power of two"):
        BlockMax.build(10, index._postings()[0], block_docs=100)


@pytest.mark.parametrize("full_scan", [0.0, 1e9])
def test_an_index_without_block_tables_keeps_maxscore_and_the_full_scan(yc, full_scan, monkeypatch):
    monkeypatch.setattr(topk, "FULL_SCAN_SHARE", full_scan)
    index, queries = yc
    allowed = np.random.default_rng(5).random(index.num_docs) < 0.6
    blocks, index.blocks = index.blocks, None
    try:
        for text in queries[:20]:
            tokens = index.query_tokens(text)
            exact, estimated = index.query(tokens, False, 10**9), index.query(tokens, False, 0)
            assert np.array_equal(estimated.top(allowed, 25), exact.top(allowed, 25)), text
    finally:
        index.blocks = blocks
