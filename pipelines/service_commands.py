"""``matcher serve``, ``matcher keys ...``, ``matcher db upgrade`` and ``matcher db prune-served``."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Annotated, Optional

import typer
from rich.table import Table

from matcher.chain_map import load_chain_map
from matcher.domain import ROLES
from matcher.store import repo
from matcher.store.db import Store, describe, upgrade
from matcher.store.retention import prune_served_log
from pipelines.cli_app import HomeOption, JsonOption, app, emit_json, err, out, settings_for

DatabaseOption = Annotated[
    Optional[str],
    typer.Option("--database-url", help="Database URL [env: DATABASE_URL; default: sqlite file HOME/matcher.db]"),
]


def _settings(home, database_url):
    return settings_for(home, database_url=database_url)


def open_store(home, database_url) -> Store:
    """The migrated database of the workspace."""
    settings = _settings(home, database_url)
    upgrade(settings.db_url)
    return Store(settings.db_url, pool_size=1)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes (one per core is a good start).")] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request as a JSON line (request id, route, status, ms, key prefix; never keys).")] = True,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Run the HTTP service (API at /v1, docs at /docs, review page at /ui)."""
    import uvicorn

    from service.errors import HTTP_PROTOCOL

    settings = _settings(home, database_url)
    before, after = upgrade(settings.db_url)  # once, before any worker starts
    if before != after:
        err.print(f"database {describe(settings.db_url)}: schema {before or 'empty'} -> {after}", markup=False)
    # Workers build their settings from the environment (uvicorn imports the factory anew).
    os.environ["MATCHER_HOME"] = str(settings.home.resolve())
    if settings.database_url:
        os.environ["MATCHER_DATABASE_URL"] = settings.database_url
    os.environ["MATCHER_SERVICE_DB_AUTO_UPGRADE"] = "false"
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics adds up every worker's figures
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="matcher-metrics-")
    options = dict(factory=True, host=host, port=port, workers=workers, log_level=log_level, access_log=False,
                   log_config=log_config(access_log), timeout_graceful_shutdown=20,
                   # A worker that stops answering health pings (hung) is replaced after this long; a
                   # worker importing torch and loading its artifacts may be slow to answer.
                   timeout_worker_healthcheck=120,
                   # Requests the HTTP parser refuses (a 65 KB URL) are answered in the error shape.
                   http=HTTP_PROTOCOL)
    try:
        if workers > 1:
            config = uvicorn.Config("service.app:create_app", **options)
            worker_supervisor()(config, sockets=[config.bind_socket()]).run()
        else:
            uvicorn.run("service.app:create_app", **options)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_supervisor():
    """The supervisor class of ``--workers`` > 1 (uvicorn is imported only when serving)."""
    from uvicorn.supervisors import Multiprocess

    class WorkerSupervisor(Multiprocess):
        """uvicorn's worker supervisor, replacing a worker that died (kill -9, out of memory) within
        a round of its loop (0.5 s) however busy it was.

        uvicorn's parent keeps its copy of each worker's end of the health-check pipe, so a ping
        sent to a worker that dies before answering sees no end-of-file and waits the whole
        ``timeout_worker_healthcheck`` (120 s) — with the loop, and every other worker's check,
        stuck behind it. Closing the parent's copy once the worker runs (it has its own since it
        was spawned) makes that ping return at once; a hung but living worker still gets the
        timeout."""

        def keep_subprocess_alive(self) -> None:
            for process in self.processes:
                if process.process.pid is not None:  # started: the worker holds its own end
                    process.child_conn.close()  # idempotent; uvicorn closes it again on terminate
            super().keep_subprocess_alive()

    return WorkerSupervisor


def log_config(access_log: bool) -> dict:
    """uvicorn's logging plus the service's loggers; the service logs one JSON line per request
    (request id, route, status, time, key prefix and role) instead of uvicorn's access log."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["service"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["service.access"] = {"handlers": ["access_lines"], "level": "INFO" if access_log else "WARNING",
                                           "propagate": False}
    config["formatters"]["plain"] = {"format": "%(message)s"}
    config["handlers"]["access_lines"] = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"}
    return config


keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help=f"{', '.join(ROLES[:-1])} or {ROLES[-1]}.")],
    chain: Annotated[Optional[list[str]], typer.Option(
        "--chain", help="Chain a chain_leader (or general_leader) reviews; repeatable. A general_leader reads every "
                        "chain and reviews only the chains given.")] = None,
    name: Annotated[str, typer.Option("--name", help="Who holds the key (shown in reviews and the audit log).")] = "",
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    settings = _settings(home, database_url)
    known = {c.id for c in load_chain_map(settings.chain_map).chains}
    store = open_store(home, database_url)
    try:
        key, record = repo.create_key(store, role, chain or (), name, known_chains=known)
    finally:
        store.dispose()
    if as_json:
        emit_json({"key": key, **{k: v for k, v in record.items() if k not in ("created_at", "revoked_at")}})
        return
    out.print(key, markup=False, highlight=False)
    err.print(f"key {record['key_id']} ({record['prefix']}, {role}{' for ' + ', '.join(record['chains']) if record['chains'] else ''}): "
              "store it now, it is not shown again", markup=False)


@keys_app.command("list")
def keys_list(home: HomeOption = None, database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List API keys (id, prefix, role, chains, revoked) — never the keys themselves."""
    store = open_store(home, database_url)
    try:
        rows = repo.list_keys(store)
    finally:
        store.dispose()
    if as_json:
        emit_json(rows)
        return
    table = Table(title="API keys", title_justify="left")
    for column in ("id", "prefix", "role", "chains", "name", "created", "revoked"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["key_id"]), r["prefix"], r["role"], ", ".join(r["chains"]), r["name"],
                      f"{r['created_at']:%Y-%m-%d %H:%M}", f"{r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id or prefix (from 'matcher keys list').")],
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke an API key (running services stop accepting it within MATCHER_SERVICE_AUTH_CACHE_S)."""
    store = open_store(home, database_url)
    try:
        row = repo.revoke_key(store, key)
    finally:
        store.dispose()
    if as_json:
        emit_json(row)
    else:
        out.print(f"revoked key {row['key_id']} ({row['prefix']})", highlight=False)


db_app = typer.Typer(help="The service database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(home: HomeOption = None, database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Apply the database migrations (the service also does this when it starts)."""
    settings = _settings(home, database_url)
    before, after = upgrade(settings.db_url)
    if as_json:
        emit_json({"database": describe(settings.db_url), "before": before, "after": after})
    else:
        out.print(f"database {describe(settings.db_url)}: schema {before or 'empty'} -> {after}", highlight=False)


@db_app.command("prune-served")
def db_prune_served(
    older_than: Annotated[Optional[int], typer.Option("--older-than", min=1, metavar="DAYS", help="Prune what is older than this many days (default: MATCHER_SERVED_LOG_RETENTION_DAYS, 180).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")] = False,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete served pages and ranked lists older than the retention, except the lists shortlists,
    reviews or outcomes refer to (training and audit sources are never pruned)."""
    settings = _settings(home, database_url)
    days = older_than or settings.served_log_retention_days
    if not days:
        raise typer.BadParameter("retention is off (MATCHER_SERVED_LOG_RETENTION_DAYS=0); give --older-than DAYS",
                                 param_hint="--older-than")
    result = prune_served_log(settings.db_url, days, dry_run)
    if as_json:
        emit_json({"database": describe(settings.db_url), **result})
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(f"database {describe(settings.db_url)}: served-list log before {result['cutoff']:%Y-%m-%d %H:%M} UTC "
              f"({days} days): {verb} {result['served_deleted']} served pages and {result['lists_deleted']} ranked lists; "
              f"kept {result['lists_protected']} older lists that shortlists, reviews or outcomes refer to and "
              f"{result['lists_kept_served']} served since", highlight=False, soft_wrap=True)
