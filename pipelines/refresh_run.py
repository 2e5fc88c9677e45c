"""Nightly refresh, the orchestration: new source -> snapshot -> diff -> re-embed the changed
profiles -> update the index in place (or rebuild) -> chain analysis -> standing prospect lists ->
publish -> retrain when due -> run record with a change report. The steps live in
``refresh_version.py`` (the new version), ``refresh_report.py`` (what changed) and
``refresh_records.py`` (lock and run records); the commands in ``refresh_commands.py``.

Never broken: each step writes into a snapshot or version staging directory that becomes visible
only by an atomic rename, so a refresh that fails or is killed at any point leaves the published
version serving; the next refresh removes what the dead one left behind and completes the work.
One refresh at a time (``refresh_records.refresh_lock``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matcher import artifacts, catalog as C, schemas as S
from matcher.artifacts import file_sha256
from matcher.embedding import Encoder
from matcher.embedding_models import encoder_key
from matcher.errors import ArtifactNotFoundError, MatcherError
from matcher.index import EXACT_FACTORY, choose_factory, refresh_factory
from matcher.mapping import load_mapping
from matcher.refresh import diff_keys, enterprise_keys, previous_rows, refresh_positions, retrain_plan
from matcher.snapshot import SnapshotInfo, find_snapshot, ingest, list_snapshots
from matcher.sources import sheet_to_read
from matcher.store import retention
from matcher.store.repo import Actor
from pipelines.version_files import gap_rows_sha256, stored_gap_rows
from pipelines.refresh_config import RefreshConfig
from pipelines.refresh_records import Run, recover, refresh_lock
from pipelines.refresh_report import VersionView, version_change_report
from pipelines.refresh_version import build_refreshed_version


class ShrinkGuardError(MatcherError):
    """The new source lost more enterprises than the policy allows."""


def _no_progress(_label: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


def refresh(
    config: RefreshConfig,
    source: Path,
    mapping_path: Path,
    encoder: Encoder | None = None,
    progress=_no_progress,
    log: Callable[[dict], None] = lambda _e: None,
    now: datetime | None = None,
    sheet: str | None = None,
) -> dict:
    """Run one refresh and return its run record (``status``: published / nothing-to-do).

    ``sheet`` names the workbook sheet of an XLSX source (default: the mapping's, else the first).

    Raises
    ------
    RefreshLockedError
        Another refresh is running (no record is written).
    ShrinkGuardError, MatcherError, any exception
        The step failed; the record (status ``failed``) is saved before the error propagates.
    """
    now = now or datetime.now(timezone.utc)
    source = Path(source)
    with refresh_lock(config.lock_path):
        recover(config, log)
        run = Run.start(config, source, mapping_path, now, log)
        try:
            return _refresh(run, config, source, mapping_path, encoder, progress, now, sheet)
        except BaseException as exc:
            kind = "shrink-guard" if isinstance(exc, ShrinkGuardError) else type(exc).__name__
            error = {"kind": kind, "step": run.record.get("step"), "message": str(exc) or repr(exc)}
            if not isinstance(exc, MatcherError):
                error["traceback"] = traceback.format_exc()
            for path in run.record.get("staging", []):
                shutil.rmtree(path, ignore_errors=True)
            run.finish("failed", error=error)
            exc.run_record = run.record
            raise


def _refresh(run: Run, config: RefreshConfig, source: Path, mapping_path: Path, encoder, progress, now,
             sheet: str | None = None) -> dict:
    bc = config.build
    rec = run.record
    parent_dir = artifacts.version_dir(bc.artifacts_dir)
    parent = json.loads((parent_dir / artifacts.MANIFEST).read_text())
    rec["parent_version"] = parent["version"]
    model_card = _read_json(parent_dir / "model_card.json")

    with run.step("ingest") as entry:
        snapshot, how = _snapshot_for(run, config, source, mapping_path, parent, parent_dir, now, sheet)
        entry["snapshot"] = how
        rec["snapshot_id"] = snapshot.snapshot_id
        rec["source"]["sha256"] = snapshot.manifest["source"]["sha256"]
        counts = snapshot.manifest["counts"]
        rec["counts"]["quarantined"] = counts["quarantined_rows"]
        rec["quarantine"] = _quarantine_summary(snapshot, counts)

    with run.step("diff") as entry:
        # The id and hash columns only (Arrow): neither table is read into pandas.
        diff = diff_keys(enterprise_keys(parent_dir / C.ENTERPRISES_FILE), enterprise_keys(snapshot.enterprises_path))
        rec["counts"].update({k: v for k, v in diff.counts().items() if k not in ("before", "after")},
                             enterprises=diff.after, enterprises_before=diff.before)
        chain_sha = hashlib.sha256(bc.chain_map.read_bytes()).hexdigest()
        key = encoder.key if encoder is not None else encoder_key(bc.embedding_model, bc.embedding_precision)
        # The published IVF layout is kept while the size drifts within 2x (refresh_version does the same).
        new_factory = refresh_factory(parent["index"]["factory"],
                                      choose_factory(diff.after, bc.exact_index_max, bc.index_factory, bc.hnsw_index_max))
        inputs_same = (chain_sha == parent["chain_map"]["sha256"] and key == parent["embedding"]["key"])
        # Gaps declared, edited, closed or reopened in the service since the parent was published:
        # the gap list (and the standing lists) are made again; nothing needs re-embedding for it.
        published_gaps = parent["chain_map"].get("database_gaps", {}).get("sha256", gap_rows_sha256([]))
        gaps_changed = gap_rows_sha256(stored_gap_rows(bc.database_url)) != published_gaps
        entry.update(diff.counts(), chain_map_changed=chain_sha != parent["chain_map"]["sha256"],
                     embedding_changed=key != parent["embedding"]["key"], database_gaps_changed=gaps_changed)
        if diff.removed_share > config.policy.max_shrink_share and not config.allow_shrink:
            raise ShrinkGuardError(
                f"{source}: {len(diff.removed)} of {diff.before} enterprises ({diff.removed_share:.1%}) are gone, more than "
                f"{config.policy.max_shrink_share:.0%}; a truncated export must not wipe the universe. Nothing was published; "
                "if the shrink is real, rerun with --allow-shrink"
            )
    outcome_rows, outcome_files = _outcome_sources(config, model_card, parent_dir)
    due, why = retrain_plan(config.policy, model_card, snapshot.snapshot_id, outcome_rows)
    data_changed = diff.changed > 0 or not inputs_same or new_factory != parent["index"]["factory"] or gaps_changed

    version = parent["version"]
    if data_changed:
        version = build_refreshed_version(run, config, snapshot, parent, parent_dir, diff, inputs_same, encoder, progress,
                                          now)
    rec["models"] = {"retrain_due": due, "reason": why}
    if model_card:
        rec["models"]["published_model"] = {
            "ranker": model_card.get("ranker"), "trained_on_snapshot": model_card.get("data", {}).get("snapshot_id"),
            "outcomes_used": model_card.get("data", {}).get("outcomes_used"),
            "metrics": model_card.get("evaluation", {}).get("metrics"), "growth": model_card.get("growth", {}).get("metrics"),
        }
    if due:
        with run.step("retrain") as entry:
            report = _retrain(config, outcome_files)
            entry["status"] = report["status"]
            rec["models"].update(status=report["status"], ranker=report.get("ranker"),
                                 growth=report.get("growth", {}).get("status"), reason_not_published=report.get("reason"),
                                 evaluation=report.get("evaluation", {}).get("metrics"))
            if report["status"] == "published":
                version = report["version"]
    if version == parent["version"]:
        rec["version"] = version
        return run.finish("nothing-to-do", reason="the source has no changes against the published version"
                          + ("" if not due else "; retraining published nothing"))
    rec["version"] = version
    with run.step("report") as entry:
        try:
            rec["report"] = version_change_report(config, parent_dir, version)
        except Exception as exc:  # noqa: BLE001 - the version is published; a report failure must not hide that
            rec["report"] = {"error": f"{type(exc).__name__}: {exc}"}
        entry["gaps"] = len(rec["report"].get("gaps", []))
    if config.database_url and config.served_log_retention_days:
        with run.step("prune-served") as entry:
            entry.update(_prune_served_log(run, config))
    return run.finish("published")


def _prune_served_log(run: Run, config: RefreshConfig) -> dict:
    """Served-list log retention after a publish (``matcher db prune-served``), best-effort: the
    version is published; a failure is logged and recorded, never fails the refresh."""
    try:
        result = retention.prune_served_log(config.database_url, config.served_log_retention_days,
                                            actor=Actor(key_id=None, prefix="refresh", role="admin", name="nightly refresh"))
    except Exception as exc:  # noqa: BLE001 - best-effort housekeeping
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        run.log({"event": "prune-served", "status": "failed", "error": message})
        return {"error": message}
    return {**result, "cutoff": result["cutoff"].isoformat()}


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _snapshot_for(run, config, source, mapping_path, parent, parent_dir, now, sheet=None) -> tuple[SnapshotInfo, str]:
    """The snapshot of this source: the published one when the file is the same, one a killed
    refresh already wrote, or a new one (validated like ``matcher ingest``)."""
    bc = config.build
    if not source.is_file():
        raise ArtifactNotFoundError(f"{source}: source file not found")
    source_sha = file_sha256(source)
    mapping = load_mapping(mapping_path)
    # The same file read the same way: the same sheet of a workbook (another sheet is other data).
    wanted_sheet = sheet_to_read(source, sheet or mapping.sheet)

    def same_read(recorded: dict) -> bool:
        return recorded.get("sha256") == source_sha and recorded.get("sheet") == wanted_sheet

    published = parent["snapshot"]
    if same_read(published["source"]):
        return find_snapshot(bc.snapshots_dir, published["snapshot_id"]), "the published version's (same source file)"
    snapshots = list_snapshots(bc.snapshots_dir)
    sequence = {s.snapshot_id: s.manifest.get("sequence", 0) for s in snapshots}
    for info in reversed(snapshots):
        if same_read(info.manifest["source"]) and sequence[info.snapshot_id] > sequence.get(published["snapshot_id"], 0):
            return info, "reused (written by an earlier refresh of this file)"
    previous = enterprise_keys(parent_dir / C.ENTERPRISES_FILE, (S.ENTERPRISE_ID, S.PROFILE_HASH))
    # Only an exact flat index overwrites a changed profile's vector where it is; HNSW and IVF
    # remove it and add it again at the end, with the new enterprises (refresh_version).
    replaces = parent["index"]["factory"] == EXACT_FACTORY

    def order(keys: pa.Table) -> np.ndarray:
        # The new rows in the order the in-place index update leaves them (see refresh_order),
        # from the id and profile-hash columns only.
        row = previous_rows(previous[S.ENTERPRISE_ID], keys[S.ENTERPRISE_ID])
        moved = None
        if not replaces:
            known = np.flatnonzero(row >= 0)
            old_hash = previous[S.PROFILE_HASH].take(pa.array(row[known])).cast(pa.large_string())
            new_hash = keys[S.PROFILE_HASH].take(pa.array(known)).cast(pa.large_string())
            moved = np.zeros(len(row), dtype=bool)
            moved[known] = pc.not_equal(old_hash, new_hash).to_numpy(zero_copy_only=False)
        return refresh_positions(row, moved)

    info = ingest(source, mapping, bc.snapshots_dir, config.max_bad_row_share, mapping_path=mapping_path, now=now, order=order,
                  sheet=sheet, chunk_rows=config.ingest_chunk_rows)
    return info, "new"


def _quarantine_summary(snapshot: SnapshotInfo, counts: dict) -> dict:
    summary = {"rows": counts["quarantined_rows"], "rows_in": counts["rows_in"], "file": None, "reasons": {}}
    path = snapshot.path / "quarantine.csv"
    if counts["quarantined_rows"] and path.is_file():
        quarantine = pd.read_csv(path, dtype=str)
        summary["file"] = str(path)
        summary["reasons"] = {f"{c}: {r}": int(n) for (c, r), n in
                              quarantine.groupby(["column", "reason"]).size().sort_values(ascending=False).head(5).items()}
    return summary


def _train_config(config: RefreshConfig, outcome_files: tuple[Path, ...]):
    from pipelines.train_ranker import TrainConfig

    return TrainConfig(artifacts_dir=config.build.artifacts_dir, snapshots_dir=config.build.snapshots_dir,
                       outcomes=outcome_files, min_outcomes=config.min_outcomes, keep_versions=config.build.keep_versions,
                       database_url=config.database_url)


def _outcome_sources(config: RefreshConfig, model_card: dict | None, parent_dir: Path) -> tuple[int | None, tuple[Path, ...]]:
    """Outcome files for a retrain (given, else those the published model learned from, if they
    still exist) and how many usable labelled outcomes they and the service database hold
    (None: no outcome source at all)."""
    files = config.outcomes or tuple(Path(p) for p in (model_card or {}).get("data", {}).get("outcome_files", []) if Path(p).is_file())
    if not files and not config.database_url:
        return None, ()
    from pipelines.train_ranker import gather_outcomes

    view = VersionView.load(parent_dir)
    known_gaps = {g["gap_id"] for g in view.gaps} | {f"{c}.{s}" for c, s in zip(view.segments["chain_id"], view.segments["segment_id"])}
    usable, _, _ = gather_outcomes(_train_config(config, tuple(files)), view.enterprise_ids(), known_gaps)
    return len(usable), tuple(files)


def _retrain(config: RefreshConfig, outcome_files: tuple[Path, ...]) -> dict:
    from pipelines.train_ranker import train

    return train(_train_config(config, outcome_files))
