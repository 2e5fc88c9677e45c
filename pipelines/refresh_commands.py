"""``matcher refresh``, ``runs``, ``report`` and ``schedule``: the nightly refresh from the command line."""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from matcher.errors import MatcherError
from matcher.settings import Settings
from pipelines.cli_app import ExitCode, HomeOption, JsonOption, RayAddressOpt, app, emit_json, err, out, progress_factory, settings_for
from pipelines.refresh_config import refresh_config
from pipelines.refresh_records import RefreshLockedError, list_runs, load_run
from pipelines.refresh_report import summary_text
from pipelines.refresh_run import ShrinkGuardError, refresh


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


def run_refresh(settings: Settings, source: Path, mapping: Path, allow_shrink: bool, outcomes, sheet: str | None = None) -> tuple[ExitCode, dict]:
    """One refresh from the command line: (exit code, run record)."""
    config = refresh_config(settings, allow_shrink, tuple(outcomes or ()))
    if not Path(mapping).is_file():
        raise MatcherError(f"{mapping}: mapping file not found")
    try:
        record = refresh(config, source, mapping, progress=progress_factory(), log=_log_line, sheet=sheet)
    except RefreshLockedError as exc:
        return ExitCode.LOCKED, {"status": "failed", "error": {"kind": "locked", "message": str(exc)}}
    except MatcherError as exc:
        record = getattr(exc, "run_record", None)
        if record is None:
            raise  # before the run started: invalid invocation or settings (exit 2)
        return (ExitCode.SHRINK_GUARD if isinstance(exc, ShrinkGuardError) else ExitCode.FAILED), record
    except Exception as exc:  # noqa: BLE001 - unexpected: keep the traceback, still exit "failed"
        record = getattr(exc, "run_record", None)
        if record is None:
            raise
        traceback.print_exc()
        return ExitCode.FAILED, record
    return (ExitCode.OK if record["status"] == "published" else ExitCode.NOTHING_TO_DO), record


@app.command("refresh")
def refresh_command(
    source: SourceArg,
    mapping: MappingOpt,
    allow_shrink: ShrinkOpt = False,
    outcomes: OutcomesOpt = None,
    sheet: SheetOpt = None,
    ray_address: RayAddressOpt = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Refresh the published version from a new export: only new and changed profiles are embedded.

    Exit codes: 0 published; 1 failed (the published version keeps serving; see 'matcher report
    latest'); 2 invalid invocation or settings; 3 nothing to do; 4 another refresh is running;
    5 stopped by the shrink guard (rerun with --allow-shrink if the shrink is real).
    """
    code, record = run_refresh(settings_for(home, ray_address=ray_address), source, mapping, allow_shrink, outcomes, sheet)
    if as_json:
        emit_json(record)
    elif "run_id" in record:
        out.print(summary_text(record), markup=False, highlight=False, end="")
    if code in (ExitCode.FAILED, ExitCode.SHRINK_GUARD, ExitCode.LOCKED):
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
    sheet: SheetOpt = None,
    ray_address: RayAddressOpt = None,
    home: HomeOption = None,
) -> None:
    """Refresh nightly in this process (APScheduler); each run is logged as one JSON line.

    The export at SOURCE is read afresh each night. In production prefer cron or a systemd timer
    running 'matcher refresh' (see README); this command is for machines without either.
    """
    hour, minute = parse_at(at)
    settings = settings_for(home, ray_address=ray_address)

    def job() -> None:
        started = time.perf_counter()
        try:
            code, record = run_refresh(settings, source, mapping, allow_shrink, outcomes, sheet)
        except Exception as exc:  # noqa: BLE001 - the scheduler must survive any failed night
            code, record = ExitCode.FAILED, {"status": "failed", "error": {"kind": type(exc).__name__, "message": str(exc)}}
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
