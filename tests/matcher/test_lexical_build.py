"""The lexical index built in chunks equals bm25s's own index of the same tokens."""

from __future__ import annotations

import bm25s
import numpy as np
import pytest

from matcher import lexical_build
from matcher.lexical import LexicalIndex, chinese_words, tokenize
from matcher.lexical_tfidf import TfidfCosine

TEXTS = [
    "Lidar sensors for autonomous cars. Tags: lidar, automotive.",
    "Battery cells and battery management systems for electric buses",
    "AI chips for data centres; inference accelerators and AI compilers",
    "",
    "Mobile games and esports events",
    "人工智能芯片设计，数据中心推理加速器。",
    "新能源汽车动力电池 电池管理系统 储能",
    "Contract research for biologics; cell therapy manufacturing (CDMO) 细胞治疗",
    "Lidar lidar lidar: long-range lidar for trucks",
]
WORDS = chinese_words(["人工智能", "动力电池"])


def reference(texts):
    tokens = tokenize(texts, WORDS)
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(tokens, show_progress=False)
    return retriever, TfidfCosine.build(tokens, retriever.vocab_dict)


def column(scores, vocab, token):
    i = vocab[token]
    span = slice(scores["indptr"][i], scores["indptr"][i + 1])
    return scores["indices"][span], scores["data"][span]


@pytest.mark.parametrize("chunk", [2, 4, 1000])
def test_chunked_index_has_bm25s_scores_bit_for_bit_and_the_same_tfidf(monkeypatch, chunk):
    monkeypatch.setattr(lexical_build, "CHUNK_TEXTS", chunk)
    built = LexicalIndex.build(TEXTS, words=["人工智能", "动力电池"])
    retriever, tfidf = reference(TEXTS)

    assert set(built.retriever.vocab_dict) == set(retriever.vocab_dict)
    assert built.num_docs == len(TEXTS)
    for token in retriever.vocab_dict:
        if token == "":
            continue
        docs, scores = column(built.retriever.scores, built.retriever.vocab_dict, token)
        want_docs, want_scores = column(retriever.scores, retriever.vocab_dict, token)
        np.testing.assert_array_equal(docs, want_docs)
        np.testing.assert_array_equal(scores, want_scores)
        np.testing.assert_allclose(built.tfidf.matrix[:, built.retriever.vocab_dict[token]].toarray(),
                                   tfidf.matrix[:, retriever.vocab_dict[token]].toarray(), rtol=1e-5, atol=1e-7)
    query = built.query_tokens("lidar for electric trucks 电池")
    np.testing.assert_array_equal(built.scores(query), np.asarray(retriever.get_scores(query)))


def test_the_vocabulary_is_in_first_occurrence_order_on_every_run():
    first = LexicalIndex.build(TEXTS[:5]).retriever.vocab_dict
    again = LexicalIndex.build(TEXTS[:5]).retriever.vocab_dict
    assert first == again
    assert list(first)[:2] == tokenize(TEXTS[:1])[0][:2]
    assert list(first)[-1] == ""


def test_an_english_corpus_has_no_tfidf_and_progress_counts_every_text(monkeypatch):
    monkeypatch.setattr(lexical_build, "CHUNK_TEXTS", 2)
    done = []
    built = LexicalIndex.build(TEXTS[:5], progress=done.append)
    assert built.tfidf is None
    assert done == [2, 2, 1]


def test_a_loaded_index_reads_its_postings_from_the_files_pages(tmp_path):
    """Workers of one host share a version's BM25 postings (~3.5 GB at 10M documents)."""
    built = LexicalIndex.build(TEXTS)
    built.save(tmp_path / "lexical")

    loaded = LexicalIndex.load(tmp_path / "lexical")

    assert isinstance(loaded.retriever.scores["data"].base, np.memmap)
    query = loaded.query_tokens("lidar trucks")
    np.testing.assert_array_equal(loaded.scores(query), built.scores(query))


def test_the_build_frees_each_chunk_of_pairs_as_it_is_written_and_the_tfidf_shares_the_document_ids(monkeypatch):
    # What bounds the build's memory at national scale: the matrices grow as the pairs they are
    # made from are freed, and a Chinese corpus keeps one array of document ids, not two.
    monkeypatch.setattr(lexical_build, "CHUNK_TEXTS", 2)
    pairs, chinese = lexical_build.read_pairs(TEXTS, lambda chunk: tokenize(chunk, WORDS), lambda t: True)
    left = []
    original = lexical_build.Pairs.column_major

    def watched(self, df, values, n_values=1):
        def counting(doc, tokens, counts):
            left.append(len(self.tokens))
            return values(doc, tokens, counts)
        return original(self, df, counting, n_values)

    monkeypatch.setattr(lexical_build.Pairs, "column_major", watched)
    retriever, tfidf = lexical_build.lexical_matrices(pairs, pairs.document_frequencies(), 1.2, 0.75, chinese)

    assert left == list(range(len(left) - 1, -1, -1)) and len(left) == -(-len(TEXTS) // 2)
    assert pairs.tokens == [] and pairs.counts == []
    assert np.shares_memory(tfidf.matrix.indices, retriever.scores["indices"])
