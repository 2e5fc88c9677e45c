"""Nightly refresh: new source -> snapshot -> diff -> re-embed the changed profiles -> update the
index in place (or rebuild) -> chain analysis -> standing prospect lists -> publish -> retrain when
due -> run record with a change report. Commands ``refresh``, ``runs``, ``report``, ``schedule``.

Never broken: each step writes into a snapshot or version staging directory that becomes visible
only by an atomic rename, so a refresh that fails or is killed at any point leaves the published
version serving; the next refresh removes what the dead one left behind and completes the work.
One refresh at a time: an exclusive ``flock`` on the lock file (the kernel drops it when the
holder dies, however it dies); the holder's pid and start time are written into the file.

Exit codes of ``matcher refresh`` (``EXIT_*`` below): 0 published, 1 failed (the published
version is untouched; see the run record), 2 invalid invocation or settings, 3 nothing to do
(the source matches the published version), 4 another refresh holds the lock, 5 stopped by the
shrink guard (rerun with ``--allow-shrink`` if the shrink is real).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import faiss
import numpy as np
import pandas as pd
import typer

from matcher import artifacts, catalog as C, schemas as S
from matcher.artifacts import file_sha256
from matcher.catalog import Catalog
from matcher.chains import chain_words, load_chain_map
from matcher.embedding import EmbeddingCache, Encoder, encode_cached, encoder_key, text_hashes
from matcher.errors import ArtifactNotFoundError, MatcherError, UnknownEntityError
from matcher.index import (
    VectorSearcher, build_index, can_replace, choose_factory, enterprise_faiss_ids, live_mask, load_index,
    recall_at_k, tombstone_count, update_index,
)
from matcher.lexical import LexicalIndex, chinese_share
from matcher.mapping import load_mapping
from matcher.refresh import (
    PROSPECTS_FILE, ReportInputs, RefreshPolicy, SnapshotDiff, change_report, diff_enterprises, index_plan,
    refresh_order, retrain_plan, standing_prospects,
)
from matcher.settings import Settings
from matcher.store import retention
from matcher.store.repo import Actor
from matcher.snapshot import SnapshotInfo, find_snapshot, ingest, list_snapshots, load_enterprises, profile_texts
from pipelines import build_index as B
from pipelines.build_index import BuildConfig, build_config
from pipelines.cli_app import HomeOption, JsonOption, app, emit_json, err, out, progress_factory, settings_for

EXIT_PUBLISHED, EXIT_FAILED, EXIT_USAGE, EXIT_NOTHING_TO_DO, EXIT_LOCKED, EXIT_SHRINK = 0, 1, 2, 3, 4, 5
# Test hook: a refresh SIGKILLs itself when it reaches this step (see tests/e2e/test_refresh_kill.py).
KILL_AT_ENV = "MATCHER_REFRESH_KILL_AT"
MODEL_FILES = (C.RANKER_FILE, C.OUTCOMES_FILE, "model_card.json", "model_card.md", "growth_model.joblib")
RECALL_QUERIES = 200
STALE_STAGING_S = 6 * 3600  # a staging directory not written for this long belongs to a dead process
SMALL_BATCH = 256  # fewer profiles to embed than this: the PyTorch backend (starts faster)


class RefreshLockedError(MatcherError):
    """Another refresh holds the lock."""


class ShrinkGuardError(MatcherError):
    """The new source lost more enterprises than the policy allows."""


@dataclass(frozen=True)
class RefreshConfig:
    """Plain values a refresh needs (the CLI fills them from Settings)."""

    build: BuildConfig
    runs_dir: Path
    lock_path: Path
    max_bad_row_share: float = 0.05
    policy: RefreshPolicy = field(default_factory=RefreshPolicy)
    allow_shrink: bool = False
    outcomes: tuple[Path, ...] = ()
    min_outcomes: int = 200
    database_url: str | None = None  # the service database: its outcomes and review verdicts count too
    served_log_retention_days: int = 0  # prune the service's served-list log after a publish; 0: never


def refresh_config(settings: Settings, allow_shrink: bool = False, outcomes: tuple[Path, ...] = ()) -> RefreshConfig:
    build = build_config(settings)
    policy = RefreshPolicy(
        max_shrink_share=settings.refresh_max_shrink_share, rebuild_change_share=settings.refresh_rebuild_change_share,
        max_tombstone_share=settings.refresh_max_tombstone_share, min_recall=settings.refresh_min_recall,
        retrain=settings.refresh_retrain, retrain_min_new_outcomes=settings.refresh_retrain_min_new_outcomes,
    )
    # As 'matcher train' does: the service database when one is configured or the workspace has one.
    use_db = settings.database_url is not None or (settings.home / "matcher.db").is_file()
    return RefreshConfig(build=build, runs_dir=settings.runs_dir, lock_path=settings.refresh_lock_path,
                         max_bad_row_share=settings.max_bad_row_share, policy=policy, allow_shrink=allow_shrink,
                         outcomes=tuple(outcomes), min_outcomes=settings.min_outcomes,
                         database_url=settings.db_url if use_db else None,
                         served_log_retention_days=settings.served_log_retention_days)


# ------------------------------------------------------------------------------ lock and records


@contextmanager
def refresh_lock(path: Path):
    """Exclusive, non-blocking ``flock``; the kernel releases it when the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown holder"
            raise RefreshLockedError(
                f"another refresh is running ({holder}); lock {path}. Wait for it to finish "
                "(a killed holder releases the lock automatically)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
    os.replace(tmp, path)


def list_runs(runs_dir: Path) -> list[dict]:
    """Run records, oldest first."""
    if not runs_dir.is_dir():
        return []
    records = []
    for path in sorted(runs_dir.glob("*/record.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return records


def load_run(runs_dir: Path, run_id: str) -> dict:
    if run_id == "latest":
        runs = list_runs(runs_dir)
        if not runs:
            raise ArtifactNotFoundError(f"{runs_dir}: no refresh runs yet; run 'matcher refresh SOURCE --mapping M.yaml'")
        return runs[-1]
    path = runs_dir / run_id / "record.json"
    if not path.is_file():
        known = ", ".join(r["run_id"] for r in list_runs(runs_dir)[-5:]) or "none"
        raise UnknownEntityError(f"run '{run_id}' not found in {runs_dir}; 'matcher runs' lists them (latest: {known})")
    return json.loads(path.read_text())


def checkpoint(name: str) -> None:
    """Test hook: SIGKILL this process when ``MATCHER_REFRESH_KILL_AT`` names this point."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class Run:
    """The record of one refresh, saved after every step (so a killed run leaves its trace)."""

    def __init__(self, config: RefreshConfig, record: dict, log: Callable[[dict], None]):
        self.config = config
        self.record = record
        self.log = log
        self.dir = config.runs_dir / record["run_id"]
        self.started = time.perf_counter()

    @classmethod
    def start(cls, config: RefreshConfig, source: Path, mapping: Path, now: datetime, log) -> "Run":
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{os.getpid()}"
        n = 1
        while (config.runs_dir / run_id).exists():
            n += 1
            run_id = f"{now:%Y%m%dT%H%M%SZ}-{os.getpid()}-{n}"
        record = {
            "run_id": run_id, "status": "running", "step": None, "started_at": now.isoformat(timespec="seconds"),
            "finished_at": None, "pid": os.getpid(), "source": {"path": str(Path(source).resolve())},
            "mapping": str(mapping), "home": str(config.build.artifacts_dir.parent.parent),
            "parent_version": None, "version": None, "snapshot_id": None,
            "counts": {k: 0 for k in ("enterprises", "added", "removed", "changed_text", "changed_other", "unchanged",
                                      "embedded", "reused_vectors", "quarantined")},
            "steps": [], "staging": [],
        }
        run = cls(config, record, log)
        run.save()
        return run

    def save(self) -> None:
        _write_json(self.dir / "record.json", self.record)

    @contextmanager
    def step(self, name: str):
        """Time a step, log its start and end, record it; honour the kill test hook."""
        self.record["step"] = name
        self.save()
        self.log({"event": "step", "step": name, "status": "started"})
        checkpoint(name)
        t = time.perf_counter()
        entry = {"step": name}
        yield entry
        entry["seconds"] = round(time.perf_counter() - t, 3)
        self.record["steps"].append(entry)
        self.save()
        self.log({"event": "step", "step": name, "status": "done", "seconds": entry["seconds"]})

    def finish(self, status: str, **extra) -> dict:
        self.record.update(status=status, step=None, finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           seconds=round(time.perf_counter() - self.started, 3), **extra)
        self.record["timings"] = {s["step"]: s["seconds"] for s in self.record["steps"]}
        self.save()
        (self.dir / "summary.txt").write_text(summary_text(self.record))
        return self.record


def recover(config: RefreshConfig, log) -> list[str]:
    """Clean up after refreshes that died: mark their records, remove their staging directories.

    Called with the lock held, so no other refresh is writing.
    """
    cleaned = []
    for record in list_runs(config.runs_dir):
        if record.get("status") != "running":
            continue
        for path in record.get("staging", []):
            if Path(path).exists():
                shutil.rmtree(path, ignore_errors=True)
                cleaned.append(path)
        published = record.get("published_base")
        record.update(status="failed", finished_at=None,
                      error={"kind": "interrupted", "step": record.get("step"),
                             "message": f"the refresh stopped during step '{record.get('step')}' (process killed or machine "
                                        "down); " + (f"version {published} had been published, the rest was not done"
                                                     if published else "the published version was not changed")})
        _write_json(config.runs_dir / record["run_id"] / "record.json", record)
        log({"event": "recovered", "run_id": record["run_id"], "step": record.get("step")})
    # Other staging directories may belong to a 'matcher build' or 'matcher train' running now;
    # only ones untouched for hours are left over from a dead process.
    for directory in (config.build.snapshots_dir, config.build.artifacts_dir):
        for tmp in directory.glob(".tmp-*") if directory.is_dir() else ():
            if time.time() - tmp.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(tmp, ignore_errors=True)
                cleaned.append(str(tmp))
    cache_root = config.build.cache_dir / "embeddings"
    for tmp in cache_root.glob("*/.tmp-*") if cache_root.is_dir() else ():
        pid = tmp.name.split("-")[1] if tmp.name.count("-") >= 2 else ""
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            tmp.unlink(missing_ok=True)
    return cleaned


# ------------------------------------------------------------------------------------ the run


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
        before = pd.read_parquet(parent_dir / C.ENTERPRISES_FILE)
        after = load_enterprises(snapshot)
        diff = diff_enterprises(before, after)
        rec["counts"].update({k: v for k, v in diff.counts().items() if k not in ("before", "after")},
                             enterprises=diff.after, enterprises_before=diff.before)
        chain_sha = hashlib.sha256(bc.chain_map.read_bytes()).hexdigest()
        key = encoder.key if encoder is not None else encoder_key(bc.embedding_model, bc.embedding_precision)
        new_factory = choose_factory(diff.after, bc.exact_index_max, bc.index_factory)
        inputs_same = (chain_sha == parent["chain_map"]["sha256"] and key == parent["embedding"]["key"])
        entry.update(diff.counts(), chain_map_changed=chain_sha != parent["chain_map"]["sha256"],
                     embedding_changed=key != parent["embedding"]["key"])
        if diff.removed_share > config.policy.max_shrink_share and not config.allow_shrink:
            raise ShrinkGuardError(
                f"{source}: {len(diff.removed)} of {diff.before} enterprises ({diff.removed_share:.1%}) are gone, more than "
                f"{config.policy.max_shrink_share:.0%}; a truncated export must not wipe the universe. Nothing was published; "
                "if the shrink is real, rerun with --allow-shrink"
            )
    outcome_rows, outcome_files = _outcome_sources(config, model_card, parent_dir)
    due, why = retrain_plan(config.policy, model_card, snapshot.snapshot_id, outcome_rows)
    data_changed = diff.changed > 0 or not inputs_same or new_factory != parent["index"]["factory"]

    version = parent["version"]
    if data_changed:
        version = _build_version(run, config, snapshot, parent, parent_dir, before, after, diff, inputs_same,
                                 encoder, progress, now)
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
            rec["report"] = _change_report(config, parent_dir, version, before, snapshot)
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
    published = parent["snapshot"]
    if published["source"].get("sha256") == source_sha:
        return find_snapshot(bc.snapshots_dir, published["snapshot_id"]), "the published version's (same source file)"
    snapshots = list_snapshots(bc.snapshots_dir)
    sequence = {s.snapshot_id: s.manifest.get("sequence", 0) for s in snapshots}
    for info in reversed(snapshots):
        if info.manifest["source"].get("sha256") == source_sha and sequence[info.snapshot_id] > sequence.get(published["snapshot_id"], 0):
            return info, "reused (written by an earlier refresh of this file)"
    mapping = load_mapping(mapping_path)
    previous_ids = pd.read_parquet(parent_dir / C.ENTERPRISES_FILE, columns=[S.ENTERPRISE_ID, S.PROFILE_HASH])
    hnsw = "HNSW" in parent["index"]["factory"]

    def order(enterprises: pd.DataFrame) -> pd.DataFrame:
        # Profiles an HNSW index cannot overwrite are re-added at the end (see refresh_order).
        moved = set()
        if hnsw:
            merged = enterprises[[S.ENTERPRISE_ID, S.PROFILE_HASH]].merge(previous_ids, on=S.ENTERPRISE_ID, suffixes=("", "_old"))
            moved = set(merged.loc[merged[S.PROFILE_HASH] != merged[S.PROFILE_HASH + "_old"], S.ENTERPRISE_ID])
        return refresh_order(previous_ids[S.ENTERPRISE_ID], enterprises, moved)

    info = ingest(source, mapping, bc.snapshots_dir, config.max_bad_row_share, mapping_path=mapping_path, now=now, order=order,
                  sheet=sheet)
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
    usable, _, _ = gather_outcomes(_train_config(config, tuple(files)), set(view.enterprises[S.ENTERPRISE_ID]), known_gaps)
    return len(usable), tuple(files)


def _retrain(config: RefreshConfig, outcome_files: tuple[Path, ...]) -> dict:
    from pipelines.train_ranker import train

    return train(_train_config(config, outcome_files))


def _build_version(run: Run, config: RefreshConfig, snapshot: SnapshotInfo, parent: dict, parent_dir: Path,
                   before: pd.DataFrame, after: pd.DataFrame, diff: SnapshotDiff, inputs_same: bool,
                   encoder, progress, now) -> str:
    """Embed, index, analyse, stage and publish the refreshed version; returns its name."""
    bc = config.build
    rec = run.record
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if not inputs_same:
        # A new chain map or embedding model changes every derived vector: a full build (the
        # embedding cache still spares every profile embedded before).
        with run.step("build") as entry:
            entry["reason"] = "chain map or embedding model changed: full build"
            version, manifest = B.build(bc, snapshot.snapshot_id, encoder=encoder, progress=progress, now=now)
            rec["counts"].update(embedded=manifest["counts"]["embedded"], reused_vectors=manifest["counts"]["reused_vectors"])
            rec["index"] = {"mode": "rebuild", "reason": entry["reason"], "factory": manifest["index"]["factory"]}
        return version

    encoder_box: dict = {"encoder": encoder, "todo": 0}

    def get_encoder() -> Encoder:
        if encoder_box["encoder"] is None:
            # Through the build module, so whoever provides the build's encoder provides this one.
            # A few hundred profiles: PyTorch starts in a fraction of the time OpenVINO spends
            # compiling (same vectors to cosine 0.9999; the cache key does not include the backend).
            backend = "torch" if encoder_box["todo"] < SMALL_BATCH else bc.embedding_backend
            encoder_box["encoder"] = B.Encoder(bc.embedding_model, bc.embedding_precision, bc.embedding_batch_size,
                                               backend=backend)
        return encoder_box["encoder"]

    with run.step("embed") as entry:
        t = time.perf_counter()
        after.insert(0, S.FAISS_ID, enterprise_faiss_ids(after[S.ENTERPRISE_ID]))
        old_vectors = np.load(parent_dir / C.VECTORS_FILE, mmap_mode="r")
        old_row = pd.Index(before[S.ENTERPRISE_ID]).get_indexer(after[S.ENTERPRISE_ID])
        fresh = np.flatnonzero((old_row < 0) | after[S.ENTERPRISE_ID].isin(set(diff.changed_text)).to_numpy())
        vectors = np.empty((len(after), int(parent["embedding"]["dim"])), dtype=np.float32)
        keep = np.setdiff1d(np.arange(len(after)), fresh)
        vectors[keep] = old_vectors[old_row[keep]]
        embedded = 0
        if len(fresh):
            cache = EmbeddingCache(bc.cache_dir / "embeddings" / parent["embedding"]["key"], int(parent["embedding"]["dim"]))
            hashes = after[S.PROFILE_HASH].to_numpy()[fresh].tolist()
            todo = len({hashes[i] for i in cache.missing(hashes)})
            encoder_box["todo"] = todo
            texts = profile_texts(after.iloc[fresh])
            if todo:
                vectors[fresh], embedded = encode_cached(get_encoder(), cache, texts, hashes,
                                                         progress=progress("embedding new and changed profiles", todo))
            else:
                vectors[fresh] = cache.get(hashes)
            entry["cache_hits"] = len(fresh) - todo
        rec["counts"].update(embedded=embedded, reused_vectors=len(after) - embedded, profiles_to_embed=int(len(fresh)))
        entry.update(embedded=embedded, profiles=int(len(fresh)))
        timings["embed_s"] = time.perf_counter() - t

    with run.step("index") as entry:
        t = time.perf_counter()
        index, table, table_vectors, info = _update_or_rebuild(config, parent, parent_dir, after, vectors, diff)
        rec["index"] = info
        entry.update(info)
        timings["index_s"] = time.perf_counter() - t

    chain_map = load_chain_map(bc.chain_map)
    with run.step("lexical"):
        t = time.perf_counter()
        lexical = LexicalIndex.build(profile_texts(table), words=chain_words(chain_map))  # as a full build
        timings["lexical_s"] = time.perf_counter() - t

    with run.step("chains") as entry:
        t = time.perf_counter()
        segment_vectors = np.load(parent_dir / C.SEGMENT_VECTORS_FILE)
        keyword_vectors = np.load(parent_dir / C.KEYWORD_VECTORS_FILE)
        old_gaps = json.loads((parent_dir / C.GAPS_FILE).read_text())
        old_gap_vectors = np.load(parent_dir / C.GAP_VECTORS_FILE)
        known = {g["text"]: old_gap_vectors[i] for i, g in enumerate(old_gaps) if g["segment_id"] is None}

        def encode_texts(texts: list[str]) -> np.ndarray:
            if all(t in known for t in texts):
                return np.stack([known[t] for t in texts])
            # New gap texts go through the embedding cache, as a full build's do.
            cache = EmbeddingCache(bc.cache_dir / "embeddings" / parent["embedding"]["key"], int(parent["embedding"]["dim"]))
            hashes = text_hashes(texts)
            return cache.get(hashes) if not cache.missing(hashes) else encode_cached(get_encoder(), cache, texts, hashes)[0]

        analysis, gap_vectors = B.analyse(bc, chain_map, table, table_vectors, segment_vectors, encode_texts, lexical)
        entry["gaps"] = len(analysis.gaps)
        timings["chains_s"] = time.perf_counter() - t

    with run.step("stage") as entry:
        version = B.new_version_name(bc, now, snapshot, parent["embedding"]["key"], info["factory"])
        staged = artifacts.staging_dir(bc.artifacts_dir, version)
        rec["staging"].append(str(staged))
        run.save()
        B.write_version_files(bc, staged, index=index, vectors=table_vectors, enterprises=table, lexical=lexical,
                              analysis=analysis, gap_vectors=gap_vectors, segment_vectors=segment_vectors,
                              keyword_vectors=keyword_vectors)
        models = _carry_models(parent_dir, staged, parent, table)
        rec["models_carried"] = models
        manifest = B.base_manifest(bc, now, snapshot, chain_map, parent["embedding"], info["factory"], index, table,
                                   analysis, embedded=rec["counts"]["embedded"], reused=rec["counts"]["reused_vectors"])
        manifest["index"].update({k: info[k] for k in ("mode", "reason", "recall_at_10") if k in info})
        manifest["lexical"] = {"tokenizer": lexical.tokenizer, "words": len(lexical.words)}
        chinese = chinese_share(table[S.DESCRIPTION].fillna(""))  # gaps are matched in their firms' language
        manifest["languages"] = {"chinese_share": round(chinese, 4), "note": B.language_note(bc.embedding_model, chinese)}
        for key in ("ranker", "growth"):
            if key in parent:
                manifest[key] = parent[key]
        manifest["parent_version"] = parent["version"]
        manifest["refresh"] = {"run_id": rec["run_id"], "diff": diff.counts(), "index_mode": info["mode"]}
        manifest = B.finish_version(bc, staged, version, manifest, timings, started)
        entry["version"] = version
        checkpoint("staged")  # a complete staged version, not yet published
    with run.step("publish"):
        artifacts.publish(bc.artifacts_dir, staged, version, bc.keep_versions)
        rec["staging"].remove(str(staged))
        rec["published_base"] = version
        run.save()
    return version


def _update_or_rebuild(config: RefreshConfig, parent: dict, parent_dir: Path, after: pd.DataFrame, vectors: np.ndarray,
                       diff: SnapshotDiff) -> tuple[faiss.Index, pd.DataFrame, np.ndarray, dict]:
    """The refreshed index with its enterprise table and vectors in row (live position) order."""
    bc = config.build
    factory = choose_factory(len(after), bc.exact_index_max, bc.index_factory)
    old_index = load_index(parent_dir / C.INDEX_FILE, bc.hnsw_ef_search)
    tombstones = tombstone_count(old_index)
    mode, reason = index_plan(diff, parent["index"]["factory"], factory, int(old_index.ntotal), tombstones, config.policy)
    info = {"mode": mode, "reason": reason, "factory": factory}
    ids = after[S.FAISS_ID].to_numpy()
    if mode == "in-place":
        index = old_index
        row_of = pd.Index(ids)
        changed = enterprise_faiss_ids(diff.changed_text)
        added = enterprise_faiss_ids(diff.added)
        removed = enterprise_faiss_ids(diff.removed)
        if can_replace(index):
            how = update_index(index, removed, vectors[row_of.get_indexer(added)], added,
                               replace_ids=changed, replace_vectors=vectors[row_of.get_indexer(changed)])
        else:
            appended = np.concatenate([changed, added])
            how = update_index(index, np.concatenate([removed, changed]), vectors[row_of.get_indexer(appended)], appended)
        live_ids = faiss.vector_to_array(index.id_map)
        live_ids = live_ids[live_ids >= 0]
        order = row_of.get_indexer(live_ids)
        table = after.iloc[order].reset_index(drop=True)
        table_vectors = vectors[order]
        info.update(removal=how, tombstones=tombstone_count(index), ntotal=int(index.ntotal),
                    same_order_as_snapshot=bool(np.array_equal(order, np.arange(len(after)))))
        if "HNSW" in factory:
            recall = _recall(index, table_vectors, parent_dir)
            info["recall_at_10"] = round(recall, 4)
            if recall < config.policy.min_recall:
                info.update(mode="rebuild", reason=f"recall@10 {recall:.3f} after the in-place update is below "
                                                   f"{config.policy.min_recall}", in_place_recall_at_10=round(recall, 4))
                mode = "rebuild"
        if mode == "in-place":
            return index, table, table_vectors, info
    index = build_index(vectors, ids, factory, bc.hnsw_ef_search)
    info.update(tombstones=0, ntotal=int(index.ntotal))
    if "HNSW" in factory:
        info["recall_at_10"] = round(_recall(index, vectors, parent_dir), 4)
    return index, after, vectors, info


def _recall(index: faiss.Index, vectors: np.ndarray, parent_dir: Path) -> float:
    """recall@10 against exact search: the gap vectors plus a seeded sample of profiles as queries."""
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(len(vectors), size=min(RECALL_QUERIES, len(vectors)), replace=False)]
    queries = np.concatenate([np.load(parent_dir / C.GAP_VECTORS_FILE), sample])
    with_one_thread = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return recall_at_k(VectorSearcher(index, vectors), queries, 10)
    finally:
        faiss.omp_set_num_threads(with_one_thread)


def _carry_models(parent_dir: Path, staged: Path, parent: dict, table: pd.DataFrame) -> dict:
    """Carry the published ranking models into the refreshed version: the landing model applies
    to any version (it scores pair features); growth scores are per enterprise, so the growth model
    scores the new table again."""
    carried = {}
    for name in MODEL_FILES:
        if (parent_dir / name).is_file():
            os.link(parent_dir / name, staged / name)
            carried[name] = "carried forward"
    if (parent_dir / "growth_model.joblib").is_file():
        import joblib

        from matcher.growth import growth_features

        model = joblib.load(parent_dir / "growth_model.joblib")
        as_of = pd.to_datetime(table[S.UPDATED_AT]).max()
        scores = model.predict_proba(growth_features(table, as_of))[:, 1].astype(np.float32)
        np.save(staged / C.GROWTH_SCORES_FILE, scores)
        carried[C.GROWTH_SCORES_FILE] = "rescored with the published growth model"
    return carried


@dataclass
class VersionView:
    """What the change report reads of a version (no index or BM25 loaded)."""

    path: Path
    version: str
    enterprises: pd.DataFrame
    gaps: list[dict]
    segments: pd.DataFrame
    assignments: pd.DataFrame
    ranker_name: str

    @classmethod
    def load(cls, path: Path) -> "VersionView":
        manifest = json.loads((path / artifacts.MANIFEST).read_text())
        ranker = ("cold-start" if not (path / C.RANKER_FILE).is_file()
                  else f"landing-model@{manifest.get('ranker', {}).get('trained_in')}")
        return cls(path, manifest["version"], pd.read_parquet(path / C.ENTERPRISES_FILE), json.loads((path / C.GAPS_FILE).read_text()),
                   pd.read_parquet(path / C.SEGMENTS_FILE), pd.read_parquet(path / C.ASSIGNMENTS_FILE), ranker)


def _standing(view: VersionView, config: RefreshConfig) -> pd.DataFrame:
    """A version's standing prospect lists: the stored ones when the version itself ranked them,
    else ranked now (a version trained after it was built carries its parent's lists)."""
    stored = view.path / PROSPECTS_FILE
    if stored.is_file():
        standing = pd.read_parquet(stored)
        # Lists written before they carried their version are trusted when the ranker matches.
        same = standing["ranked_in"] == view.version if "ranked_in" in standing else standing["ranker"] == view.ranker_name
        if len(standing) and same.all():
            return standing
    bc = config.build
    catalog = Catalog.load(view.path, ef_search=bc.hnsw_ef_search, depth=bc.retrieval_depth, dense_weight=bc.dense_weight,
                           dense_weight_zh=bc.dense_weight_zh, check=False)
    return standing_prospects(catalog, bc.standing_top)


def _change_report(config: RefreshConfig, parent_dir: Path, version: str, before: pd.DataFrame, snapshot: SnapshotInfo) -> dict:
    old = VersionView.load(parent_dir)
    new = VersionView.load(config.build.artifacts_dir / version)
    return change_report(ReportInputs(
        standing_before=_standing(old, config), standing_after=_standing(new, config),
        enterprises_before=before, enterprises_after=new.enterprises,
        gaps_before=old.gaps, gaps_after=new.gaps, segments_before=old.segments, segments_after=new.segments,
        assignments_before=old.assignments, assignments_after=new.assignments,
        ranker_before=old.ranker_name, ranker_after=new.ranker_name,
    ))


# ---------------------------------------------------------------------------------- summaries


def summary_text(record: dict, width: int = 100) -> str:
    """One screen for a person: what happened, the counts, and what changed for the gaps."""
    c = record.get("counts", {})
    lines = [f"refresh {record['run_id']}: {record['status'].upper()}"
             + (f" -> version {record['version']}" if record.get("version") else "")
             + (f" (parent {record['parent_version']})" if record.get("parent_version") else "")]
    if record.get("error"):
        e = record["error"]
        lines.append(f"  error in step '{e.get('step')}': {e.get('message')}"[:width * 2])
    if record.get("reason"):
        lines.append(f"  {record['reason']}")
    lines.append(f"  source {Path(record['source']['path']).name} -> snapshot {record.get('snapshot_id')}")
    lines.append(f"  enterprises {c.get('enterprises_before', '?')} -> {c.get('enterprises', '?')}: +{c.get('added', 0)} added, "
                 f"-{c.get('removed', 0)} removed, {c.get('changed_text', 0)} changed text, {c.get('changed_other', 0)} changed "
                 f"other fields; {c.get('embedded', 0)} embedded, {c.get('quarantined', 0)} rows quarantined")
    q = record.get("quarantine") or {}
    if q.get("reasons"):
        lines.append("  quarantine: " + "; ".join(f"{k} ({v})" for k, v in list(q["reasons"].items())[:3]))
    if record.get("index"):
        i = record["index"]
        lines.append(f"  index {i.get('factory')}: {i.get('mode')} ({i.get('reason')})"
                     + (f", recall@10 {i['recall_at_10']:.3f}" if "recall_at_10" in i else ""))
    if record.get("models"):
        m = record["models"]
        lines.append(f"  models: {'retrained: ' + str(m.get('status')) if m.get('retrain_due') else 'kept'} — {m.get('reason')}")
    if record.get("timings"):
        lines.append("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in record["timings"].items())
                     + f"; total {record.get('seconds', 0):.1f}s")
    report = record.get("report") or {}
    if report.get("error"):
        lines.append(f"  change report failed: {report['error']}")
    for gap_id in report.get("gaps_opened", []):
        lines.append(f"  gap opened: {gap_id}")
    for gap_id in report.get("gaps_closed", []):
        lines.append(f"  gap closed: {gap_id}")
    for s in report.get("segments", [])[:5]:
        joined = ", ".join(j["name"] for j in s["joined"][:2])
        lines.append(f"  segment {s['chain_id']}.{s['segment_id']}: strength {s['strength_before']} -> {s['strength_after']} "
                     f"({s['status_before']} -> {s['status_after']})" + (f"; joined: {joined}" if joined else ""))
    changed = [g for g in report.get("gaps", []) if g["entered"] or g["left"] or g["moves"]]
    if report.get("gaps") is not None:
        lines.append(f"  {len(changed)} of {len(report.get('gaps', []))} gaps changed their top 20:")
    for g in changed[:8]:
        line = f"    {g['gap_id']}: +{len(g['entered'])} entered, -{len(g['left'])} left"
        if g["entered"]:
            e = g["entered"][0]
            line += f"; new #{e['rank']} {e['name']} ({', '.join(e['causes'][:2])})"
        elif g["moves"]:
            m = g["moves"][0]
            line += f"; {m['name']} {m['score_before']:.3f} -> {m['score_after']:.3f} ({', '.join(m['causes'][:2])})"
        lines.append(line[: width + 40])
    if len(changed) > 8:
        lines.append(f"    ... {len(changed) - 8} more (matcher report {record['run_id']} --json)")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ commands


def _log_line(event: dict) -> None:
    """Step events: a short line on a terminal, one JSON object per line otherwise."""
    if err.is_terminal:
        if event.get("event") == "step":
            extra = f" ({event['seconds']:.1f} s)" if "seconds" in event else ""
            err.print(f"{event['step']}: {event['status']}{extra}", markup=False, highlight=False)
        return
    sys.stderr.write(json.dumps({"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **event}) + "\n")
    sys.stderr.flush()


SourceArg = Annotated[Path, typer.Argument(help="CSV (UTF-8 or GB18030), XLSX, Parquet or JSONL export of enterprises (the full universe).")]
MappingOpt = Annotated[Path, typer.Option("--mapping", help="YAML column mapping (see data/mappings/).")]
SheetOpt = Annotated[Optional[str], typer.Option("--sheet", help="Workbook sheet to read (default: the mapping's 'sheet:', else the first sheet).")]
ShrinkOpt = Annotated[bool, typer.Option("--allow-shrink", help="Publish even if more than the allowed share of enterprises is gone.")]
OutcomesOpt = Annotated[Optional[list[Path]], typer.Option(
    "--outcomes", help="Outcome CSVs for a retrain (default: the files the published model learned from); repeatable.")]


def run_refresh(settings: Settings, source: Path, mapping: Path, allow_shrink: bool, outcomes, sheet: str | None = None) -> tuple[int, dict]:
    """One refresh from the command line: (exit code, run record)."""
    config = refresh_config(settings, allow_shrink, tuple(outcomes or ()))
    if not Path(mapping).is_file():
        raise MatcherError(f"{mapping}: mapping file not found")
    try:
        record = refresh(config, source, mapping, progress=progress_factory(), log=_log_line, sheet=sheet)
    except RefreshLockedError as exc:
        return EXIT_LOCKED, {"status": "failed", "error": {"kind": "locked", "message": str(exc)}}
    except MatcherError as exc:
        record = getattr(exc, "run_record", None)
        if record is None:
            raise  # before the run started: invalid invocation or settings (exit 2)
        return (EXIT_SHRINK if isinstance(exc, ShrinkGuardError) else EXIT_FAILED), record
    except Exception as exc:  # noqa: BLE001 - unexpected: keep the traceback, still exit "failed"
        record = getattr(exc, "run_record", None)
        if record is None:
            raise
        traceback.print_exc()
        return EXIT_FAILED, record
    return (EXIT_PUBLISHED if record["status"] == "published" else EXIT_NOTHING_TO_DO), record


@app.command("refresh")
def refresh_command(
    source: SourceArg,
    mapping: MappingOpt,
    allow_shrink: ShrinkOpt = False,
    outcomes: OutcomesOpt = None,
    sheet: SheetOpt = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Refresh the published version from a new export: only new and changed profiles are embedded.

    Exit codes: 0 published; 1 failed (the published version keeps serving; see 'matcher report
    latest'); 2 invalid invocation or settings; 3 nothing to do; 4 another refresh is running;
    5 stopped by the shrink guard (rerun with --allow-shrink if the shrink is real).
    """
    code, record = run_refresh(settings_for(home), source, mapping, allow_shrink, outcomes, sheet)
    if as_json:
        emit_json(record)
    elif "run_id" in record:
        out.print(summary_text(record), markup=False, highlight=False, end="")
    if code in (EXIT_FAILED, EXIT_SHRINK, EXIT_LOCKED):
        err.print(f"error: {record['error']['message']}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command("runs")
def runs_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many of the latest runs.")] = 20,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Past refresh runs, newest last: status, version, counts, duration."""
    runs = list_runs(settings_for(home).runs_dir)[-limit:]
    if as_json:
        emit_json([{k: r.get(k) for k in ("run_id", "status", "version", "parent_version", "snapshot_id", "counts",
                                           "seconds", "started_at", "finished_at", "error")} for r in runs])
        return
    from rich.table import Table

    table = Table(title="Refresh runs", title_justify="left")
    for column in ("run", "status", "version", "added", "removed", "text", "other", "embedded", "seconds"):
        table.add_column(column, no_wrap=column in ("run", "version"))
    for r in runs:
        c = r.get("counts", {})
        table.add_row(r["run_id"], r["status"], r.get("version") or "", *(str(c.get(k, "")) for k in
                      ("added", "removed", "changed_text", "changed_other", "embedded")), f"{r.get('seconds') or 0:.1f}")
    out.print(table)


@app.command("report")
def report_command(
    run_id: Annotated[str, typer.Argument(help="Run id from 'matcher runs' (or 'latest').")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """One refresh run: summary and per-gap change report (the full record with --json)."""
    record = load_run(settings_for(home).runs_dir, run_id)
    if as_json:
        emit_json(record)
    else:
        out.print(summary_text(record), markup=False, highlight=False, end="")


def parse_at(at: str) -> tuple[int, int]:
    try:
        hour, minute = (int(x) for x in at.split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"--at must be HH:MM (24-hour clock), not '{at}'") from None
    return hour, minute


def make_scheduler(hour: int, minute: int, job: Callable[[], None], timezone_name: str | None = None):
    """A blocking APScheduler with one nightly cron job (a missed run is still run within an hour;
    overlapping runs are coalesced)."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    scheduler = BlockingScheduler(timezone=timezone_name) if timezone_name else BlockingScheduler()
    scheduler.add_job(job, CronTrigger(hour=hour, minute=minute, timezone=scheduler.timezone), id="nightly-refresh",
                      max_instances=1, coalesce=True, misfire_grace_time=3600)
    return scheduler


@app.command("schedule")
def schedule_command(
    source: SourceArg,
    mapping: MappingOpt,
    at: Annotated[str, typer.Option("--at", help="Time of day to refresh, HH:MM (24-hour).")] = "02:00",
    tz: Annotated[Optional[str], typer.Option("--timezone", help="IANA time zone of --at [default: the machine's].")] = None,
    run_now: Annotated[bool, typer.Option("--run-now", help="Also refresh once right away.")] = False,
    allow_shrink: ShrinkOpt = False,
    outcomes: OutcomesOpt = None,
    home: HomeOption = None,
) -> None:
    """Refresh nightly in this process (APScheduler); each run is logged as one JSON line.

    The export at SOURCE is read afresh each night. In production prefer cron or a systemd timer
    running 'matcher refresh' (see README); this command is for machines without either.
    """
    hour, minute = parse_at(at)
    settings = settings_for(home)

    def job() -> None:
        started = time.perf_counter()
        try:
            code, record = run_refresh(settings, source, mapping, allow_shrink, outcomes)
        except Exception as exc:  # noqa: BLE001 - the scheduler must survive any failed night
            code, record = EXIT_FAILED, {"status": "failed", "error": {"kind": type(exc).__name__, "message": str(exc)}}
        line = {"event": "scheduled-refresh", "exit_code": code, "status": record.get("status"), "run_id": record.get("run_id"),
                "version": record.get("version"), "counts": record.get("counts"), "seconds": round(time.perf_counter() - started, 1),
                "error": (record.get("error") or {}).get("message")}
        sys.stdout.write(json.dumps(line, default=str) + "\n")
        sys.stdout.flush()

    scheduler = make_scheduler(hour, minute, job, tz)
    if run_now:
        job()
    err.print(f"refreshing {source} daily at {hour:02d}:{minute:02d} ({scheduler.timezone}); Ctrl-C stops", markup=False)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
