"""Database growth per 1,000 prospect requests with distinct filter values (issue 11).

Each request asks a gap's prospects (``top=20``) with filter values no earlier request used
(``min_employees`` 0–4 times ``founded_after`` 1000, 1001, …: values that filter next to nothing
out, so each list is as long as the gap's own), rotating over the gaps: every request is a new
ranked list, as in the probe that found 200 such requests adding 20 MB. The
service runs in-process on the workspace ``--home`` (e.g. ``matcher demo --n 2000 --home H``) with
a fresh database per backend: a SQLite file and, when reachable, a throwaway PostgreSQL database.
Quotas are off (``service_rate_limit="off"``; older code ignores the setting) and the served-list
log is flushed before each measurement.

Measured: the database's size before and after (SQLite: the file after a WAL checkpoint;
PostgreSQL: ``pg_database_size``), the ranked lists and served pages stored, and the candidates
stored in those lists — each scaled to 1,000 requests. Run it on two checkouts to compare code
versions; it reports, and never fails on the figures.

    python benchmarks/bench_db_growth.py --home /tmp/demo
    python benchmarks/bench_db_growth.py --home /tmp/demo --requests 1000 --backends sqlite,postgresql
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from throwaway_db import postgres_database  # beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT_FILE = REPO / "benchmarks" / "out" / "db_growth.json"


@contextmanager
def database(backend: str, directory: Path, postgres: str):
    """A fresh database URL of ``backend`` (PostgreSQL: a throwaway database on ``postgres``)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'growth.db'}"
        return
    with postgres_database(postgres, "matcher_growth") as url:
        yield url


def measure(store) -> dict:
    """Size of the database and what the served-list log holds."""
    with store.engine.connect() as connection:
        if store.backend == "sqlite":
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            page_count = connection.exec_driver_sql("PRAGMA page_count").scalar()
            page_size = connection.exec_driver_sql("PRAGMA page_size").scalar()
            size = int(page_count) * int(page_size)
            items_bytes = connection.exec_driver_sql("SELECT coalesce(sum(length(items)), 0) FROM ranked_lists").scalar()
        else:
            size = connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
            items_bytes = connection.exec_driver_sql(
                "SELECT coalesce(sum(octet_length(items::text)), 0) FROM ranked_lists").scalar()
        lists = connection.exec_driver_sql("SELECT count(*) FROM ranked_lists").scalar()
        served = connection.exec_driver_sql("SELECT count(*) FROM served_lists").scalar()
        candidates = connection.exec_driver_sql("SELECT coalesce(sum(n_items), 0) FROM ranked_lists").scalar()
    return {"bytes": int(size), "ranked_lists": int(lists), "served_pages": int(served),
            "items_json_bytes": int(items_bytes), "candidates_ranked": int(candidates)}


def run_backend(home: Path, url: str, requests: int, top: int) -> dict:
    from fastapi.testclient import TestClient

    from matcher.settings import Settings
    from matcher.store import repo
    from service.app import create_app

    settings = Settings(home=home, database_url=url, service_warm_gaps=False, service_warm_explain_top=0,
                        service_log_flush_s=0.2, service_rate_limit="off")
    app = create_app(settings)
    with TestClient(app) as client:
        deadline = time.monotonic() + 300
        while client.get("/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"{home}: no version loaded after 300 s ({client.get('/ready').json()})")
            time.sleep(0.2)
        state = app.state.svc
        key = repo.create_key(state.store, "staff", name="growth benchmark")[0]
        headers = {"Authorization": f"Bearer {key}"}
        gaps = [g["gap_id"] for g in client.get("/v1/gaps", headers=headers).json()["gaps"]]
        state.writer.flush()
        before = measure(state.store)
        started = time.perf_counter()
        statuses: dict[int, int] = {}
        for i in range(requests):
            # Distinct values that filter (almost) nothing out: every list as long as the gap's own.
            filters = f"min_employees={i % 5}&founded_after={1000 + i // 5}"
            response = client.get(f"/v1/gaps/{gaps[i % len(gaps)]}/prospects?top={top}&{filters}", headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        seconds = time.perf_counter() - started
        state.writer.flush()
        after = measure(state.store)
    scale = 1000 / requests
    growth = {k: after[k] - before[k] for k in before}
    return {"requests": requests, "statuses": statuses, "seconds": round(seconds, 1), "before": before, "after": after,
            "per_1000_requests": {k: round(v * scale) for k, v in growth.items()},
            "items_json_bytes_per_list": round(growth["items_json_bytes"] / max(1, growth["ranked_lists"])),
            "candidates_per_list": round(growth["candidates_ranked"] / max(1, growth["ranked_lists"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a built workspace (matcher demo --home H)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432",
                        help="PostgreSQL server for the throwaway database")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args()

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    results = {"created_at": datetime.now(timezone.utc).isoformat(), "code": str(REPO), "commit": commit,
               "home": str(args.home), "machine": platform.platform(), "python": platform.python_version(),
               "top": args.top, "backends": {}}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="growth-") as directory:
            try:
                with database(backend, Path(directory), args.postgres) as url:
                    result = run_backend(args.home, url, args.requests, args.top)
            except sa.exc.OperationalError as exc:
                print(f"{backend}: skipped ({str(exc.orig or exc).splitlines()[0]})")
                continue
        results["backends"][backend] = result
        per = result["per_1000_requests"]
        print(f"{backend}: per 1,000 distinct-filter requests: database +{per['bytes'] / 1e6:.1f} MB, "
              f"{per['ranked_lists']} ranked lists ({per['items_json_bytes'] / 1e6:.1f} MB of items), "
              f"{per['served_pages']} served pages; statuses {result['statuses']}; {result['seconds']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
