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
