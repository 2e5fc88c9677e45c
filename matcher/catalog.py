"""A published artifact version loaded for queries: enterprises, indexes, chain analysis, gaps,
and (when trained) the ranking models.

One job, one class: ``Catalog`` is the query interface of a loaded version — load and verify it,
then answer "who fills this gap" (retrieve, featurise, score, explain), "why not this firm",
"compare these two" and free-text searches from the same in-memory state. Its parts live
elsewhere (retrieval, features, ranking, explanations, the gap list with stored gaps in
:mod:`matcher.gap_state`); what stays here is how one version's files feed them.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matcher import schemas as S
from matcher.artifacts import verify
from matcher.chain_map import ChainMap, load_chain_map
from matcher.chains import FEEDBACK_DOCS, code_profile
from matcher.embedding import Encoder
from matcher.enterprise_table import (
    ENTERPRISES_FILE,
    FIRM_ARRAYS_DIR,
    list_codes_to_save,
    read_enterprise_table,
    read_firm_arrays,
    stored_list_codes,
)
from matcher.errors import ArtifactCorruptError, UnknownEntityError
from matcher.explain import ExplainInputs, compare_report, explain_ranked, industry_labels, why_not_report
from matcher.features import FeatureContext, make_features
from matcher.gap_state import GapState, gap_states
from matcher.index import VectorSearcher, load_index
from matcher.lexical import LexicalIndex, text_language
from matcher.mapped import release, release_text_columns
from matcher.ranking import COLD_START, cold_start_score, cold_start_weights, component_scores, single_threaded
from matcher.retrieval import FilterColumns, Filters, Retrieved, corpus_sample, result_frame, retrieve_arrays
from matcher.settings import default

INDEX_FILE = "index.faiss"
VECTORS_FILE = "vectors.npy"
LEXICAL_DIR = "lexical"
CHAIN_MAP_FILE = "chain_map.yaml"
SEGMENTS_FILE = "segments.parquet"
ASSIGNMENTS_FILE = "assignments.parquet"
GAPS_FILE = "gaps.json"
GAP_VECTORS_FILE = "gap_vectors.npy"
SEGMENT_VECTORS_FILE = "segment_vectors.npy"  # rows in chain_map.segments() order
KEYWORD_VECTORS_FILE = "keyword_vectors.npy"  # rows in chain_map.segments() order
RANKER_FILE = "ranker.joblib"
GROWTH_SCORES_FILE = "growth_scores.npy"  # per enterprise row
KEYWORD_MOMENTS_FILE = "keyword_moments.npy"  # corpus mean and sd of each segment's keyword similarity
OUTCOMES_FILE = "outcomes.parquet"  # the labelled outcomes the ranker learned from
RANK_DEPTH = 300  # candidates retrieved before ranking


def model_identity(key: str | None) -> str | None:
    """The model part of an embedding key (``<name>-<content fingerprint>``, without the
    precision), or None for a key from before keys carried the model's content."""
    found = re.fullmatch(r"(.+-[0-9a-f]{16})-(?:fp32|bf16)", key or "")
    return found.group(1) if found else None


def id_order(ids: pd.Series) -> np.ndarray:
    """Row numbers of ``ids`` in sorted order. Arrow sorts UTF-8 bytes, which is code point
    order: the order of Python's string comparison, which :meth:`Catalog.rows_of` searches by."""
    return pc.sort_indices(pa.array(ids.array, type=pa.large_string())).to_numpy().astype(np.int64)


def load_ranker(path: Path, manifest: dict):
    """The landing model of a version, refusing one made by another scikit-learn version."""
    import joblib
    import sklearn

    made_with = manifest.get("ranker", {}).get("scikit_learn")
    if made_with and made_with != sklearn.__version__:
        raise ArtifactCorruptError(
            f"{path}: the ranking model was trained with scikit-learn {made_with}, this is "
            f"{sklearn.__version__}; retrain with 'matcher train' (or install scikit-learn=={made_with})"
        )
    return joblib.load(path)


def contiguous(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every Arrow-backed column in one chunk.

    Taking 50 rows from a 200k-row string column split over 10 chunks costs ~45 ms (Arrow
    concatenates first); from one chunk, 0.2 ms. Parquet row groups and ``pd.concat`` both leave
    chunked columns behind.
    """
    chunked = [c for c in frame.columns
               if getattr(getattr(frame[c].array, "_pa_array", None), "num_chunks", 1) > 1]
    if not chunked:
        return frame
    frame = frame.copy()
    for column in chunked:
        array = frame[column].array
        # the column's own dtype: pandas 3's ``str`` (NaN for missing) must not become ``string`` (pd.NA)
        frame[column] = pd.Series(type(array)(array._pa_array.combine_chunks(), dtype=array.dtype), index=frame.index,
                                  name=column)
    return frame


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
    keyword_vectors: np.ndarray
    ranker: object | None = None
    growth_scores: np.ndarray | None = None
    keyword_moments: np.ndarray | None = None
    firm_arrays: tuple[dict, dict] | None = None  # per-firm feature and filter arrays saved with the version
    depth: int = default("retrieval_depth")
    dense_weight: float = default("dense_weight")
    dense_weight_zh: float = default("dense_weight_zh")  # for Chinese queries (see dense_weight_for)
    query_backend: str = "torch"  # see ``encoder``
    _encoder: Encoder | None = None
    _dense_sample: np.ndarray | None = None
    _context: FeatureContext | None = field(default=None, repr=False)
    _landed: tuple | None = field(default=None, repr=False)
    _landed_vectors: np.ndarray | None = field(default=None, repr=False)
    _masks: dict = field(default_factory=dict, repr=False)
    _filter_columns: FilterColumns | None = field(default=None, repr=False)
    _id_order: np.ndarray | None = field(default=None, repr=False)
    _gap_state: GapState | None = field(default=None, repr=False)  # see use_gap_rows
    _text_vectors: dict = field(default_factory=dict, repr=False)  # free-text gap text -> vector
    _text_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.enterprises = contiguous(self.enterprises)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def ranker_name(self) -> str:
        """Which ranker orders the lists: the landing model's version, or cold start."""
        if self.ranker is None:
            return COLD_START
        return f"landing-model@{self.manifest['ranker']['trained_in']}"

    @classmethod
    def load(cls, path: Path, ef_search: int = default("hnsw_ef_search"), depth: int = default("retrieval_depth"),
             dense_weight: float = default("dense_weight"), check: bool = True,
             dense_weight_zh: float = default("dense_weight_zh"),
             lexical_exact_max: int = default("lexical_exact_max"),
             rerank_depth: int = default("ivf_rerank_depth")) -> "Catalog":
        """Load a version directory (verifying file hashes against its manifest by default).

        The search arguments are the settings of the same names (``ef_search``: ``hnsw_ef_search``,
        ``depth``: ``retrieval_depth``), their defaults the settings' defaults.
        ``dense_weight`` / ``dense_weight_zh``: weight of the dense signal in the fused retrieval
        score for English / Chinese queries. ``lexical_exact_max``: above this many documents BM25
        retrieves its top over the query's postings with stored statistics (matcher/lexical_topk.py);
        ``rerank_depth``: IVF candidates re-scored exactly against the float32 vectors.
        """
        manifest = verify(path) if check else json.loads((path / "manifest.json").read_text())
        firm_arrays = read_firm_arrays(path / FIRM_ARRAYS_DIR)
        # text columns memory-mapped; list cells from the codes saved with the version
        enterprises = read_enterprise_table(path / ENTERPRISES_FILE, stored_lists=stored_list_codes(firm_arrays))
        # Memory-mapped (workers share the pages), seen as a plain ndarray: numpy.memmap's own
        # __getitem__ costs ~0.1 ms per fancy index, four of them per query.
        vectors = np.load(path / VECTORS_FILE, mmap_mode="r").view(np.ndarray)
        index = load_index(path / INDEX_FILE, ef_search, mmap=True)
        ranker = load_ranker(path / RANKER_FILE, manifest) if (path / RANKER_FILE).is_file() else None
        growth = np.load(path / GROWTH_SCORES_FILE) if (path / GROWTH_SCORES_FILE).is_file() else None
        return cls(
            path=path,
            manifest=manifest,
            enterprises=enterprises,
            searcher=VectorSearcher(index, vectors, rerank_depth=rerank_depth),
            lexical=LexicalIndex.load(path / LEXICAL_DIR, exact_max=lexical_exact_max),
            chain_map=load_chain_map(path / CHAIN_MAP_FILE),
            segments=pd.read_parquet(path / SEGMENTS_FILE),
            assignments=pd.read_parquet(path / ASSIGNMENTS_FILE),
            gaps=json.loads((path / GAPS_FILE).read_text()),
            gap_vectors=np.load(path / GAP_VECTORS_FILE),
            segment_vectors=np.load(path / SEGMENT_VECTORS_FILE),
            keyword_vectors=np.load(path / KEYWORD_VECTORS_FILE),
            ranker=ranker,
            growth_scores=growth,
            keyword_moments=np.load(path / KEYWORD_MOMENTS_FILE) if (path / KEYWORD_MOMENTS_FILE).is_file() else None,
            firm_arrays=firm_arrays,
            depth=depth,
            dense_weight=dense_weight,
            dense_weight_zh=dense_weight_zh,
        )

    @property
    def encoder(self) -> Encoder:
        """The encoder the artifact was built with (loaded on first free-text query).

        ``query_backend`` "torch" (the CLI's default): PyTorch starts in a fraction of a second,
        where OpenVINO spends ~5 s compiling; "auto" (the service, which loads once and answers
        many): OpenVINO when installed, 4.3 ms of CPU per short query against 6.3 ms on PyTorch
        (one thread each; benchmarks/RESULTS.md). Same vectors to cosine 0.9999.
        """
        if self._encoder is None:
            encoder = Encoder(*self.encoder_config, backend=self.query_backend)
            built, now = model_identity(self.manifest["embedding"].get("key")), model_identity(encoder.key)
            if built and now != built:
                # A query embedded by another model would be searched among this model's vectors.
                raise ArtifactCorruptError(
                    f"the embedding model at {encoder.model_path} is not the one version {self.version} was built "
                    f"with ({built}, now {now}); run 'matcher build' to re-embed with it, or restore that model"
                )
            self._encoder = encoder
        return self._encoder

    def adopt_encoder(self, previous: "Catalog") -> bool:
        """Use ``previous``'s loaded encoder when it is the same model (same configuration and
        embedding key), so a new version does not load (or compile) it again. Whether it did."""
        if previous._encoder is None or previous.encoder_config != self.encoder_config \
                or previous.manifest["embedding"].get("key") != self.manifest["embedding"].get("key"):
            return False
        self._encoder = previous._encoder
        return True

    @property
    def encoder_config(self) -> tuple[str, str, int]:
        """(model, precision, batch size) of the artifact's embeddings: versions with the same
        configuration can share one loaded encoder."""
        emb = self.manifest["embedding"]
        return emb["model"], emb["precision"], emb.get("batch_size", 64)

    @property
    def dense_sample(self) -> np.ndarray:
        if self._dense_sample is None:
            stored = self.firm_arrays[0].get("dense_sample") if self.firm_arrays is not None else None
            # stored: 4,096 rows spread over a 15 GB file are 4,096 page reads on a cold start
            self._dense_sample = np.asarray(stored) if stored is not None else corpus_sample(self.searcher.vectors)
        return self._dense_sample

    @property
    def context(self) -> FeatureContext:
        if self._context is None:
            self._context = FeatureContext(
                chain_map=self.chain_map, enterprises=self.enterprises, vectors=self.searcher.vectors,
                segment_vectors=self.segment_vectors, keyword_vectors=self.keyword_vectors,
                segments=self.segments, assignments=self.assignments, gaps=self.gaps,
                segment_threshold=self.manifest["segment_assignment"]["threshold"],
                growth_scores=self.growth_scores, keyword_moments=self.keyword_moments, stored=self.firm_arrays,
            )
        return self._context

    def firm_arrays_to_save(self) -> tuple[dict, dict]:
        """The per-firm feature and filter arrays this version's workers would compute at start-up,
        with their meta, for saving with it (``FIRM_ARRAYS_DIR``; :meth:`load` maps them)."""
        arrays, meta = self.context.firm_arrays()
        filter_arrays, filter_meta = self.filter_columns.arrays()
        list_arrays, list_meta = list_codes_to_save(self.path / ENTERPRISES_FILE)
        return ({**arrays, **filter_arrays, **list_arrays, "id_order": self.id_order, "dense_sample": self.dense_sample},
                {**meta, **filter_meta, **list_meta})

    def release_mapped_pages(self) -> None:
        """Drop the pages of this version's memory-mapped vectors and table text from the process's
        resident set; they stay in the page cache. Each row a request reads maps its neighbours too
        (the kernel maps up to a whole cached folio around a fault, ~200 KB per random row seen on a
        15 GB vectors file), so ranking gap after gap, as a build does for its standing lists,
        otherwise maps most of the file."""
        release(self.searcher.vectors)
        release_text_columns(self.enterprises)

    def set_growth_scores(self, growth_scores: np.ndarray | None) -> None:
        """Replace the per-enterprise growth scores (training computes new ones); the feature
        context, built from the old ones, is rebuilt on next use."""
        self.growth_scores, self._context = growth_scores, None

    def landed(self) -> tuple[np.ndarray, dict]:
        """Rows of enterprises that landed in the outcomes the ranker learned from, and the gap
        each landed for (empty without a trained ranker)."""
        if self._landed is None:
            path = self.path / OUTCOMES_FILE
            if path.is_file():
                outcomes = pd.read_parquet(path)
                # Landings only: approvals are training labels too (label_kind "approve"), not landings.
                landed = outcomes[(outcomes["landed"] == 1) & (outcomes.get("label_kind", "outcome") == "outcome")].drop_duplicates("enterprise_id")
                rows = self.rows_of(landed["enterprise_id"].tolist())
                self._landed = (rows, dict(zip(landed["enterprise_id"], landed["gap_id"])))
            else:
                self._landed = (np.zeros(0, int), {})
        return self._landed

    def landed_vectors(self) -> np.ndarray:
        """Vectors of the landed enterprises of :meth:`landed` (known rows only), read once."""
        if self._landed_vectors is None:
            rows = self.landed()[0]
            self._landed_vectors = np.ascontiguousarray(self.searcher.vectors[rows[rows >= 0]], dtype=np.float32)
        return self._landed_vectors

    def allowed(self, filters: Filters) -> np.ndarray:
        """The filter mask, cached per distinct filter (the default one serves most requests)."""
        mask = self._masks.get(filters)
        if mask is None:
            mask = self.filter_columns.mask(self.enterprises, filters)
            mask.flags.writeable = False  # shared by requests; the searcher keeps what it derives from it
            if len(self._masks) > 64:
                self._masks.clear()
            # Service threads share this cache: return the local, never a re-read another
            # thread's clear() may have removed.
            self._masks[filters] = mask
        return mask

    @property
    def filter_columns(self) -> FilterColumns:
        if self._filter_columns is None:
            if self.firm_arrays is not None:
                self._filter_columns = FilterColumns.restore(*self.firm_arrays)
            else:
                self._filter_columns = FilterColumns.build(self.enterprises)
        return self._filter_columns

    def use_gap_rows(self, rows: list[dict], revision: int = 0) -> None:
        """Apply the gaps managed in the service (:mod:`matcher.store.repo.gaps` rows) over the
        published list: :meth:`listed_gaps`, :meth:`gap` and :meth:`known_gap_ids` answer with
        them from now on. The published ``gaps`` (and the feature context built on them) stay."""
        listed, closed = gap_states(self.chain_map, self.segments, rows)
        self._gap_state = GapState(revision, listed, {**{g["gap_id"]: g for g in listed}, **closed})

    @property
    def gap_revision(self) -> int | None:
        """The revision of the gap rows applied (None: none applied, the published list serves)."""
        return None if self._gap_state is None else self._gap_state.revision

    def listed_gaps(self) -> list[dict]:
        """The open gaps, most severe first: the published list with the service's gaps applied."""
        return self.gaps if self._gap_state is None else self._gap_state.listed

    def gap(self, gap_id: str) -> tuple[dict, np.ndarray]:
        """A gap of the gap list (the service's gaps, open or closed, included), or any segment as
        ``chain_id.segment_id`` (staff also work to strengthen segments that are not gaps, and past
        outcomes name segments that were gaps when the firm was approached), with its vector."""
        gap = self.gap_entry(gap_id)
        return gap, self._gap_vector(gap)

    def gap_entry(self, gap_id: str) -> dict:
        """The gap of :meth:`gap` without its vector (a free-text gap declared in the service is
        embedded only when ranked); UnknownEntityError when there is none."""
        state = self._gap_state
        if state is not None and gap_id in state.by_id:
            return state.by_id[gap_id]
        for gap in self.gaps:
            if gap["gap_id"] == gap_id:
                return gap
        for i, (chain, segment) in enumerate(self.chain_map.segments()):
            if f"{chain.id}.{segment.id}" == gap_id:
                row = self.segments.iloc[i]
                return {
                    "gap_id": gap_id, "chain_id": chain.id, "segment_id": segment.id, "kind": str(row["status"]),
                    "severity": 0.0, "text": segment.text, "text_zh": segment.text_zh, "title": segment.name, "stage": segment.stage,
                    "strength": int(row["strength"]), "declared": False, "priority": None, "note": "",
                }
        known = ", ".join(g["gap_id"] for g in self.listed_gaps()[:8])
        raise UnknownEntityError(
            f"gap '{gap_id}' not found in version {self.version}; 'matcher gaps' lists the gaps "
            f"(e.g. {known}); any segment can be named as chain_id.segment_id"
        )

    def managed_base(self, gap_id: str) -> dict | None:
        """The served gap a stored row edits, closes or reopens: an open gap of the list, or a
        closed one; None for anything else (a segment that is no gap is declared, not edited)."""
        state = self._gap_state
        if state is not None:
            return state.by_id.get(gap_id)
        return next((g for g in self.gaps if g["gap_id"] == gap_id), None)

    def _gap_vector(self, gap: dict) -> np.ndarray:
        """A segment gap: its segment's vector (as the build's segment gaps). A free-text gap: the
        published vector of that text, else the text embedded on first use (cached)."""
        for i, published in enumerate(self.gaps):  # the published list's own vectors, as before
            if published is gap:
                return self.gap_vectors[i]
        if gap.get("segment_id"):
            pairs = self.chain_map.segments()
            return self.segment_vectors[next(i for i, (_, s) in enumerate(pairs) if s.id == gap["segment_id"])]
        text = gap["text"]
        for i, published in enumerate(self.gaps):
            if published["segment_id"] is None and published["text"] == text:
                return self.gap_vectors[i]
        with self._text_lock:
            vector = self._text_vectors.get(text)
            if vector is None:
                vector = self._text_vectors[text] = np.asarray(self.encoder.encode([text])[0], dtype=np.float32)
            return vector

    def known_gap_ids(self) -> set[str]:
        """Gap ids (the service's, open or closed, included) plus every ``chain_id.segment_id``."""
        state = self._gap_state
        declared = set(state.by_id) if state is not None else set()
        return {g["gap_id"] for g in self.gaps} | declared | {f"{c.id}.{s.id}" for c, s in self.chain_map.segments()}

    def row_of(self, enterprise_id: str) -> int:
        row = int(self.rows_of([enterprise_id])[0])
        if row < 0:
            raise UnknownEntityError(f"enterprise '{enterprise_id}' not found in version {self.version}")
        return row

    def rows_of(self, enterprise_ids) -> np.ndarray:
        """Rows of ``enterprise_ids`` (-1 for an id this version lacks), by binary search over the
        ids in sorted order (saved with the version): a lookup reads ~24 ids, where comparing
        with every id took ~0.5 s at 10M firms."""
        ids = self.enterprises[S.ENTERPRISE_ID].array
        order = self.id_order
        rows = np.full(len(enterprise_ids), -1, dtype=np.int64)
        for k, enterprise_id in enumerate(enterprise_ids):
            at = bisect.bisect_left(range(len(order)), enterprise_id, key=lambda i: ids[order[i]])
            if at < len(order) and ids[order[at]] == enterprise_id:
                rows[k] = order[at]
        return rows

    @property
    def id_order(self) -> np.ndarray:
        """Row numbers in enterprise-id order (code point order, as Python compares strings)."""
        if self._id_order is None:
            stored = self.firm_arrays[0].get("id_order") if self.firm_arrays is not None else None
            self._id_order = stored if stored is not None else id_order(self.enterprises[S.ENTERPRISE_ID])
        return self._id_order

    def need_as_gap(self, text: str, vector: np.ndarray) -> dict:
        """A free-text need, placed on its nearest segment so chain and regional features apply.

        An English need: by standardised embedding similarity to the segment texts. A Chinese need
        is compared with the segments' Chinese texts (``text_zh``): by IDF-weighted word overlap
        (:meth:`LexicalIndex.similarities`), and, when ``dense_weight_zh`` > 0 (a model that reads
        Chinese), that mixed with the embedding similarity, each standardised over the segments.
        Segments without Chinese text cannot be chosen for it; a map without any falls back to
        the embedding placement.
        """
        pairs = self.chain_map.segments()
        z = (self.segment_vectors @ vector - self.segments["similarity_mean"].to_numpy()) / self.segments["similarity_sd"].to_numpy()
        texts_zh = [s.text_zh for _, s in pairs]
        if text_language(text) == "zh" and any(texts_zh):
            lexical = self.lexical.similarities(text, texts_zh)
            has_zh = np.array([bool(t) for t in texts_zh])
            if lexical.max() > 0:
                def standard(x: np.ndarray) -> np.ndarray:
                    sd = x[has_zh].std()
                    return (x - x[has_zh].mean()) / sd if sd > 0 else np.zeros_like(x)

                w = self.dense_weight_zh
                z = np.where(has_zh, w * standard(z) + (1 - w) * standard(lexical), -np.inf)
        chain, segment = pairs[int(np.argmax(z))]
        return {"gap_id": None, "chain_id": chain.id, "segment_id": segment.id, "kind": "search", "text": text, "title": text[:80]}

    def features(self, gap: dict, gap_vector: np.ndarray, rows: np.ndarray, lexical_z: np.ndarray | None = None,
                 code_profile: dict[str, float] | None = None) -> pd.DataFrame:
        """Pair features of enterprises ``rows`` for ``gap`` (the lexical score computed when not
        given); ``code_profile``: a free-text need's industry profile (see :meth:`need_codes`)."""
        if lexical_z is None:
            text = self.match_text(gap)
            relevance = self.lexical.query(self.lexical.query_tokens(text), text_language(text) == "zh")
            lexical_z = (relevance.rows(rows) - relevance.mean) / relevance.sd if relevance.sd > 0 else np.zeros(len(rows))
        dense = self.dense_weight_for(self.match_text(gap)) > 0  # weight 0: the model does not read this language
        return make_features(self.context, gap, gap_vector, np.asarray(rows), lexical_z, dense=dense,
                             code_profile=code_profile)

    def need_codes(self, gap: dict, found: Retrieved) -> dict[str, float] | None:
        """A free-text need's industry profile: the divisions of its ``FEEDBACK_DOCS`` best text
        matches (:func:`matcher.chains.code_profile`), the codes the need itself does not name
        (pseudo-relevance feedback). None for a gap: its segment's ``industry_codes`` apply."""
        if gap.get("kind") != "search":
            return None
        ctx = self.context
        return code_profile(ctx.divisions[ctx.division_index[found.rows[:FEEDBACK_DOCS]]])

    def score(self, features: pd.DataFrame, gap: dict | None = None) -> tuple[np.ndarray, pd.DataFrame]:
        """Scores in [0, 1] and the component scores, by the landing model or cold start (with the
        weights of :func:`matcher.ranking.cold_start_weights` for ``gap``)."""
        components = component_scores(features)
        if self.ranker is None:
            return cold_start_score(components, cold_start_weights(gap or {})), components
        return self.ranker.predict_proba(features)[:, 1], components

    def rank(self, gap: dict, gap_vector: np.ndarray, k: int, filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Retrieve up to ``RANK_DEPTH`` candidates, rank them, return the top ``k``.

        Returns (ranked results, features of those results, aligned row for row).
        """
        ranked, features = self.rank_pool(gap, gap_vector, k, filters)
        return ranked.head(k), features.head(k)

    def rank_pool(self, gap: dict, gap_vector: np.ndarray, k: int, filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
        """All ranked candidates (at least ``k``, normally ``RANK_DEPTH``) with their features."""
        with single_threaded():
            return self._rank_pool(gap, gap_vector, k, filters)

    def _rank_pool(self, gap: dict, gap_vector: np.ndarray, k: int, filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
        found = self.retrieve(gap_vector, self.match_text(gap), max(k, RANK_DEPTH), filters)
        if not len(found):
            return result_frame(self.enterprises, found), pd.DataFrame()
        features = self.features(gap, gap_vector, found.rows, found.lexical_z, self.need_codes(gap, found))
        scores, components = self.score(features, gap)
        scores = np.round(scores, 6)
        order = np.lexsort((-found.fused, -scores))
        n = len(order)
        head = {"score": scores[order], "rank": np.arange(1, n + 1), "percentile": np.round(1 - np.arange(n) / n, 4),
                "retrieval_score": found.fused[order]}
        tail = {column: np.round(components[column].to_numpy()[order], 4) for column in ("growth_score", "fit_score", "regional_score")}
        tail["ranker"] = np.full(n, self.ranker_name, dtype=object)
        ranked = result_frame(self.enterprises, found, order, head, tail)
        return ranked, features.take(order).reset_index(drop=True)

    def prospects(self, gap_id: str, k: int, filters: Filters, explain: bool = False, lang: str = "en") -> pd.DataFrame:
        """Outside enterprises that would fill a gap, ranked, best first (with an ``explanation``
        column when ``explain``)."""
        gap, vector = self.gap(gap_id)
        return self._answer(gap, vector, k, filters, explain, lang)

    def _answer(self, gap: dict, vector: np.ndarray, k: int, filters: Filters, explain: bool, lang: str) -> pd.DataFrame:
        with single_threaded():
            ranked, features = self._rank_pool(gap, vector, k, filters)
            top = ranked.head(k).copy()
            if explain and len(top):
                top["explanation"] = explain_ranked(self.explain_inputs(gap), gap, top, features.head(k), features, lang)
            return top

    def explain_inputs(self, gap: dict) -> ExplainInputs:
        """What explaining a ranked pool of ``gap`` (or a need) reads from this version: the
        feature context, ranker, the text the gap is matched by, the landed enterprises."""
        landed_rows, landed_gap = self.landed()
        return ExplainInputs(context=self.context, ranker=self.ranker, ranker_name=self.ranker_name,
                             match_text=self.match_text(gap), landed_rows=landed_rows, landed_gap=landed_gap,
                             landed_vectors=self.landed_vectors(), snapshot_id=self.manifest["snapshot"]["snapshot_id"],
                             version=self.version)

    def compare(self, gap_id: str, a_id: str, b_id: str, filters: Filters, lang: str = "en") -> dict:
        """Why A ranks above (or below) B for a gap, factor by factor
        (:func:`matcher.explain.compare_report` of the gap's ranked candidates)."""
        gap, vector = self.gap(gap_id)
        ranked, pool = self.rank_pool(gap, vector, 1, filters)
        rows = np.array([self.row_of(a_id), self.row_of(b_id)])
        return compare_report(gap, a_id, b_id, ranked, pool, rows, self.features(gap, vector, rows),
                              industry_labels(self.enterprises, rows), self.ranker, self.ranker_name, lang)

    def why_not(self, gap_id: str, enterprise_id: str, shortlist: int, filters: Filters, lang: str = "en") -> dict:
        """Where an enterprise stands for a gap and what keeps it below the last of a ``shortlist``
        (:func:`matcher.explain.why_not_report` of the gap's ranked candidates)."""
        gap, vector = self.gap(gap_id)
        row = self.row_of(enterprise_id)
        ranked, pool = self.rank_pool(gap, vector, shortlist, filters)
        rows, features = np.array([row]), None
        if len(ranked) >= shortlist:
            rows = np.array([row, int(ranked["_row"].iloc[shortlist - 1])])
            features = self.features(gap, vector, rows)
        return why_not_report(gap, self.enterprises.iloc[[row]], float(self.searcher.vectors[row] @ vector), shortlist,
                              filters, ranked, pool, rows, features, industry_labels(self.enterprises, rows),
                              self.ranker, self.ranker_name, lang)

    def search(self, text: str, k: int, filters: Filters, explain: bool = False, lang: str = "en") -> pd.DataFrame:
        """Enterprises matching a free-text need, ranked, best first."""
        return self.search_many([text], k, [filters], explain, lang)[0]

    def search_many(self, texts: list[str], k: int, filters: list[Filters], explain: bool = False, lang: str = "en") -> list[pd.DataFrame]:
        """Answer many needs with one batched embedding pass."""
        vectors = self.encoder.encode(texts)
        return [self._answer(self.need_as_gap(t, v), v, k, f, explain, lang) for v, t, f in zip(vectors, texts, filters)]

    @property
    def chinese_share(self) -> float:
        """Share of the universe's profiles written in Chinese (the build's manifest; 0 before it
        recorded one)."""
        return float(self.manifest.get("languages", {}).get("chinese_share", 0.0))

    def match_text(self, gap: dict) -> str:
        """The text a gap is matched by in this universe, in the language of its enterprises: the
        segment's (or declared gap's) Chinese text where most profiles are Chinese, both texts
        where some are (each profile then matches in its own language), else the English text. A
        free-text need is matched as written."""
        chinese = gap.get("text_zh")
        if chinese is None and gap.get("segment_id"):  # a gap list published before gaps carried it
            chinese = next((s.text_zh for _, s in self.chain_map.segments() if s.id == gap["segment_id"]), "")
        if gap.get("kind") == "search" or not chinese or self.chinese_share == 0:
            return gap["text"]
        return chinese if self.chinese_share > 0.5 else f"{gap['text']} {chinese}"

    def dense_weight_for(self, text: str) -> float:
        """The dense signal's weight in the fused score for a query text: ``dense_weight_zh`` when
        the text is Chinese (:func:`matcher.lexical.text_language`), else ``dense_weight``."""
        return self.dense_weight_zh if text_language(text) == "zh" else self.dense_weight

    def retrieve(self, vector: np.ndarray, text: str, k: int, filters: Filters) -> Retrieved:
        """The ``k`` best allowed enterprises for a query (its vector and text) by hybrid retrieval
        alone (dense + BM25 fused, before ranking): the first stage of every ranked list, and what
        retrieval benchmarks score."""
        return retrieve_arrays(
            self.searcher, self.lexical, vector, self.lexical.query_tokens(text), k, self.allowed(filters),
            depth=self.depth, dense_weight=self.dense_weight_for(text), dense_sample=self.dense_sample,
            chinese=text_language(text) == "zh",
        )
