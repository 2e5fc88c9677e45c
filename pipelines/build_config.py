"""The build's configuration: plain values from the settings (``matcher build``, ``demo`` and
``refresh`` build the same way)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matcher.settings import default


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
    hnsw_index_max: int = default("hnsw_index_max")
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


def build_config(settings, chain_map: Path | None = None) -> BuildConfig:
    """The build's configuration from the entry point's :class:`matcher.settings.Settings`
    (``matcher build``, ``demo`` and ``refresh`` build the same way)."""
    return BuildConfig(
        snapshots_dir=settings.snapshots_dir, artifacts_dir=settings.artifacts_dir, cache_dir=settings.cache_dir,
        chain_map=chain_map or settings.chain_map, embedding_model=settings.embedding_model,
        embedding_precision=settings.embedding_precision, embedding_batch_size=settings.embedding_batch_size,
        embedding_backend=settings.embedding_backend, ray_address=settings.ray_address,
        index_factory=settings.index_factory, exact_index_max=settings.exact_index_max,
        hnsw_index_max=settings.hnsw_index_max,
        hnsw_ef_search=settings.hnsw_ef_search, keep_versions=settings.keep_versions,
        segment_threshold=settings.segment_threshold, segment_margin=settings.segment_margin,
        weak_min_count=settings.weak_min_count, weak_median_ratio=settings.weak_median_ratio,
        retrieval_depth=settings.retrieval_depth, dense_weight=settings.dense_weight,
        dense_weight_zh=settings.dense_weight_zh,
        standing_top=settings.refresh_standing_top,
        # As 'matcher train' and 'refresh' read it: when one is configured or the workspace has one.
        database_url=settings.db_url if settings.database_url is not None or (settings.home / "matcher.db").is_file() else None,
    )
