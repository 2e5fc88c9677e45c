"""Lock and run records of the nightly refresh.

One refresh at a time: an exclusive ``flock`` on the lock file (the kernel drops it when the
holder dies, however it dies); the holder's pid and start time are written into the file. Each run
keeps a record (``runs/<run_id>/record.json``) saved after every step, so a killed run leaves its
trace; the next refresh marks it failed and removes what it left behind (:func:`recover`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from matcher.errors import ArtifactNotFoundError, MatcherError, UnknownEntityError
from pipelines.refresh_config import RefreshConfig
from pipelines.refresh_report import summary_text

# Test hook: a refresh SIGKILLs itself when it reaches this step (see tests/e2e/test_refresh_kill.py).
KILL_AT_ENV = "MATCHER_REFRESH_KILL_AT"
STALE_STAGING_S = 6 * 3600  # a staging directory not written for this long belongs to a dead process


class RefreshLockedError(MatcherError):
    """Another refresh holds the lock."""


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
