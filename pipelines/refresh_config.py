"""The plain values a refresh needs, filled from Settings by the commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matcher.refresh import RefreshPolicy
from matcher.settings import Settings, default
from pipelines.build_config import BuildConfig, build_config


@dataclass(frozen=True)
class RefreshConfig:
    """Plain values a refresh needs (:func:`refresh_config` fills them from Settings)."""

    build: BuildConfig
    runs_dir: Path
    lock_path: Path
    max_bad_row_share: float = default("max_bad_row_share")
    ingest_chunk_rows: int = default("ingest_chunk_rows")  # the export is read in chunks of this many rows
    policy: RefreshPolicy = field(default_factory=RefreshPolicy)
    allow_shrink: bool = False
    outcomes: tuple[Path, ...] = ()
    min_outcomes: int = default("min_outcomes")
    database_url: str | None = default("database_url")  # the service database: its outcomes and review verdicts count too
    # Prune the service's served-list log after a publish (when a database is configured); 0: never.
    served_log_retention_days: int = default("served_log_retention_days")


def refresh_config(settings: Settings, allow_shrink: bool = False, outcomes: tuple[Path, ...] = ()) -> RefreshConfig:
    """The refresh configuration of ``settings`` (with the command's ``--allow-shrink`` and ``--outcomes``)."""
    build = build_config(settings)
    policy = RefreshPolicy(
        max_shrink_share=settings.refresh_max_shrink_share, rebuild_change_share=settings.refresh_rebuild_change_share,
        max_tombstone_share=settings.refresh_max_tombstone_share, min_recall=settings.refresh_min_recall,
        retrain=settings.refresh_retrain, retrain_min_new_outcomes=settings.refresh_retrain_min_new_outcomes,
    )
    # As 'matcher train' does: the service database when one is configured or the workspace has one.
    use_db = settings.database_url is not None or (settings.home / "matcher.db").is_file()
    return RefreshConfig(build=build, runs_dir=settings.runs_dir, lock_path=settings.refresh_lock_path,
                         max_bad_row_share=settings.max_bad_row_share,
                         ingest_chunk_rows=settings.ingest_chunk_rows, policy=policy, allow_shrink=allow_shrink,
                         outcomes=tuple(outcomes), min_outcomes=settings.min_outcomes,
                         database_url=settings.db_url if use_db else None,
                         served_log_retention_days=settings.served_log_retention_days)
