"""BM25 over the same profile texts as the dense index, in English and Chinese.

Lexical and dense signals win on different needs: exact product words ("LiDAR", "CDMO") favour
BM25, paraphrased needs favour embeddings. Retrieval fuses both (see :mod:`matcher.retrieval`).

**Tokenizer.** Each text is tokenised in the language it is written in:

- A text without CJK characters gets exactly the English pipeline (bm25s: lower-cased
  ``\\w\\w+`` tokens, English stop words, Snowball stemming), so English results do not depend on
  whether Chinese profiles share the index.
- A text with CJK characters is NFKC-normalised (full-width letters and punctuation to their
  usual forms), stripped of business-scope boilerplate (一般项目, 许可项目, the 依法须经批准的项目…
  clauses, item numbering such as （一） or 1、), then split into runs: Latin runs go through the
  English pipeline (AI, GPU, SaaS and CDMO stay tokens), CJK runs are segmented by jieba
  (``lcut_for_search``: words plus the shorter words inside long ones) with the chain map's
  Chinese keywords in its dictionary, Chinese stop words and punctuation dropped, and every
  character bigram of each run added as well (``CJK_BIGRAMS``).

Measured on the 5,440 A-share companies and their 14 development needs
(``benchmarks/bench_cn_retrieval.py``, BM25 alone): see benchmarks/RESULTS.md for the ablation
that chose ``lcut_for_search`` and bigrams.

**Chinese relevance.** A Chinese query's lexical signal (:meth:`LexicalIndex.relevance`) is the
sum of two standardised scores over the same tokens: BM25 and the cosine of sublinear TF-IDF
vectors (``1 + log tf``, smoothed IDF, L2-normalised documents). BM25 saturates term frequency and
normalises length mildly; the cosine normalises a long 经营范围 fully, so a short profile that is
all about the need is not outscored by a long scope that lists it among fifty items. The cosine
is kept only for corpora with Chinese text (``TFIDF_FILE``); English queries and English-only
corpora use BM25 alone, as before. Measured on the A-share set (benchmarks/RESULTS.md).

**Identity.** The tokenizer's identity (:func:`tokenizer_id`: version, jieba version, mode and a
fingerprint of the added words) is saved with the index, and loading an index made by another
tokenizer raises :class:`~matcher.errors.ArtifactCorruptError`: its vocabulary would not match
the queries' tokens. An index saved before identities were recorded was English-only, which this
tokenizer reproduces exactly; it loads as ``LEGACY_ID``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from matcher.errors import ArtifactCorruptError
from matcher.lexical_build import lexical_matrices, read_pairs
from matcher.lexical_tfidf import TfidfCosine
from matcher.lexical_topk import (BLOCKS_FILE, SAMPLE_FILE, BlockMax, EstimatedRelevance, ExactRelevance, LexicalStats,
                                  Postings)
from matcher.settings import default

_STEMMER = Stemmer.Stemmer("english")
TOKENIZER_FILE = "tokenizer.json"
TFIDF_FILE = "tfidf.npz"  # TF-IDF cosine of a corpus with Chinese text
TOKENIZER_VERSION = "en-zh-1"
LEGACY_ID = "en-1"  # indexes saved before the identity was recorded: English pipeline only

# CJK Unified Ideographs, Extension A, Compatibility Ideographs, Extensions B-F.
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
CJK = re.compile(f"[{_CJK_CLASS}]")
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")
_LATIN = re.compile(r"[A-Za-z]")
ZH_SHARE = 0.25  # CJK share of letters at which a text counts as Chinese

# Measured choices (benchmarks/bench_cn_retrieval.py, ablation table in benchmarks/RESULTS.md).
CJK_MODE = "exact"  # jieba lcut ("exact") or lcut_for_search ("search")
CJK_BIGRAMS = True  # add every character bigram of each CJK run to the word tokens
DROP_SINGLE_CHARS = True  # single-character CJK words (的, 及, 机) carry little on their own

# Business-scope boilerplate, matched after NFKC normalisation (so "，" is "," and "（" is "(").
_BOILERPLATE = [
    r"[(\[【]?除依法须经批准的项目外,?凭营业执照依法自主开展经营活动[)\]】]?",
    r"[(\[【]?依法须经批准的项目,?经相关部门批准后方可开展经营活动(?:,?具体经营项目以相关部门批准文件或许可证件为准)?[)\]】]?",
    r"[(\[【]?具体经营项目以相关部门批准文件或许可证件为准[)\]】]?",
    r"[(\[【]?以上经营范围涉及许可经营项目的,?应取得相关部门许可后方可经营[)\]】]?",
    r"(?:一般|许可)(?:经营)?项目[::]?",
    r"[(\[]?[一二三四五六七八九十]+[)\]、]",  # (一) 一、
    r"(?:^|(?<=[;。.,:\s]))\d{1,2}(?:[、)]|\.(?!\d))",  # 1、 2) 3.
    r"[\u2460-\u2473]",  # ① .. ⑳
]
BOILERPLATE = re.compile("|".join(f"(?:{p})" for p in _BOILERPLATE))
STOPWORDS_ZH = frozenset(
    """的 了 和 与 及 或 等 其 以及 及其 并 并且 为 对 在 从事 相关 有关 各类 各种 其他 其它 一般 项目 许可 经营
    经营范围 主营业务 业务 包括 主要 提供 公司 企业 本公司 有限公司 股份 股份有限公司 有限 集团 上述 所需 所有 一切
    除外 不含 不得 以上 以下 凭 须 经 依法 批准 方可 开展 活动 自主 营业执照 部门 涉及 取得 应 未 是 由 于 将 向 从
    通过 进行 可 可以 已 及相关 含 该 之 中 上 下 内 外 类""".split()
)

_LOCK = threading.Lock()
_BASE = None  # the default jieba Tokenizer, initialised once
_WITH_WORDS: dict[str, object] = {}  # words fingerprint -> Tokenizer with those words added


def _jieba_base():
    """The default jieba tokenizer, initialised once per process (thread-safe, quiet)."""
    global _BASE
    with _LOCK:
        if _BASE is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict..." lines
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            _BASE = tokenizer
        return _BASE


def chinese_words(words: Iterable[str]) -> tuple[str, ...]:
    """The CJK runs of ``words`` (two characters or more), NFKC-normalised, sorted, unique:
    what is added to the segmenter's dictionary (a mixed keyword such as "AI芯片" adds 芯片;
    its Latin part is an English token anyway)."""
    runs = {run for w in words for run in _CJK_RUN.findall(unicodedata.normalize("NFKC", str(w)))}
    return tuple(sorted(r for r in runs if len(r) >= 2))


def words_fingerprint(words: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()[:12] if words else "none"


def _segmenter(words: tuple[str, ...]):
    """A jieba tokenizer with ``words`` in its dictionary (one per distinct word list, derived
    from the base by copying its frequency table: ~0.1 s, not the ~1 s of a fresh initialise)."""
    base = _jieba_base()
    if not words:
        return base
    key = words_fingerprint(words)
    with _LOCK:
        segmenter = _WITH_WORDS.get(key)
        if segmenter is None:
            import jieba

            segmenter = jieba.Tokenizer()
            segmenter.FREQ, segmenter.total = dict(base.FREQ), base.total
            segmenter.initialized = True
            for word in words:
                segmenter.add_word(word)
            if len(_WITH_WORDS) >= 4:  # a service swaps versions; chain maps rarely change
                _WITH_WORDS.clear()
            _WITH_WORDS[key] = segmenter
        return segmenter


def text_language(text: str) -> str:
    """"zh" when CJK characters make up at least ``ZH_SHARE`` of the letters (CJK characters
    plus Latin letters), else "en" (also for a text with no letters)."""
    cjk = len(CJK.findall(text))
    if not cjk:
        return "en"
    latin = len(_LATIN.findall(text))
    return "zh" if cjk / (cjk + latin) >= ZH_SHARE else "en"


def chinese_share(texts: Iterable[str]) -> float:
    """Share of ``texts`` that :func:`text_language` calls Chinese (0 for none)."""
    languages = [text_language(t) for t in texts]
    return sum(lang == "zh" for lang in languages) / len(languages) if languages else 0.0


def _english(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


def strip_boilerplate(text: str) -> str:
    """``text`` NFKC-normalised, with business-scope boilerplate and item numbering replaced by
    a separator."""
    return BOILERPLATE.sub(" ; ", unicodedata.normalize("NFKC", text))


def _cjk_tokens(runs: list[str], segmenter, mode: str, bigrams: bool, drop_single: bool) -> list[str]:
    tokens: list[str] = []
    cut = segmenter.lcut_for_search if mode == "search" else segmenter.lcut
    for run in runs:
        for word in cut(run):
            if (drop_single and len(word) < 2) or word in STOPWORDS_ZH:
                continue
            tokens.append(word)
        if bigrams and len(run) >= 2:
            tokens.extend(run[i:i + 2] for i in range(len(run) - 1))
    return tokens


def tokenize(texts: list[str], words: tuple[str, ...] = ()) -> list[list[str]]:
    """Tokens of each text (see the module docstring).

    Parameters
    ----------
    texts : list of str
    words : tuple of str
        Extra dictionary words for Chinese segmentation (:func:`chinese_words` of the chain
        map's ``keywords_zh``); the same words must be used for the index and its queries.

    Returns
    -------
    list of list of str, one per text. A text without CJK characters gives exactly what the
    English-only tokenizer gave (lower-cased, stop-word-free, stemmed).
    """
    out: list[list[str] | None] = [None] * len(texts)
    english = [i for i, t in enumerate(texts) if not CJK.search(t)]
    mixed = [i for i, t in enumerate(texts) if CJK.search(t)]
    if english:
        for i, tokens in zip(english, _english([texts[i] for i in english])):
            out[i] = list(tokens)
    if mixed:
        segmenter = _segmenter(tuple(words))
        cleaned = [strip_boilerplate(texts[i]) for i in mixed]
        latin = _english([_CJK_RUN.sub(" ", t) for t in cleaned])
        for i, text, latin_tokens in zip(mixed, cleaned, latin):
            runs = _CJK_RUN.findall(text)
            out[i] = list(latin_tokens) + _cjk_tokens(runs, segmenter, CJK_MODE, CJK_BIGRAMS, DROP_SINGLE_CHARS)
    return out  # type: ignore[return-value]


def tokenizer_id(words: tuple[str, ...] = ()) -> str:
    """Identity of :func:`tokenize` with ``words``: two indexes answer the same tokens only when
    their identities are equal."""
    from importlib.metadata import version

    return (f"{TOKENIZER_VERSION}|jieba-{version('jieba')}|{CJK_MODE}|bigrams={int(CJK_BIGRAMS)}"
            f"|single={int(not DROP_SINGLE_CHARS)}|words={words_fingerprint(tuple(words))}")


class LexicalIndex:
    """BM25 scores of every document for a query (documents are positions 0..n-1).

    ``words`` are the extra segmentation words the documents were tokenised with; queries are
    tokenised with the same.
    """

    def __init__(self, retriever: bm25s.BM25, words: tuple[str, ...] = (), tokenizer: str | None = None,
                 tfidf: TfidfCosine | None = None, stats: LexicalStats | None = None,
                 sample_size: int = default("lexical_sample_size"), exact_max: int = default("lexical_exact_max"),
                 blocks: BlockMax | None = None):
        self.retriever = retriever
        self.words = tuple(words)
        self.tokenizer = tokenizer or tokenizer_id(self.words)
        self.tfidf = tfidf
        self._vocab = set(retriever.vocab_dict)
        self.stats = stats or LexicalStats.build(self.num_docs, *self._postings(), size=sample_size)
        self.blocks = blocks if blocks is not None else BlockMax.build(self.num_docs, *self._postings())
        self.exact_max = exact_max  # see :meth:`query`

    @classmethod
    def build(cls, texts: Sequence[str], k1: float = 1.2, b: float = 0.75, words: Iterable[str] = (),
              sample_size: int = default("lexical_sample_size"),
              progress: Callable[[int], None] | None = None) -> "LexicalIndex":
        """Index ``texts`` (read in chunks: :mod:`matcher.lexical_build`); ``words``: Chinese
        dictionary words (e.g. the chain map's ``keywords_zh``; reduced with
        :func:`chinese_words`); ``sample_size``: documents in the fixed sample of the query
        statistics (:class:`~matcher.lexical_topk.LexicalStats`); ``progress``: called with the
        texts tokenised after each chunk."""
        words = chinese_words(words)
        pairs, chinese = read_pairs(texts, lambda chunk: tokenize(chunk, words), lambda t: bool(CJK.search(t)), progress)
        df = pairs.document_frequencies()
        retriever, tfidf = lexical_matrices(pairs, df, k1, b, chinese)
        del pairs
        return cls(retriever, words, tfidf=tfidf, sample_size=sample_size)

    @property
    def num_docs(self) -> int:
        return int(self.retriever.scores["num_docs"])

    def _postings(self) -> tuple[Postings, Postings | None]:
        s = self.retriever.scores
        bm25 = Postings(s["data"], s["indices"], s["indptr"])
        if self.tfidf is None:
            return bm25, None
        m = self.tfidf.matrix
        return bm25, Postings(m.data, m.indices, m.indptr)

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory), show_progress=False)
        if self.tfidf is not None:
            self.tfidf.save(Path(directory) / TFIDF_FILE)
        self.stats.save(Path(directory) / SAMPLE_FILE)
        self.blocks.save(Path(directory) / BLOCKS_FILE)
        (Path(directory) / TOKENIZER_FILE).write_text(
            json.dumps({"id": self.tokenizer, "words": list(self.words)}, ensure_ascii=False, indent=1), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path, exact_max: int = default("lexical_exact_max")) -> "LexicalIndex":
        """Load a saved index, refusing one whose tokenizer is not this code's; ``exact_max``: see
        :meth:`query`."""
        directory = Path(directory)
        path = directory / TOKENIZER_FILE
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            words = tuple(saved.get("words", []))
            expected = tokenizer_id(words)
            if saved.get("id") != expected:
                raise ArtifactCorruptError(
                    f"{directory}: the lexical index was tokenised with '{saved.get('id')}', this code tokenises "
                    f"with '{expected}'; rebuild the version with 'matcher build'"
                )
        else:
            words, expected = (), LEGACY_ID
        # memory-mapped (workers share the pages; ~3.5 GB at 10M documents), seen as plain arrays
        retriever = bm25s.BM25.load(str(directory), mmap=True, show_progress=False, verbosity=0)
        for name in ("data", "indices", "indptr"):
            retriever.scores[name] = retriever.scores[name].view(np.ndarray)
        if expected == LEGACY_ID and any(CJK.search(token) for token in retriever.vocab_dict):
            # The English-only tokenizer kept whole runs of Chinese characters as single tokens.
            raise ArtifactCorruptError(
                f"{directory}: the lexical index was tokenised without Chinese segmentation; rebuild the version "
                "with 'matcher build'"
            )
        tfidf = TfidfCosine.load(directory / TFIDF_FILE) if (directory / TFIDF_FILE).is_file() else None
        # An index saved before the statistics were stored gets them computed here (the same).
        stats = LexicalStats.load(directory / SAMPLE_FILE) if (directory / SAMPLE_FILE).is_file() else None
        blocks = BlockMax.load(directory / BLOCKS_FILE) if (directory / BLOCKS_FILE).is_file() else None
        return cls(retriever, words, expected, tfidf, stats, exact_max=exact_max, blocks=blocks)

    def tokens(self, text: str) -> list[str]:
        """All tokens of ``text`` with this index's tokenizer (in the vocabulary or not)."""
        return tokenize([text], self.words)[0]

    def query_tokens(self, text: str) -> list[str]:
        """Tokens of ``text`` that occur in the indexed vocabulary."""
        return [t for t in self.tokens(text) if t in self._vocab]

    def similarities(self, text: str, others: list[str]) -> np.ndarray:
        """IDF-weighted cosine of ``text``'s token set with each of ``others``' (IDF from the indexed
        documents; a token the index never saw weighs as the rarest), shape (len(others),), float64.

        How a short need is compared with short texts such as segment descriptions, where BM25's
        length normalisation and a 56-document IDF would say little.
        """
        n = self.retriever.scores["num_docs"]
        df = np.diff(self.retriever.scores["indptr"])
        vocab = self.retriever.vocab_dict

        def weights(tokens: list[str]) -> dict[str, float]:
            return {t: float(np.log((n + 1) / (df[vocab[t]] + 0.5) if t in vocab else (n + 1) / 0.5)) for t in set(tokens)}

        query = weights(self.tokens(text))
        query_norm = np.sqrt(sum(w * w for w in query.values()))
        out = np.zeros(len(others))
        for j, tokens in enumerate(tokenize(others, self.words) if others else []):
            other = weights(tokens)
            norm = query_norm * np.sqrt(sum(w * w for w in other.values()))
            if norm > 0:
                out[j] = sum(w * other[t] for t, w in query.items() if t in other) / norm
        return out

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every document, shape (n,), float32 (zeros when no token matches)."""
        n = self.retriever.scores["num_docs"]
        if not tokens:
            return np.zeros(n, dtype=np.float32)
        return self.retriever.get_scores(tokens).astype(np.float32)

    def relevance(self, tokens: list[str], chinese: bool = False) -> np.ndarray:
        """The lexical relevance of every document for a query's ``tokens``, shape (n,), float32.

        BM25 (:meth:`scores`); for a Chinese query (``chinese``) in an index with a TF-IDF cosine,
        the standardised sum of BM25 and the cosine, standardised again (see the module
        docstring). Retrieval standardises what this returns, so only its order and relative
        spacing matter.
        """
        bm25 = self.scores(tokens)
        if not chinese or self.tfidf is None or not tokens:
            return bm25
        return _standardised(_standardised(bm25) + _standardised(self.tfidf.scores(tokens, self.retriever.vocab_dict)))


    def query(self, tokens: list[str], chinese: bool = False,
              exact_max: int | None = None) -> ExactRelevance | EstimatedRelevance:
        """:meth:`relevance` of a query as retrieval needs it: ``mean`` / ``sd`` over the corpus,
        ``rows(rows)`` and ``top(allowed, depth)``. Scored in full up to ``exact_max`` documents
        (default: the index's ``exact_max``, the setting ``lexical_exact_max``), above that from
        the query's postings and :attr:`stats` (:mod:`matcher.lexical_topk`)."""
        if self.num_docs <= (self.exact_max if exact_max is None else exact_max):
            return ExactRelevance(self.relevance(tokens, chinese))
        vocab = self.retriever.vocab_dict
        bm25, tfidf = self._postings()
        ids = [vocab[t] for t in tokens if t in vocab and vocab[t] < len(bm25.indptr) - 1]  # "" has no column
        if chinese and tfidf is not None:
            return EstimatedRelevance(self.stats, bm25, ids, tfidf, self.tfidf.idf, self.blocks)
        return EstimatedRelevance(self.stats, bm25, ids, blocks=self.blocks)


def _standardised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return ((x - x.mean()) / sd if sd > 0 else np.zeros_like(x)).astype(np.float32)
