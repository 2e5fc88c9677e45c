"""Build step: snapshot -> embeddings -> FAISS + BM25 indexes -> chain analysis -> published version."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from matcher import artifacts, catalog as C, schemas as S
from matcher.calibration import CALIBRATE_MIN_PROFILES, calibrated_backend, calibration_path, calibration_texts
from matcher.chain_map import ChainMap, load_chain_map
from matcher.chains import ChainAnalysis, analyse_chains, chain_words, industry_code_table, segment_stats
from matcher.embedding import EmbeddingCache, Encoder, encode_cached, encoder_key, text_hashes
from matcher.errors import ValidationFailedError
from matcher.gap_state import gap_states
from matcher.index import build_index, choose_factory
from matcher.lexical import LexicalIndex, chinese_share, text_language
from matcher.mapped import gather, take_rows
from matcher.enterprise_table import stage_enterprise_table
from matcher.snapshot import ProfileTexts, SnapshotInfo, find_snapshot, snapshot_rows
from pipelines.build_config import BuildConfig
from pipelines.version_files import (
    base_manifest, encoder_manifest, finish_version, new_version_name, stage_index, stored_gap_rows, write_version_files,
)

Progress = Callable[[str, int], Callable[[int], None]]
LOG = logging.getLogger("matcher.build")
# Embedding models known to read English only: with mostly Chinese profiles, ranking leans on the
# lexical and industry-code signals (dense_weight_zh), and the build says so.
ENGLISH_ONLY_MODELS = {"all-MiniLM-L6-v2", "all-mpnet-base-v2", "all-MiniLM-L12-v2"}


def language_note(model: str, chinese: float) -> str | None:
    """The one warning line of a build whose profiles are mostly Chinese (``chinese``: their
    share) embedded by an English-only model, else None."""
    if chinese <= 0.5 or Path(model).name not in ENGLISH_ONLY_MODELS:
        return None
    return (f"{chinese:.0%} of the profiles are Chinese and the embedding model {Path(model).name} reads English only: "
            "ranking leans on the lexical and industry-code signals; set MATCHER_EMBEDDING_MODEL to a local "
            "multilingual sentence-transformers directory (and MATCHER_DENSE_WEIGHT_ZH) to use embeddings for Chinese")


def _no_progress(_label: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


def build(
    config: BuildConfig,
    snapshot_id: str | None = None,
    encoder: Encoder | None = None,
    progress: Progress = _no_progress,
    now: datetime | None = None,
) -> tuple[str, dict]:
    """Build and publish a new artifact version from a snapshot (the newest by default).

    Returns
    -------
    version : str
    manifest : dict
    """
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    snapshot = find_snapshot(config.snapshots_dir, snapshot_id)
    chain_map = load_chain_map(config.chain_map)
    key = encoder.key if encoder is not None else encoder_key(config.embedding_model, config.embedding_precision)
    factory = choose_factory(snapshot_rows(snapshot), config.exact_index_max, config.index_factory, config.hnsw_index_max)
    version = new_version_name(config, now, snapshot, key, factory)
    staged = artifacts.staging_dir(config.artifacts_dir, version)
    try:
        manifest = _build(config, snapshot, chain_map, staged, factory, key, encoder, progress, now, timings)
        manifest = finish_version(config, staged, version, manifest, timings, started)
        artifacts.publish(config.artifacts_dir, staged, version, config.keep_versions)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return version, manifest


def _build(config: BuildConfig, snapshot: SnapshotInfo, chain_map: ChainMap, staged: Path, factory: str,
           key: str, encoder: Encoder | None, progress: Progress, now: datetime, timings: dict[str, float]) -> dict:
    """Write the searchable files of a version into ``staged``; returns its manifest so far.

    The enterprise table and the vectors are written into ``staged`` first and used from there,
    memory-mapped (:func:`matcher.enterprise_table.stage_enterprise_table`, the embedding cache
    read into ``vectors.npy``): at national scale neither fits in memory beside the rest."""
    enterprises = stage_enterprise_table(snapshot.enterprises_path, staged / C.ENTERPRISES_FILE)
    texts = ProfileTexts(enterprises)  # made when read: a list of 10M profile texts is ~3.5 GB
    chinese = chinese_share(enterprises[S.DESCRIPTION].fillna(""))
    note = language_note(config.embedding_model, chinese)
    if note:
        LOG.warning(note)

    t = time.perf_counter()
    cache = EmbeddingCache(config.cache_dir / "embeddings" / key, encoder.dim if encoder is not None else 0)
    hashes = list(enterprises[S.PROFILE_HASH])
    todo = len({hashes[i] for i in cache.missing(hashes)})
    calibration = None
    if encoder is None:  # the backend by this machine's calibration (the cache key does not depend on it)
        backend, calibration = embedding_backend(config, lambda: calibration_texts(texts), todo, progress)
        encoder = Encoder(config.embedding_model, config.embedding_precision, config.embedding_batch_size, backend=backend)
        cache.dim = encoder.dim
    ray_embedded = 0
    if todo and config.ray_address:
        cache, ray_embedded = embed_on_cluster(config, snapshot.enterprises_path, cache, encoder, todo, progress)
    vectors = np.lib.format.open_memmap(staged / C.VECTORS_FILE, mode="w+", dtype=np.float32,
                                        shape=(len(enterprises), encoder.dim))
    vectors, embedded = encode_cached(
        encoder, cache, texts, hashes, progress=progress("embedding profiles", todo), out=vectors,
    )
    vectors.flush()
    del hashes  # 10M Python strings (~0.8 GB) not needed past here
    embedded += ray_embedded
    timings["embed_s"] = time.perf_counter() - t

    t = time.perf_counter()
    index = build_index(vectors, enterprises[S.FAISS_ID].to_numpy(), factory, config.hnsw_ef_search,
                        progress=progress("indexing vectors", len(enterprises)))
    index = stage_index(index, staged, config.hnsw_ef_search)
    timings["index_s"] = time.perf_counter() - t

    t = time.perf_counter()
    lexical = LexicalIndex.build(texts, words=chain_words(chain_map), progress=progress("indexing text", len(texts)))
    timings["lexical_s"] = time.perf_counter() - t

    t = time.perf_counter()
    encode_texts = cached_texts(encoder, cache)
    segment_vectors, keyword_vectors = chain_vectors(encode_texts, chain_map)
    gap_rows = stored_gap_rows(config.database_url)
    analysis, gap_vectors = analyse(config, chain_map, enterprises, vectors, segment_vectors, encode_texts, lexical,
                                    gap_rows=gap_rows)
    timings["chains_s"] = time.perf_counter() - t

    write_version_files(
        config, staged, index=index, vectors=vectors, enterprises=enterprises, lexical=lexical,
        analysis=analysis, gap_vectors=gap_vectors, segment_vectors=segment_vectors, keyword_vectors=keyword_vectors,
    )
    manifest = base_manifest(
        config, now, snapshot, chain_map, encoder_manifest(encoder, calibration), factory, index, enterprises, analysis,
        embedded=embedded, reused=len(enterprises) - embedded, gap_rows=gap_rows,
    )
    manifest["lexical"] = {"tokenizer": lexical.tokenizer, "words": len(lexical.words)}
    manifest["languages"] = {"chinese_share": round(chinese, 4), "note": note}
    return manifest


def embed_on_cluster(config: BuildConfig, snapshot_parquet: Path, cache: EmbeddingCache, encoder: Encoder, todo: int,
                     progress: Progress) -> tuple[EmbeddingCache, int]:
    """Embed what the cache lacks of a snapshot on the Ray cluster at ``config.ray_address``
    (:mod:`matcher.ray_embedding`); returns the cache reloaded with the new shards and how many
    profiles the cluster embedded. Profiles the model could not take are an error naming them."""
    from matcher.ray_embedding import embed_on_ray

    report = embed_on_ray(config.ray_address, snapshot_parquet, cache.directory, encoder,
                          progress=progress(f"embedding profiles on Ray ({config.ray_address})", todo))
    if report.failed:
        shown = "; ".join(f"{f[S.ENTERPRISE_ID]}: {f['reason']}" for f in report.failed[:5])
        raise ValidationFailedError(f"{len(report.failed)} profiles could not be embedded on Ray ({shown})")
    return EmbeddingCache(cache.directory, encoder.dim), report.embedded


def cached_texts(encoder: Encoder, cache: EmbeddingCache) -> Callable[[list[str]], np.ndarray]:
    """``encoder.encode`` through the embedding cache: chain and gap texts are embedded once per
    model, so a rebuild, a refresh and the build before them use the very same vectors (an encoding
    can differ in its last bits with the batch it ran in and the thread count)."""

    def encode(texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        return encode_cached(encoder, cache, texts, text_hashes(texts))[0]

    return encode


def chain_vectors(encode_texts: Callable[[list[str]], np.ndarray], chain_map: ChainMap) -> tuple[np.ndarray, np.ndarray]:
    """Segment text and segment keyword vectors, in ``chain_map.segments()`` order."""
    pairs = chain_map.segments()
    segment_vectors = encode_texts([s.text for _, s in pairs])
    keyword_vectors = encode_texts([f"{s.name}: {', '.join(s.keywords)}" for _, s in pairs])
    return segment_vectors, keyword_vectors


def analyse(
    config: BuildConfig,
    chain_map: ChainMap,
    enterprises: pd.DataFrame,
    vectors: np.ndarray,
    segment_vectors: np.ndarray,
    encode_texts: Callable[[list[str]], np.ndarray],
    lexical: LexicalIndex | None = None,
    gap_rows: list[dict] = (),
) -> tuple[ChainAnalysis, np.ndarray]:
    """Chain analysis of the universe, and one vector per gap of its gap list.

    ``encode_texts`` embeds the free-text declared gaps (a segment gap uses its segment's vector).
    ``lexical`` (the universe's BM25 index) compares Chinese local profiles with the segments'
    Chinese texts (:func:`chinese_segment_z`); without it they are compared by embedding.
    ``gap_rows``: the service database's gaps (:func:`stored_gap_rows`), applied over the chain
    map's as the service applies them (:func:`matcher.gap_state.gap_states`): the open ones are
    published, the closed ones leave the list.
    """
    local_mask = enterprises[S.IS_LOCAL].to_numpy(dtype=bool) & ~enterprises[S.STATUS_CLASS].isin(S.NOT_PROSPECTS).to_numpy()
    # The local rows (~a tenth, all over the files) taken a chunk at a time with the pages read
    # released: each row read maps its neighbours too, so taking them at once mapped most of the
    # table's text and of vectors.npy (~14 GB at 10M).
    local_rows = np.flatnonzero(local_mask)
    local = take_rows(enterprises, local_rows)
    local_vectors = gather(vectors, local_rows)
    chinese = np.array([text_language(d) == "zh" for d in local[S.DESCRIPTION].fillna("")], dtype=bool)
    chinese_z = None
    if chinese.any() and lexical is not None:
        chinese_z = chinese_segment_z(chain_map, lexical, np.flatnonzero(local_mask))
    code_index, code_table = industry_code_table(local[S.INDUSTRY_CODE], chain_map)
    analysis = analyse_chains(
        chain_map, local, local_vectors, segment_vectors,
        segment_stats(vectors, segment_vectors), config.segment_threshold, config.segment_margin, config.weak_min_count, config.weak_median_ratio,
        chinese=chinese, chinese_z=chinese_z, code_match=code_table[code_index],
    )
    if gap_rows:
        analysis.gaps = [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in g.items()}
                         for g in gap_states(chain_map, analysis.segments, list(gap_rows))[0]]
    segment_row = {s.id: i for i, (_, s) in enumerate(chain_map.segments())}
    free_text = [g["text"] for g in analysis.gaps if g["segment_id"] is None]
    free_vectors = iter(encode_texts(free_text)) if free_text else iter(())
    gap_vectors = np.stack(
        [segment_vectors[segment_row[g["segment_id"]]] if g["segment_id"] else next(free_vectors) for g in analysis.gaps]
    ) if analysis.gaps else np.zeros((0, segment_vectors.shape[1]), np.float32)
    return analysis, gap_vectors.astype(np.float32)


def chinese_segment_z(chain_map: ChainMap, lexical: LexicalIndex, rows: np.ndarray) -> np.ndarray:
    """Standardised BM25 score of each segment's ``text_zh`` for the documents ``rows``, (len(rows),
    n_segments), NaN for segments without Chinese text.

    Each segment's scores are standardised by their mean and standard deviation over the whole
    universe, as the embedding similarities are (:func:`matcher.chains.segment_stats`), so the same
    threshold applies. With the English default model this is the Chinese signal the assignment
    has; the embedding of a Chinese profile is near noise for it.
    """
    pairs = chain_map.segments()
    out = np.full((len(rows), len(pairs)), np.nan, dtype=np.float32)
    for j, (_, segment) in enumerate(pairs):
        if not segment.text_zh:
            continue
        scores = lexical.scores(lexical.query_tokens(segment.text_zh))
        sd = float(scores.std())
        if sd > 0:
            out[:, j] = (scores[rows] - scores.mean()) / sd
    return out


def embedding_backend(config: BuildConfig, texts: Callable[[], list[str]], todo: int,
                      progress: Progress = _no_progress) -> tuple[str, dict | None]:
    """The backend to embed ``todo`` profiles with, and the calibration that chose it
    (:mod:`matcher.calibration`): the setting when it names a backend; with ``auto``, this
    machine's stored calibration, measured now on ``texts()`` when there is none and the job is
    big enough to pay for it, else ``auto`` (OpenVINO when installed)."""
    if config.embedding_backend != "auto":
        return config.embedding_backend, None
    measure = todo >= CALIBRATE_MIN_PROFILES
    if measure and not calibration_path(config.cache_dir / "calibration", config.embedding_model,
                                        config.embedding_precision).exists():
        progress("calibrating embedding backends on this machine", 1)
    record = calibrated_backend(config.cache_dir / "calibration", config.embedding_model, config.embedding_precision,
                                texts, config.embedding_batch_size, measure=measure)
    if record is None:
        return "auto", None
    LOG.info("embedding backend %s (calibrated %s on %s)", record["chosen"], record["measured_at"], record["machine"]["cpu"])
    return record["chosen"], record

