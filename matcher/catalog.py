"""A published artifact version loaded for queries: enterprises, indexes, chain analysis, gaps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from matcher import schemas as S
from matcher.artifacts import verify
from matcher.chains import ChainMap, load_chain_map
from matcher.embedding import Encoder
from matcher.errors import UnknownEntityError
from matcher.index import VectorSearcher, load_index
from matcher.lexical import LexicalIndex
from matcher.retrieval import Filters, corpus_sample, retrieve

INDEX_FILE = "index.faiss"
VECTORS_FILE = "vectors.npy"
ENTERPRISES_FILE = "enterprises.parquet"
LEXICAL_DIR = "lexical"
CHAIN_MAP_FILE = "chain_map.yaml"
SEGMENTS_FILE = "segments.parquet"
ASSIGNMENTS_FILE = "assignments.parquet"
GAPS_FILE = "gaps.json"
GAP_VECTORS_FILE = "gap_vectors.npy"
SEGMENT_VECTORS_FILE = "segment_vectors.npy"  # rows in chain_map.segments() order


@dataclass
class Catalog:
    """Everything needed to answer prospect and search queries from one artifact version."""

    path: Path
    manifest: dict
    enterprises: pd.DataFrame
    searcher: VectorSearcher
    lexical: LexicalIndex
    chain_map: ChainMap
    segments: pd.DataFrame
    assignments: pd.DataFrame
    gaps: list[dict]
    gap_vectors: np.ndarray
    segment_vectors: np.ndarray
    depth: int = 200
    dense_weight: float = 0.5
    _encoder: Encoder | None = None
    _dense_sample: np.ndarray | None = None

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @classmethod
    def load(cls, path: Path, ef_search: int = 128, depth: int = 200, dense_weight: float = 0.5, check: bool = True) -> "Catalog":
        """Load a version directory (verifying file hashes against its manifest by default)."""
        manifest = verify(path) if check else json.loads((path / "manifest.json").read_text())
        enterprises = pd.read_parquet(path / ENTERPRISES_FILE)
        for column in S.LIST_COLUMNS:
            enterprises[column] = enterprises[column].map(lambda v: [] if v is None else list(v))
        vectors = np.load(path / VECTORS_FILE, mmap_mode="r")
        index = load_index(path / INDEX_FILE, ef_search)
        return cls(
            path=path,
            manifest=manifest,
            enterprises=enterprises,
            searcher=VectorSearcher(index, vectors),
            lexical=LexicalIndex.load(path / LEXICAL_DIR),
            chain_map=load_chain_map(path / CHAIN_MAP_FILE),
            segments=pd.read_parquet(path / SEGMENTS_FILE),
            assignments=pd.read_parquet(path / ASSIGNMENTS_FILE),
            gaps=json.loads((path / GAPS_FILE).read_text()),
            gap_vectors=np.load(path / GAP_VECTORS_FILE),
            segment_vectors=np.load(path / SEGMENT_VECTORS_FILE),
            depth=depth,
            dense_weight=dense_weight,
        )

    @property
    def encoder(self) -> Encoder:
        """The encoder the artifact was built with (loaded on first free-text query)."""
        if self._encoder is None:
            emb = self.manifest["embedding"]
            self._encoder = Encoder(emb["model"], emb["precision"], emb.get("batch_size", 64))
        return self._encoder

    def gap(self, gap_id: str) -> tuple[dict, np.ndarray]:
        for i, gap in enumerate(self.gaps):
            if gap["gap_id"] == gap_id:
                return gap, self.gap_vectors[i]
        known = ", ".join(g["gap_id"] for g in self.gaps[:8])
        raise UnknownEntityError(
            f"gap '{gap_id}' not found in version {self.version}; 'matcher gaps' lists them (e.g. {known})"
        )

    def prospects(self, gap_id: str, k: int, filters: Filters) -> pd.DataFrame:
        """Outside enterprises that would fill a gap, best first."""
        gap, vector = self.gap(gap_id)
        return self._retrieve(vector, gap["text"], k, filters)

    def search(self, text: str, k: int, filters: Filters) -> pd.DataFrame:
        """Enterprises matching a free-text need, best first."""
        return self.search_many([text], k, [filters])[0]

    def search_many(self, texts: list[str], k: int, filters: list[Filters]) -> list[pd.DataFrame]:
        """Answer many needs with one batched embedding pass."""
        vectors = self.encoder.encode(texts)
        return [self._retrieve(v, t, k, f) for v, t, f in zip(vectors, texts, filters)]

    def _retrieve(self, vector: np.ndarray, text: str, k: int, filters: Filters) -> pd.DataFrame:
        return retrieve(
            self.enterprises, self.searcher, self.lexical, vector, self.lexical.query_tokens(text),
            k, filters, depth=self.depth, dense_weight=self.dense_weight, dense_sample=self.dense_sample,
        )

    @property
    def dense_sample(self) -> np.ndarray:
        if self._dense_sample is None:
            self._dense_sample = corpus_sample(self.searcher.vectors)
        return self._dense_sample
