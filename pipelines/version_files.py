"""The files and manifest of a version being published: its name, the searchable files, the
manifest (inputs, embedding, index, counts, the service database's gaps), and the last step that
ranks the standing prospect lists and reloads everything before the version becomes visible. The
build and the refresh both publish through here."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

import matcher
from matcher import artifacts, catalog as C, schemas as S
from matcher.chain_map import ChainMap
from matcher.chains import ChainAnalysis
from matcher.embedding import Encoder
from matcher.enterprise_table import FIRM_ARRAYS_DIR, write_enterprise_table, write_firm_arrays
from matcher.errors import ArtifactCorruptError
from matcher.index import live_mask, load_index, save_index
from matcher.lexical import LexicalIndex
from matcher.refresh import PROSPECTS_FILE, standing_prospects
from matcher.snapshot import SnapshotInfo
from pipelines.build_config import BuildConfig


def library_versions() -> dict[str, str]:
    # Versions from package metadata: a refresh with nothing to embed never imports torch.
    of = artifacts.package_version
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


def stage_index(index: faiss.Index, staged: Path, ef_search: int) -> faiss.Index:
    """Write ``index`` into ``staged`` now and return it mapped back from there: an IVF index's
    codes (~3.9 GB at 10M) then stay in the file's pages, not in the process's memory beside the
    lexical postings built next (:func:`write_version_files` keeps the file)."""
    save_index(index, staged / C.INDEX_FILE)
    del index
    return load_index(staged / C.INDEX_FILE, ef_search, mmap=True)


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
    # The build writes the index, the vectors and the table into ``staged`` before it uses them
    # (memory-mapped).
    if not (staged / C.INDEX_FILE).is_file():
        save_index(index, staged / C.INDEX_FILE)
    if not (staged / C.VECTORS_FILE).is_file():
        np.save(staged / C.VECTORS_FILE, np.ascontiguousarray(vectors, dtype=np.float32))
    if not (staged / C.ENTERPRISES_FILE).is_file():
        write_enterprise_table(enterprises, staged / C.ENTERPRISES_FILE)
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
    np.save(staged / C.KEYWORD_MOMENTS_FILE, np.stack([catalog.context.keyword_mean, catalog.context.keyword_sd]))
    write_firm_arrays(staged / FIRM_ARRAYS_DIR, *catalog.firm_arrays_to_save())
    ranker_name = catalog.ranker_name
    del catalog  # the check below loads the version again: not two copies at once
    timings["rank_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started
    manifest = {
        **manifest,
        "standing_prospects": {"top": config.standing_top, "gaps": int(standing["gap_id"].nunique()) if len(standing) else 0,
                               "ranker": ranker_name},
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
