"""Build step: snapshot -> embeddings -> FAISS + BM25 indexes -> chain analysis -> published version."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

import matcher
from matcher import artifacts, catalog as C, schemas as S
from matcher.chain_map import ChainMap, load_chain_map
from matcher.chains import ChainAnalysis, analyse_chains, chain_words, industry_code_table, segment_stats
from matcher.gap_state import gap_states
from matcher.errors import ArtifactCorruptError, ValidationFailedError
from matcher.calibration import CALIBRATE_MIN_PROFILES, calibrated_backend, calibration_path, calibration_texts
from matcher.embedding import EmbeddingCache, Encoder, encode_cached, encoder_key, text_hashes
from matcher.index import build_index, choose_factory, enterprise_faiss_ids, live_mask, save_index
from matcher.lexical import LexicalIndex, chinese_share, text_language
from matcher.refresh import PROSPECTS_FILE, standing_prospects
from matcher.snapshot import SnapshotInfo, find_snapshot, load_enterprises, profile_texts
from matcher.settings import default

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


@dataclass(frozen=True)
class BuildConfig:
    """Plain values a build needs (the CLI fills them from Settings)."""

    snapshots_dir: Path
    artifacts_dir: Path
    cache_dir: Path
    chain_map: Path
    embedding_model: str = default("embedding_model")
    embedding_precision: str = default("embedding_precision")
    embedding_batch_size: int = default("embedding_batch_size")
    embedding_backend: str = default("embedding_backend")
    ray_address: str | None = default("ray_address")
    index_factory: str | None = default("index_factory")
    exact_index_max: int = default("exact_index_max")
    hnsw_ef_search: int = default("hnsw_ef_search")
    keep_versions: int = default("keep_versions")
    segment_threshold: float = default("segment_threshold")
    segment_margin: float = default("segment_margin")
    weak_min_count: int = default("weak_min_count")
    weak_median_ratio: float = default("weak_median_ratio")
    # The standing prospect lists stored with each version (what the next refresh diffs against)
    # are ranked as `matcher prospects` ranks them: same depth and fusion weight.
    retrieval_depth: int = default("retrieval_depth")
    dense_weight: float = default("dense_weight")
    dense_weight_zh: float = default("dense_weight_zh")
    standing_top: int = default("refresh_standing_top")
    # The service database: its gaps (declared, edited, closed in the service) are published too.
    database_url: str | None = None


def library_versions() -> dict[str, str]:
    # Versions from package metadata: importing torch just to read its version costs seconds, and
    # a refresh with nothing to embed never needs torch.
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return {
        "matcher": matcher.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "faiss": faiss.__version__,
        "torch": of("torch"),
        "sentence_transformers": of("sentence-transformers"),
        "scikit_learn": of("scikit-learn"),
    }


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
    enterprises = load_enterprises(snapshot)
    enterprises.insert(0, S.FAISS_ID, enterprise_faiss_ids(enterprises[S.ENTERPRISE_ID]))
    texts = profile_texts(enterprises)
    chinese = chinese_share(enterprises[S.DESCRIPTION].fillna(""))
    note = language_note(config.embedding_model, chinese)
    if note:
        LOG.warning(note)

    t = time.perf_counter()
    key = encoder.key if encoder is not None else encoder_key(config.embedding_model, config.embedding_precision)
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
    vectors, embedded = encode_cached(
        encoder, cache, texts, hashes, progress=progress("embedding profiles", todo)
    )
    embedded += ray_embedded
    timings["embed_s"] = time.perf_counter() - t

    t = time.perf_counter()
    factory = choose_factory(len(enterprises), config.exact_index_max, config.index_factory)
    index = build_index(vectors, enterprises[S.FAISS_ID].to_numpy(), factory, config.hnsw_ef_search,
                        progress=progress("indexing vectors", len(enterprises)))
    timings["index_s"] = time.perf_counter() - t

    t = time.perf_counter()
    lexical = LexicalIndex.build(texts, words=chain_words(chain_map))
    timings["lexical_s"] = time.perf_counter() - t

    t = time.perf_counter()
    encode_texts = cached_texts(encoder, cache)
    segment_vectors, keyword_vectors = chain_vectors(encode_texts, chain_map)
    gap_rows = stored_gap_rows(config.database_url)
    analysis, gap_vectors = analyse(config, chain_map, enterprises, vectors, segment_vectors, encode_texts, lexical,
                                    gap_rows=gap_rows)
    timings["chains_s"] = time.perf_counter() - t

    version = new_version_name(config, now, snapshot, encoder.key, factory)
    staged = artifacts.staging_dir(config.artifacts_dir, version)
    try:
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
        manifest = finish_version(config, staged, version, manifest, timings, started)
        artifacts.publish(config.artifacts_dir, staged, version, config.keep_versions)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return version, manifest


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
    local = enterprises[local_mask]
    chinese = np.array([text_language(d) == "zh" for d in local[S.DESCRIPTION].fillna("")], dtype=bool)
    chinese_z = None
    if chinese.any() and lexical is not None:
        chinese_z = chinese_segment_z(chain_map, lexical, np.flatnonzero(local_mask))
    code_index, code_table = industry_code_table(local[S.INDUSTRY_CODE], chain_map)
    analysis = analyse_chains(
        chain_map, local, vectors[local_mask], segment_vectors,
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


def stored_gap_rows(database_url: str | None) -> list[dict]:
    """The gaps stored in the service database (``matcher gaps declare``, the service's
    ``/v1/chains/{id}/gaps``), none without a database. The schema is brought to head first, as
    ``matcher train`` does."""
    if not database_url:
        return []
    from matcher.store import Store, repo, upgrade

    upgrade(database_url)
    store = Store(database_url, pool_size=1)
    try:
        return repo.gap_rows(store)[1]
    finally:
        store.dispose()


def gap_rows_sha256(rows: list[dict]) -> str:
    """A fingerprint of what the stored gaps make of the gap list (a refresh publishes again when
    it moved)."""
    keys = ("gap_id", "segment_id", "text", "priority", "note", "status")
    return hashlib.sha256(json.dumps(sorted([[r.get(k) for k in keys] for r in rows], key=str),
                                     ensure_ascii=False).encode()).hexdigest()


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


def encoder_manifest(encoder: Encoder, calibration: dict | None = None) -> dict:
    return {
        "calibration": calibration,
        "model": encoder.model_name,
        "model_path": str(encoder.model_path),
        "precision": encoder.precision,
        "backend": getattr(encoder, "backend", "torch"),
        "dim": encoder.dim,
        "key": encoder.key,
        "batch_size": encoder.batch_size,
    }


def new_version_name(config: BuildConfig, now: datetime, snapshot: SnapshotInfo, encoder_key: str, factory: str) -> str:
    """A version name not used before: creation time plus a fingerprint of the inputs."""
    chain_sha = hashlib.sha256(config.chain_map.read_bytes()).hexdigest()
    fingerprint = hashlib.sha256(
        f"{snapshot.manifest['data_sha256']}|{chain_sha}|{encoder_key}|{factory}".encode()
    ).hexdigest()
    version = artifacts.new_version(now, fingerprint)
    while (config.artifacts_dir / version).exists():
        now = datetime.fromtimestamp(now.timestamp() + 1, timezone.utc)
        version = artifacts.new_version(now, fingerprint)
    return version


def write_version_files(
    config: BuildConfig,
    staged: Path,
    *,
    index: faiss.Index,
    vectors: np.ndarray,
    enterprises: pd.DataFrame,
    lexical: LexicalIndex,
    analysis: ChainAnalysis,
    gap_vectors: np.ndarray,
    segment_vectors: np.ndarray,
    keyword_vectors: np.ndarray,
) -> None:
    """Write the searchable part of a version (row ``i`` of every table is live position ``i``)."""
    save_index(index, staged / C.INDEX_FILE)
    np.save(staged / C.VECTORS_FILE, np.ascontiguousarray(vectors, dtype=np.float32))
    enterprises.to_parquet(staged / C.ENTERPRISES_FILE, index=False)
    lexical.save(staged / C.LEXICAL_DIR)
    shutil.copyfile(config.chain_map, staged / C.CHAIN_MAP_FILE)
    analysis.segments.to_parquet(staged / C.SEGMENTS_FILE, index=False)
    analysis.assignments.to_parquet(staged / C.ASSIGNMENTS_FILE, index=False)
    (staged / C.GAPS_FILE).write_text(json.dumps(analysis.gaps, indent=2, ensure_ascii=False))
    np.save(staged / C.GAP_VECTORS_FILE, gap_vectors.astype(np.float32))
    np.save(staged / C.SEGMENT_VECTORS_FILE, segment_vectors.astype(np.float32))
    np.save(staged / C.KEYWORD_VECTORS_FILE, keyword_vectors.astype(np.float32))


def base_manifest(
    config: BuildConfig,
    now: datetime,
    snapshot: SnapshotInfo,
    chain_map: ChainMap,
    embedding: dict,
    factory: str,
    index: faiss.Index,
    enterprises: pd.DataFrame,
    analysis: ChainAnalysis,
    embedded: int,
    reused: int,
    gap_rows: list[dict] = (),
) -> dict:
    chain_sha = hashlib.sha256(config.chain_map.read_bytes()).hexdigest()
    live = int(live_mask(index).sum())
    return {
        "created_at": now.isoformat(timespec="seconds"),
        "snapshot": {
            "snapshot_id": snapshot.snapshot_id,
            "data_sha256": snapshot.manifest["data_sha256"],
            "source": snapshot.manifest["source"],
        },
        "chain_map": {"path": str(config.chain_map), "sha256": chain_sha, "region": chain_map.region.id,
                      # the service database's gaps applied over the map's (build_index.stored_gap_rows)
                      "database_gaps": {"rows": len(gap_rows), "open": sum(r["status"] == "open" for r in gap_rows),
                                        "sha256": gap_rows_sha256(list(gap_rows))}},
        "embedding": embedding,
        "index": {
            "factory": factory,
            "ntotal": int(index.ntotal),
            "live": live,
            "tombstones": int(index.ntotal) - live,
            "exact": factory == "IDMap2,Flat",
            "hnsw_ef_search": config.hnsw_ef_search,
        },
        "counts": {
            "enterprises": len(enterprises),
            "local": int(enterprises[S.IS_LOCAL].sum()),
            "embedded": embedded,
            "reused_vectors": reused,
            "segments": len(chain_map.segments()),
            "gaps": len(analysis.gaps),
            "assigned_local": int(analysis.assignments[S.ENTERPRISE_ID].nunique()),
        },
        "segment_assignment": {
            "threshold": config.segment_threshold,
            "margin": config.segment_margin,
            "weak_min_count": config.weak_min_count,
            "weak_median_ratio": config.weak_median_ratio,
        },
    }


def finish_version(config: BuildConfig, staged: Path, version: str, manifest: dict, timings: dict, started: float) -> dict:
    """Rank the standing prospect lists, write the manifest and check everything reloads.

    The standing lists (top ``standing_top`` outside prospects per gap, ranked as
    ``matcher prospects`` ranks them) are what the next refresh diffs against.
    """
    t = time.perf_counter()
    artifacts.write_manifest(staged, version, manifest)  # provisional: the catalog reads it
    catalog = C.Catalog.load(staged, ef_search=config.hnsw_ef_search, depth=config.retrieval_depth,
                             dense_weight=config.dense_weight, dense_weight_zh=config.dense_weight_zh, check=False)
    standing = standing_prospects(catalog, config.standing_top)
    standing.to_parquet(staged / PROSPECTS_FILE, index=False)
    timings["rank_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started
    manifest = {
        **manifest,
        "standing_prospects": {"top": config.standing_top, "gaps": int(standing["gap_id"].nunique()) if len(standing) else 0,
                               "ranker": catalog.ranker_name},
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "libraries": library_versions(),
    }
    manifest = artifacts.write_manifest(staged, version, manifest)
    # Reload everything that was written, checked against the manifest, before it is visible.
    check = C.Catalog.load(staged)
    if len(check.enterprises) != len(check.searcher) or len(check.searcher.vectors) != len(check.enterprises) \
            or len(check.gaps) != len(check.gap_vectors):
        raise ArtifactCorruptError(f"{staged}: index, enterprise table and gaps disagree")
    ids = check.enterprises[S.FAISS_ID].to_numpy()
    index_ids = faiss.vector_to_array(check.searcher.index.id_map)
    if not np.array_equal(index_ids[index_ids >= 0], ids):
        raise ArtifactCorruptError(f"{staged}: the index's live ids are not the enterprise table's, row for row")
    return manifest


def build_config(settings, chain_map: Path | None = None) -> BuildConfig:
    """The build's configuration from the entry point's :class:`matcher.settings.Settings`
    (``matcher build``, ``demo`` and ``refresh`` build the same way)."""
    return BuildConfig(
        snapshots_dir=settings.snapshots_dir, artifacts_dir=settings.artifacts_dir, cache_dir=settings.cache_dir,
        chain_map=chain_map or settings.chain_map, embedding_model=settings.embedding_model,
        embedding_precision=settings.embedding_precision, embedding_batch_size=settings.embedding_batch_size,
        embedding_backend=settings.embedding_backend, ray_address=settings.ray_address,
        index_factory=settings.index_factory, exact_index_max=settings.exact_index_max,
        hnsw_ef_search=settings.hnsw_ef_search, keep_versions=settings.keep_versions,
        segment_threshold=settings.segment_threshold, segment_margin=settings.segment_margin,
        weak_min_count=settings.weak_min_count, weak_median_ratio=settings.weak_median_ratio,
        retrieval_depth=settings.retrieval_depth, dense_weight=settings.dense_weight,
        dense_weight_zh=settings.dense_weight_zh,
        standing_top=settings.refresh_standing_top,
        # As 'matcher train' and 'refresh' read it: when one is configured or the workspace has one.
        database_url=settings.db_url if settings.database_url is not None or (settings.home / "matcher.db").is_file() else None,
    )
