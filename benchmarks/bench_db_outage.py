"""Requests while the database goes away and comes back, against a real ``matcher serve`` (issue 11).

1. **The service**: ``matcher serve --home HOME --workers W`` as a subprocess, on a throwaway
   PostgreSQL database created on ``--postgres`` (dropped afterwards) or, with ``--database
   sqlite``, on a fresh SQLite file in a temporary directory; keys from ``matcher keys create``, one
   shortlist of the first gap to review.
2. **Load**: ``--clients`` threads, each on ONE keep-alive connection (``http.client``), cycling
   through ``GET /v1/me``, ``GET /v1/gaps/{gap}/prospects?top=20`` (rotating gaps),
   ``GET /v1/shortlists``, ``GET /v1/shortlists/{id}`` and ``POST .../review`` (approve / defer). A
   probe asks ``/health`` and ``/ready`` every 0.25 s on its own connection.
3. **Phases**: ``up`` (``--before`` s), ``down`` (``--outage`` s) and ``back`` (``--after`` s).
   PostgreSQL down = ``ALTER DATABASE ... ALLOW_CONNECTIONS false`` and its sessions terminated (the
   server refusing connections); SQLite down = the database file and its WAL made immutable
   (``chattr +i``, as a read-only remount: reads go on, writes cannot).

Every request needs the database (the key cache and the exclusion poll are off; the per-key quota
is off too, so that the load is not answered 429). Per phase and route: answers by status (2xx,
429, other 4xx, 500, 503, other 5xx), 503s without
``Retry-After`` or the error shape, and connection failures (the server closed or reset a
keep-alive connection: the client reconnects and counts it). Recovery: seconds from the database's
return to each client's first 2xx from a route that needs the database. Targets: no 500 and no
connection failure in any phase, every answer of the outage either 2xx (what needs no database:
/health, or reads on an unwritable SQLite) or a clean 503. Written to
``benchmarks/out/db_outage.json``; the script reports, it never fails on timing.

    python benchmarks/bench_db_outage.py --home /tmp/demo
    python benchmarks/bench_db_outage.py --home /tmp/demo --database sqlite --clients 4 --outage 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_FILE = REPO / "benchmarks" / "out" / "db_outage.json"
MATCHER = [sys.executable, "-m", "pipelines"]
NEEDS_DATABASE = {"me", "shortlists", "shortlist", "review", "prospects"}  # with the auth cache off, all of them


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def matcher_json(*args: str, env: dict) -> dict:
    result = subprocess.run([*MATCHER, *args, "--json"], capture_output=True, text=True, env=env, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"matcher {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return json.loads(result.stdout)


class Database:
    """The service's database and how to take it away and give it back."""

    def __init__(self, kind: str, postgres: str, workdir: Path):
        self.kind = kind
        if kind == "postgresql":
            import psycopg

            self.name = f"matcher_bench_{uuid.uuid4().hex[:10]}"
            self.admin = psycopg.connect(f"{postgres}/postgres", autocommit=True)
            self.admin.execute(f"CREATE DATABASE {self.name}")
            self.url = f"{postgres}/{self.name}"
        else:
            self.path = workdir / "matcher.db"
            self.url = f"sqlite:///{self.path}"

    def take_away(self) -> None:
        if self.kind == "postgresql":
            self.admin.execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
            self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                               "AND pid <> pg_backend_pid()", (self.name,))
        else:
            subprocess.run(["chattr", "+i", *self._files()], check=True)

    def give_back(self) -> None:
        if self.kind == "postgresql":
            self.admin.execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")
        else:
            subprocess.run(["chattr", "-i", *self._files()], check=True)

    def _files(self) -> list[str]:
        return [str(p) for p in (self.path, self.path.with_name(self.path.name + "-wal")) if p.exists()]

    def drop(self) -> None:
        if self.kind == "postgresql":
            self.admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            self.admin.close()


class Tally:
    """Answers per (phase, route) and the time of each client's first database-backed 2xx after the return."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self.phase = "up"
        self.back_at: float | None = None
        self.recovered: dict[int, float] = {}

    def add(self, client: int, route: str, outcome: str) -> None:
        with self.lock:
            phase = self.phase
            self.counts[(phase, route)][outcome] += 1
            if phase == "back" and outcome == "2xx" and route in NEEDS_DATABASE and client not in self.recovered:
                self.recovered[client] = time.monotonic() - self.back_at


def outcome_of(status: int, response, body: bytes) -> str:
    if status < 300:
        return "2xx"
    if status == 429:
        return "429"
    if status < 500:
        return "4xx"
    if status == 503:
        try:
            error = json.loads(body)["error"]
            shaped = bool(error["code"] and error["request_id"])
        except (ValueError, KeyError, TypeError):
            shaped = False
        return "503" if shaped and response.getheader("retry-after") else "503_unshaped"
    return "500" if status == 500 else "5xx_other"


def client_loop(index: int, port: int, keys: dict, plan: dict, tally: Tally, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    gaps, sid, items = plan["gaps"], plan["shortlist_id"], plan["items"]
    step = index
    while not stop.is_set():
        step += 1
        kind = ("me", "prospects", "shortlists", "shortlist", "review")[step % 5]
        body = None
        if kind == "me":
            method, path, who = "GET", "/v1/me", "leader"
        elif kind == "prospects":
            method, path, who = "GET", f"/v1/gaps/{gaps[step % len(gaps)]}/prospects?top=20", "staff"
        elif kind == "shortlists":
            method, path, who = "GET", "/v1/shortlists", "leader"
        elif kind == "shortlist":
            method, path, who = "GET", f"/v1/shortlists/{sid}", "leader"
        else:
            item = items[step % len(items)]
            method, path, who = "POST", f"/v1/shortlists/{sid}/items/{item}/review", "leader"
            body = json.dumps({"verdict": "approve" if step % 2 else "defer"})
        headers = {"Authorization": f"Bearer {keys[who]}", "Content-Type": "application/json"}
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            tally.add(index, kind, "connection_failed")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        tally.add(index, kind, outcome_of(response.status, response, data))
        if response.getheader("connection", "").lower() == "close":
            tally.add(index, kind, "closed_by_server")
    conn.close()


def probe_loop(port: int, tally: Tally, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        for route in ("/health", "/ready"):
            try:
                conn.request("GET", route)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                tally.add(-1, route, "connection_failed")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            outcome = "2xx" if response.status < 300 else f"{response.status}"
            if route == "/ready" and response.status == 503:
                outcome = "503_" + (json.loads(data).get("database") or "none")
            tally.add(-1, route, outcome)
        stop.wait(0.25)
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="workspace with a published version (e.g. 'matcher demo')")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--postgres", default=os.environ.get("MATCHER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server the throwaway database is created on")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=4, help="keep-alive client connections")
    parser.add_argument("--before", type=float, default=10, help="seconds of load with the database up")
    parser.add_argument("--outage", type=float, default=15, help="seconds with the database away")
    parser.add_argument("--after", type=float, default=15, help="seconds of load after it returns")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-db-outage-"))
    database = Database(args.database, args.postgres, workdir)
    env = {**os.environ, "MATCHER_HOME": str(args.home.resolve()), "MATCHER_DATABASE_URL": database.url,
           "MATCHER_SERVICE_AUTH_CACHE_S": "0", "MATCHER_SERVICE_EXCLUSION_POLL_S": "0",
           # The per-key quota would answer most of this load 429: off, to see what the database does.
           "MATCHER_SERVICE_RATE_LIMIT": "off"}
    port = free_port()
    server_log = open(workdir / "serve.log", "w")
    server = None
    try:
        keys = {role: matcher_json("keys", "create", "--role", role, "--name", f"bench {role}", env=env)["key"]
                for role in ("admin", "staff")}
        server = subprocess.Popen([*MATCHER, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
                                   "--no-access-log"], stdout=server_log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                  start_new_session=True)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        deadline = time.monotonic() + 600
        while True:
            try:
                conn.request("GET", "/ready")
                response = conn.getresponse()
                if json.loads(response.read()).get("ready"):
                    break
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"matcher serve did not become ready; see {server_log.name}")
            time.sleep(0.5)

        conn.close()

        def call(method: str, path: str, key: str, body: dict | None = None) -> dict:
            setup = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # idle keep-alives time out
            setup.request(method, path, body=json.dumps(body) if body else None,
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            response = setup.getresponse()
            data = json.loads(response.read())
            setup.close()
            if response.status >= 300:
                raise SystemExit(f"{method} {path}: {response.status} {data}")
            return data

        gaps = call("GET", "/v1/gaps", keys["admin"])["gaps"]
        chain = gaps[0]["chain_id"]
        keys["leader"] = matcher_json("keys", "create", "--role", "chain_leader", "--chain", chain, "--name", "bench leader",
                                      env=env)["key"]
        shortlist = call("POST", "/v1/shortlists", keys["staff"], {"gap_id": gaps[0]["gap_id"], "top": 20})
        plan = {"gaps": [g["gap_id"] for g in gaps], "shortlist_id": shortlist["shortlist_id"],
                "items": [i["item_id"] for i in shortlist["items"]]}

        tally, stop = Tally(), threading.Event()
        threads = [threading.Thread(target=client_loop, args=(i, port, keys, plan, tally, stop), daemon=True)
                   for i in range(args.clients)]
        threads.append(threading.Thread(target=probe_loop, args=(port, tally, stop), daemon=True))
        for t in threads:
            t.start()
        log(f"{args.clients} clients on {args.database}: database up for {args.before:.0f} s")
        time.sleep(args.before)
        with tally.lock:
            tally.phase = "down"
        database.take_away()
        log(f"database away for {args.outage:.0f} s")
        try:
            time.sleep(args.outage)
        finally:
            database.give_back()
            with tally.lock:
                tally.phase, tally.back_at = "back", time.monotonic()
        log(f"database back; load for {args.after:.0f} s")
        time.sleep(args.after)
        stop.set()
        for t in threads:
            t.join(60)
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        server_log.close()
        database.drop()

    phases: dict = {}
    for (phase, route), counts in sorted(tally.counts.items()):
        phases.setdefault(phase, {})[route] = dict(counts)
    totals = {phase: dict(sum((Counter(c) for c in routes.values()), Counter())) for phase, routes in phases.items()}
    recovery = sorted(tally.recovered.values())
    report = {
        "conditions": {"database": args.database, "workers": args.workers, "clients": args.clients, "before_s": args.before,
                       "outage_s": args.outage, "after_s": args.after, "home": str(args.home),
                       "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()}},
        "phases": phases,
        "totals": totals,
        "recovery_s": {"first_client": recovery[0] if recovery else None, "last_client": recovery[-1] if recovery else None,
                       "clients_recovered": len(recovery)},
        "target_met": all(t.get(k, 0) == 0 for t in totals.values()
                          for k in ("500", "5xx_other", "503_unshaped", "connection_failed", "closed_by_server")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for phase in ("up", "down", "back"):
        print(f"{phase:>5}: {json.dumps(totals.get(phase, {}), sort_keys=True)}")
    print(f"recovery: {json.dumps(report['recovery_s'])}; target (no 500, no unshaped 503, no dropped connection): "
          f"{'met' if report['target_met'] else 'NOT met'}; details in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
