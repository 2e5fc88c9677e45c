"""The one settings object. Only entry points build it; the library takes plain arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every field can be overridden by ``MATCHER_<FIELD>`` or a CLI option."""

    model_config = SettingsConfigDict(env_prefix="MATCHER_", extra="ignore")

    home: Path = Field(Path("."), description="workspace: snapshots, artifacts, caches")
    # Service and its database (service/, matcher/store/)
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("MATCHER_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="postgresql://user@host/db or sqlite:///path; None: SQLite file HOME/matcher.db",
    )
    service_reload_poll_s: float = Field(5.0, gt=0, description="how often workers check models/matcher/CURRENT")
    service_max_body_bytes: int = Field(1_048_576, ge=1024, description="largest request body accepted")
    service_metrics_public: bool = Field(False, description="serve /metrics without a key (only where the port is "
                                         "private to the scraper); false: /metrics needs an admin key (Bearer)")
    service_auth_cache_s: float = Field(5.0, ge=0, description="how long a checked API key is trusted without the database")
    service_exclusion_poll_s: float = Field(1.0, ge=0, description="how often workers check for new review exclusions")
    service_log_flush_s: float = Field(0.5, gt=0, description="served-list log batch interval")
    service_warm_gaps: bool = Field(True, description="rank every gap when a version loads (before it serves)")
    service_warm_explain_top: int = Field(20, ge=0, le=200, description="rows explained per gap when a version loads")
    service_db_auto_upgrade: bool = Field(True, description="apply database migrations when the service starts")
    service_startup_wait_s: float = Field(300.0, ge=0, description="how long a worker waits for its artifacts before accepting requests")
    service_torch_threads: int = Field(1, ge=0, le=64, description="PyTorch intra-op threads per service worker (query "
                                       "encoding); 0 leaves PyTorch's default (one per core, which contends across workers)")
    service_cache_lists: int = Field(256, ge=16, description="ranked lists cached per worker (about 1 MB each)")
    service_rate_limit: str = Field(
        "120/minute", description="requests per API key (admin keys are not limited), in the 'limits' notation: "
        "'120/minute', several as '120/minute;2000/hour'; 'off' turns quotas off")
    service_rate_limit_storage: str | None = Field(
        None, description="where request counts live: 'redis://host:6379/0' (shared by every worker and host); "
        "None: each worker's memory (a key then gets the limit per worker)")
    service_query_backend: Literal["auto", "torch"] = Field(
        "auto", description="free-text query encoder of the service: 'auto' = OpenVINO when installed (compiled once "
                            "per worker, ~5 s at start; 4.3 ms per query against 6.3 on PyTorch), else PyTorch")
    served_log_retention_days: int = Field(
        180, ge=0, description="served pages and ranked lists older than this are pruned by 'matcher db prune-served' "
        "and after each published refresh, except lists shortlists, reviews or outcomes refer to; 0: keep everything",
    )
    chain_map: Path = Field(PROJECT_ROOT / "data" / "chains" / "yangpu.yaml")
    embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="packaged model name or a local directory"
    )
    embedding_precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="inference dtype: 'auto' = bf16 on CPUs with bf16 matrix instructions, else fp32")
    embedding_backend: Literal["auto", "openvino", "torch"] = Field(
        "auto", description="inference engine of build and refresh: 'auto' = the fastest on this machine by a "
                            "calibration on its first build of 5,000+ profiles (stored per machine, recorded in the manifest), "
                            "else OpenVINO when installed, else PyTorch; 'torch' turns OpenVINO off everywhere, the "
                            "service's query encoder included")
    embedding_batch_size: int = Field(64, ge=1, le=4096)
    ray_address: str | None = Field(
        None, description="embed the profiles the cache lacks on this Ray cluster during build and refresh: 'auto' "
                          "(a running cluster), 'ray://host:10001', or 'local' (a Ray started in the process); None: in-process")
    index_factory: str | None = Field(None, description="FAISS factory string; None: by size")
    exact_index_max: int = Field(
        20_000, ge=0, description="largest universe served by an exact (flat) index"
    )
    hnsw_ef_search: int = Field(512, ge=8, description="HNSW efSearch (at least the depth asked)")
    query_threads: int = Field(
        1, ge=1, description="FAISS threads per query; more only add synchronisation cost"
    )
    keep_versions: int = Field(5, ge=1)
    max_bad_row_share: float = Field(0.05, ge=0.0, le=1.0)
    retrieval_depth: int = Field(200, ge=10, description="candidates taken from each signal")
    dense_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="weight of the dense signal in the fused score (rest: BM25)"
    )
    dense_weight_zh: float = Field(
        0.0, ge=0.0, le=1.0, description="weight of the dense signal for Chinese queries (rest: BM25); 0 suits the "
        "English default model, which does not read Chinese (benchmarks/bench_cn_retrieval.py); with a multilingual "
        "model, measure and raise it",
    )
    lexical_exact_max: int = Field(
        2_000_000, ge=0, description="largest universe whose lexical relevance is scored in full for each query; above "
        "it, block-max top-k over the query's postings with statistics from column moments and a fixed sample "
        "(matcher/lexical_topk.py; measured p50 18 ms against 66 ms for full scoring at 10M, benchmarks/RESULTS.md)")
    lexical_sample_size: int = Field(
        65_536, ge=256, description="documents in the fixed sample that estimates how common query terms co-occur "
        "(chosen and saved at build; a universe no larger gets exact statistics)")
    segment_threshold: float = Field(2.5, description="standardised similarity to join a segment")
    segment_margin: float = Field(0.25, ge=0.0, description="how far below its best segment a firm may join another")
    min_outcomes: int = Field(200, ge=1, description="labelled outcomes needed for the landing model")
    weak_min_count: int = Field(3, ge=1)
    weak_median_ratio: float = Field(0.35, ge=0.0, le=1.0)
    # Nightly refresh (pipelines/refresh_run.py)
    refresh_max_shrink_share: float = Field(
        0.2, ge=0.0, le=1.0, description="share of enterprises gone above which a refresh stops (unless --allow-shrink)"
    )
    refresh_rebuild_change_share: float = Field(
        0.2, ge=0.0, le=1.0, description="index changes above this share of the index: rebuild instead of in place"
    )
    refresh_max_tombstone_share: float = Field(
        0.1, ge=0.0, le=1.0, description="HNSW tombstone share above which the index is rebuilt"
    )
    refresh_min_recall: float = Field(0.95, ge=0.0, le=1.0, description="recall@10 an updated approximate index must keep")
    refresh_retrain: Literal["auto", "always", "never"] = Field("auto", description="when a refresh retrains the models")
    refresh_retrain_min_new_outcomes: int = Field(50, ge=1, description="new labelled outcomes that justify a retrain")
    refresh_standing_top: int = Field(50, ge=20, le=300, description="prospects per gap stored for the next refresh's diff")
    refresh_lock: Path | None = Field(None, description="lock file of the refresh; None: HOME/models/refresh.lock")
    # Gaps managed in the service (matcher/store/repo/gaps.py)
    service_gap_poll_s: float = Field(1.0, ge=0, description="how often workers check for gaps declared, edited, closed "
                                                             "or reopened (by another worker or the CLI)")
    # Index for 1M-10M (matcher/index.py; benchmarks/bench_index_scale.py, benchmarks/RESULTS.md)
    hnsw_index_max: int = Field(
        500_000, ge=0, description="largest universe served by HNSW32, which holds every vector a second time plus "
        "its graph (~1.8 kB each: 1 GB at ~550k); above it an IVF index of 8-bit codes (SQ8), re-ranked exactly "
        "against the memory-mapped vectors")
    ivf_nprobe: int = Field(
        128, ge=1, description="IVF lists scanned per query, stored with the index when it is built (at 1M: recall@10 "
        "0.97 at 2.7 ms CPU; 256: 0.98 at 4.1 ms)")
    ivf_rerank_depth: int = Field(
        200, ge=1, description="IVF candidates re-scored exactly against the float32 vectors per query (at least the "
        "depth asked; deeper bought no recall with SQ8 codes at 1M)")
    # Ingest in bounded memory (matcher/snapshot.py; benchmarks/bench_ingest_scale.py)
    ingest_chunk_rows: int = Field(
        50_000, ge=1, description="source rows mapped, validated and staged at a time by ingest; peak memory grows "
        "with it, not with the source")

    @property
    def snapshots_dir(self) -> Path:
        return self.home / "models" / "snapshots"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "models" / "matcher"

    @property
    def cache_dir(self) -> Path:
        return self.home / "models" / "cache"

    @property
    def runs_dir(self) -> Path:
        return self.home / "models" / "runs"

    @property
    def refresh_lock_path(self) -> Path:
        return self.refresh_lock or self.home / "models" / "refresh.lock"

    @property
    def samples_dir(self) -> Path:
        return self.home / "data" / "samples"

    @property
    def db_url(self) -> str:
        """The service database: ``database_url``, or the SQLite file in the workspace."""
        return self.database_url or f"sqlite:///{(self.home / 'matcher.db').resolve()}"


def default(name: str):
    """The declared default of the ``Settings`` field ``name``.

    Library functions use it for an argument a caller leaves out, so each default is written once,
    here, and a caller without settings (a test, a reload check) gets what the CLI would pass.
    """
    return Settings.model_fields[name].default
