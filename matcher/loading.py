"""The one way an entry point loads a published version for queries.

The CLI's query commands and every service worker call :func:`load_catalog`, so both answer with
the same search settings (efSearch, retrieval depth, dense weights, FAISS threads). It lives in the
library because ``service/`` must not import the CLI.
"""

from __future__ import annotations

import faiss

from matcher import artifacts
from matcher.catalog import Catalog
from matcher.settings import Settings


def load_catalog(settings: Settings, version: str | None = None) -> Catalog:
    """The published version ``version`` (default: the current one) of ``settings.artifacts_dir``.

    Sets FAISS's thread count for the whole process: queries are answered one at a time, and
    FAISS's OpenMP pool only adds synchronisation, 2-3x slower single-query search on a shared
    2-core machine (benchmarks/RESULTS.md).
    """
    faiss.omp_set_num_threads(settings.query_threads)
    return Catalog.load(
        artifacts.version_dir(settings.artifacts_dir, version),
        ef_search=settings.hnsw_ef_search,
        depth=settings.retrieval_depth,
        dense_weight=settings.dense_weight,
        dense_weight_zh=settings.dense_weight_zh,
        lexical_exact_max=settings.lexical_exact_max,
        rerank_depth=settings.ivf_rerank_depth,
    )
