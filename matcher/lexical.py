"""BM25 over the same profile texts as the dense index (English stop words, Snowball stemming).

Lexical and dense signals win on different needs: exact product words ("LiDAR", "CDMO") favour
BM25, paraphrased needs favour embeddings. Retrieval fuses both (see :mod:`matcher.retrieval`).
"""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stop-word-free, stemmed tokens of each text."""
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


class LexicalIndex:
    """BM25 scores of every document for a query (documents are positions 0..n-1)."""

    def __init__(self, retriever: bm25s.BM25):
        self.retriever = retriever
        self._vocab = set(retriever.vocab_dict)

    @classmethod
    def build(cls, texts: list[str], k1: float = 1.2, b: float = 0.75) -> "LexicalIndex":
        retriever = bm25s.BM25(k1=k1, b=b)
        retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever)

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        return cls(bm25s.BM25.load(str(directory), show_progress=False, verbosity=0))

    def query_tokens(self, text: str) -> list[str]:
        """Tokens of ``text`` that occur in the indexed vocabulary."""
        return [t for t in tokenize([text])[0] if t in self._vocab]

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every document, shape (n,), float32 (zeros when no token matches)."""
        n = self.retriever.scores["num_docs"]
        if not tokens:
            return np.zeros(n, dtype=np.float32)
        return self.retriever.get_scores(tokens).astype(np.float32)
