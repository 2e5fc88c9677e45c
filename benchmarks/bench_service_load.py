"""Load on the real service over loopback, driven by wrk, at 200k enterprises.

1. **A 200k universe, published like any version.** The current version of ``--home`` (a
   workspace made by ``matcher demo``: 20k enterprises) is replicated ``--scale`` times: copy ``c``
   of enterprise ``X`` is ``X~c`` with its own FAISS id, a vector that is ``X``'s plus Gaussian noise
   (``--noise`` per dimension, re-normalised), the same texts and metadata, and ``is_local`` false
   (the district's own firms stay the original ones, so the chain analysis, gaps and partners are
   unchanged). The index is rebuilt with the factory the build would choose for that size (HNSW32
   above 20k), BM25 over the replicated texts, growth scores tiled. Every other file of the version
   (chain map, segments, gaps, ranker, outcomes, model card) is copied unchanged; the manifest is
   rewritten with the new counts and hashes and the version is published atomically into
   ``--bench-home`` (``models/matcher/``), where the service loads it like any other.
2. **The service**: ``matcher serve --home BENCH_HOME --host 127.0.0.1 --port P --workers W`` as a
   subprocess, for each ``--workers`` value, with its own SQLite database in the bench home and a
   staff key made by ``matcher keys create``.
3. **Prospect lists**: ``wrk -c 32 -d 60s`` on ``GET /v1/gaps/{id}/prospects?top=20``, rotating over
   every gap of the version (a Lua script adds the ``Authorization`` header and picks the gap).
   Targets: >= 300 requests/s, p99 <= 100 ms, zero errors.
4. **Free-text search**: ``wrk`` on ``POST /v1/prospects/search`` with ``--search-needs`` distinct
   needs (segment keywords of the chain map in varied combinations and wordings). Each wrk thread
   walks its own residue class of the list, so no text is searched twice in a run shorter than
   the list (warned otherwise) and every search is a ranked-list cache miss; the warm-up uses
   other texts. Target: >= 50 requests/s.

wrk's own latency percentiles (HdrHistogram, coordinated omission not corrected) and counts are
read from its ``done()`` hook as JSON. "errors" = socket errors (connect, read, write, timeout)
plus responses with status >= 400. The machine, versions, load average before/after, and the
whole conditions land in ``benchmarks/out/service_load.json``. The script reports; it never fails
on timing. The load generator runs on the same cores as the service (2 here), so the figures are
a lower bound of what the service does on a dedicated 2-core box. Each run also reads the service
processes' own CPU time from /proc (master and workers): CPU milliseconds per request, and the
rate two dedicated cores would sustain at that cost, which other jobs on a shared machine disturb
far less than the request rate.

    python benchmarks/bench_service_load.py --home /tmp/demo --bench-home /tmp/bench200k
    python benchmarks/bench_service_load.py --home /tmp/demo --bench-home /tmp/bench200k --workers 1,2 --duration 60
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_FILE = REPO / "benchmarks" / "out" / "service_load.json"
MATCHER = [sys.executable, "-m", "pipelines"]

TARGET_RPS = 300
TARGET_P99_MS = 100
TARGET_SEARCH_RPS = 50
WARM_NEEDS = 200


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the 200k version


def publish_scaled(base_home: Path, bench_home: Path, scale: int, noise: float, seed: int = 0) -> str:
    """Publish ``scale`` copies of ``base_home``'s current version as the current version of
    ``bench_home`` (see the module docstring); returns the version name."""
    import faiss
    import numpy as np
    import pandas as pd

    from matcher import artifacts
    from matcher import catalog as C
    from matcher import schemas as S
    from matcher.enterprise_table import read_enterprise_table, write_enterprise_table
    from matcher.index import build_index, choose_factory, enterprise_faiss_ids, save_index
    from matcher.lexical import LexicalIndex
    from matcher.settings import Settings
    from matcher.snapshot import profile_texts

    base_dir = artifacts.version_dir(base_home / "models" / "matcher")
    manifest = json.loads((base_dir / artifacts.MANIFEST).read_text())
    fingerprint = hashlib.sha256(f"{manifest['version']}|x{scale}|{noise}|{seed}".encode()).hexdigest()
    target = bench_home / "models" / "matcher"
    for existing in artifacts.list_versions(target):
        made = json.loads((target / existing / artifacts.MANIFEST).read_text()).get("scaled_from", {})
        if made.get("fingerprint") == fingerprint:
            artifacts.set_current(target, existing)
            log(f"reusing scaled version {existing}")
            return existing

    enterprises = read_enterprise_table(base_dir / C.ENTERPRISES_FILE)
    vectors = np.load(base_dir / C.VECTORS_FILE).astype(np.float32)
    n0 = len(enterprises)
    log(f"scaling {base_dir.name}: {n0:,} enterprises x {scale}")
    rng = np.random.default_rng(seed)
    frames, blocks = [enterprises], [vectors]
    for c in range(1, scale):
        frame = enterprises.copy()
        frame[S.ENTERPRISE_ID] = frame[S.ENTERPRISE_ID] + f"~{c}"
        frame[S.IS_LOCAL] = False
        frames.append(frame)
        noisy = vectors + rng.normal(0, noise, vectors.shape).astype(np.float32)
        blocks.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    scaled = pd.concat(frames, ignore_index=True)
    if S.FAISS_ID in scaled.columns:
        scaled[S.FAISS_ID] = enterprise_faiss_ids(scaled[S.ENTERPRISE_ID])
    else:
        scaled.insert(0, S.FAISS_ID, enterprise_faiss_ids(scaled[S.ENTERPRISE_ID]))
    all_vectors = np.ascontiguousarray(np.vstack(blocks), dtype=np.float32)

    settings = Settings()
    factory = choose_factory(len(all_vectors), settings.exact_index_max, settings.index_factory)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    index = build_index(all_vectors, scaled[S.FAISS_ID].to_numpy(), factory, settings.hnsw_ef_search)
    index_s = time.perf_counter() - t
    log(f"built {factory} over {len(all_vectors):,} vectors in {index_s:.0f} s")

    for_texts = scaled.copy()
    for column in S.LIST_COLUMNS:
        if column in for_texts.columns:
            for_texts[column] = for_texts[column].map(lambda v: [] if v is None else list(v))
    t = time.perf_counter()
    lexical = LexicalIndex.build(profile_texts(for_texts))
    lexical_s = time.perf_counter() - t
    log(f"built BM25 over {len(scaled):,} texts in {lexical_s:.0f} s")

    now = datetime.now(timezone.utc)
    version = artifacts.new_version(now, fingerprint)
    target.mkdir(parents=True, exist_ok=True)
    staged = artifacts.staging_dir(target, version)
    replaced = {C.INDEX_FILE, C.VECTORS_FILE, C.ENTERPRISES_FILE, C.LEXICAL_DIR, C.GROWTH_SCORES_FILE, artifacts.MANIFEST}
    for path in base_dir.iterdir():
        if path.name in replaced:
            continue
        (shutil.copytree if path.is_dir() else shutil.copyfile)(path, staged / path.name)
    save_index(index, staged / C.INDEX_FILE)
    np.save(staged / C.VECTORS_FILE, all_vectors)
    write_enterprise_table(scaled, staged / C.ENTERPRISES_FILE)
    lexical.save(staged / C.LEXICAL_DIR)
    if (base_dir / C.GROWTH_SCORES_FILE).is_file():
        np.save(staged / C.GROWTH_SCORES_FILE, np.tile(np.load(base_dir / C.GROWTH_SCORES_FILE), scale))

    new_manifest = {k: v for k, v in manifest.items() if k not in ("files", "version")}
    new_manifest["created_at"] = now.isoformat(timespec="seconds")
    index_info = dict(manifest.get("index", {}))
    index_info.update({"factory": factory, "ntotal": int(index.ntotal), "live": int(index.ntotal), "tombstones": 0,
                       "exact": factory == "IDMap2,Flat"})
    new_manifest["index"] = index_info
    counts = dict(manifest.get("counts", {}))
    counts["enterprises"] = len(scaled)
    new_manifest["counts"] = counts
    new_manifest["scaled_from"] = {"version": manifest["version"], "scale": scale, "noise": noise, "seed": seed,
                                   "fingerprint": fingerprint, "index_s": round(index_s, 1), "lexical_s": round(lexical_s, 1)}
    artifacts.write_manifest(staged, version, new_manifest)
    artifacts.publish(target, staged, version, keep=3)
    log(f"published {version} into {target}")
    return version


# ----------------------------------------------------------------------------- the service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def matcher(*args: str, env: dict) -> str:
    result = subprocess.run([*MATCHER, *args], capture_output=True, text=True, env=env, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"matcher {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def get_json(url: str, key: str | None = None, timeout: float = 10) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Server:
    """``matcher serve`` in its own process group (so all its workers stop together)."""

    def __init__(self, home: Path, workers: int, env: dict, log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_file = open(log_path, "w")
        self.process = subprocess.Popen(
            [*MATCHER, "serve", "--home", str(home), "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"matcher serve exited with {self.process.returncode}; see {self.log_file.name}")
            try:
                ready = get_json(self.base + "/ready", timeout=5)
                if ready.get("ready"):
                    return ready
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"service not ready after {timeout:.0f} s; see {self.log_file.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_file.close()


# ----------------------------------------------------------------------------- wrk

WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write("WRK_JSON " .. string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "p999_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f}',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, latency.mean / 1000) .. "\n")
end
"""


def lua_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal for these texts


def prospects_script(key: str, gap_ids: list[str]) -> str:
    paths = ",\n  ".join(lua_string(f"/v1/gaps/{g}/prospects?top=20") for g in gap_ids)
    return f"""
local paths = {{
  {paths}
}}
local headers = {{["Authorization"] = {lua_string("Bearer " + key)}, ["Accept"] = "application/json"}}
local counter = 0
local threads = 0
setup = function(thread)
  thread:set("offset", threads * 7)
  threads = threads + 1
end
request = function()
  counter = counter + 1
  local i = ((counter + (offset or 0)) % #paths) + 1
  return wrk.format("GET", paths[i], headers)
end
""" + WRK_DONE


def search_script(key: str, needs: list[str], threads: int) -> str:
    """Each wrk thread takes every ``threads``-th need from its own offset, so no need repeats
    within a run shorter than ``len(needs)`` requests: every search is a cache miss (a repeated
    text would be served from the ranked-list cache and flatter the figure)."""
    bodies = ",\n  ".join(lua_string(json.dumps({"text": n, "top": 20})) for n in needs)
    return f"""
local bodies = {{
  {bodies}
}}
local headers = {{["Authorization"] = {lua_string("Bearer " + key)}, ["Content-Type"] = "application/json", ["Accept"] = "application/json"}}
local counter = 0
local threads = 0
local stride = {threads}
setup = function(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
request = function()
  local i = ((counter * stride + (offset or 0)) % #bodies) + 1
  counter = counter + 1
  return wrk.format("POST", "/v1/prospects/search", headers, bodies[i])
end
""" + WRK_DONE


def run_wrk(url: str, script: str, connections: int, threads: int, duration_s: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "load.lua"  # holds the key: private dir, deleted afterwards
        path.write_text(script)
        os.chmod(path, 0o600)
        command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", "--timeout", "10s", "-s", str(path), url]
        result = subprocess.run(command, capture_output=True, text=True)
    line = next((l for l in result.stdout.splitlines() if l.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result ({result.returncode}): {result.stdout[-1000:]} {result.stderr[-1000:]}")
    stats = json.loads(line[len("WRK_JSON "):])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["errors"] = stats["connect"] + stats["read"] + stats["write"] + stats["status"] + stats["timeout"]
    stats.update({"connections": connections, "threads": threads, "duration_s": duration_s})
    return stats


def search_needs(chain_map_path: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct free-text needs from the chain map's segment keywords and descriptions."""
    import yaml

    chain_map = yaml.safe_load(chain_map_path.read_text())
    segments = [s for c in chain_map["chains"] for s in c.get("segments", [])]
    rng = random.Random(seed)
    openers = ["We are looking for", "Need a supplier of", "Seeking companies that provide", "Partner wanted for",
               "Looking to attract a firm doing", "Companies specialised in", "寻找", "Vendors offering"]
    closers = ["for our local manufacturers", "to serve hospitals in Shanghai", "with export experience",
               "for a new industrial park", "", "to support start-ups in the district", "with strong R&D"]
    needs: set[str] = set()
    for attempt in itertools.count():
        if len(needs) >= n or attempt > n * 50:
            break
        segment = rng.choice(segments)
        words = list(segment.get("keywords", [])) or segment.get("description", "").split()[:6]
        picked = rng.sample(words, k=min(len(words), rng.randint(1, 3)))
        needs.add(f"{rng.choice(openers)} {' and '.join(picked)} {rng.choice(closers)}".strip())
    ordered = sorted(needs)
    rng.shuffle(ordered)  # a varied stream (sorted, neighbours share opener and keywords)
    return ordered


# ----------------------------------------------------------------------------- report


def machine_info() -> dict:
    info = {"platform": platform.platform(), "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["lscpu"] = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in lscpu.splitlines() if ":" in l)
                         if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Hypervisor vendor", "L2 cache", "L3 cache")}
    except OSError:
        pass
    info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return info


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "numpy", "pandas", "faiss-cpu", "torch", "sentence-transformers"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    out["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0].strip() if shutil.which("wrk") else None
    return out


def row(label: str, s: dict) -> str:
    return (f"| {label} | {s['connections']} | {s['duration_s']} s | {s['rps']:.1f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
            f"{s['max_ms']:.0f} | {s['errors']} ({s['status']} status, {s['timeout']} timeout) | "
            f"{s.get('server_cpu_ms_per_request', float('nan')):.1f} | {s.get('rps_per_2_cores', float('nan')):.0f} |")


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (the service's
    master and workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state ppid pgrp ... utime(11) stime(12)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measured(server: "Server", run) -> dict:
    """``run()``'s wrk stats plus the service's own CPU time per request: on a machine shared with
    other work (and with wrk) throughput depends on what else runs, CPU per request much less.
    ``rps_per_2_cores`` = 2 cores / CPU per request: the rate two dedicated cores would sustain
    if nothing but the service ran (an upper bound: no load generator, no contention)."""
    pgid = os.getpgid(server.process.pid)
    before = group_cpu_seconds(pgid)
    stats = run()
    cpu = group_cpu_seconds(pgid) - before
    if stats.get("requests"):
        stats["server_cpu_s"] = round(cpu, 2)
        stats["server_cpu_ms_per_request"] = round(1000 * cpu / stats["requests"], 2)
        stats["rps_per_2_cores"] = round(2 * stats["requests"] / cpu, 1) if cpu > 0 else None
    return stats


def threads_label(args) -> str:
    return f", {args.server_threads} thread(s) each" if args.server_threads else ""


def prospects_run(server: "Server", key: str, gap_ids: list[str], workers: int, startup_s: float, args, report: dict) -> None:
    run_wrk(server.base, prospects_script(key, gap_ids), args.connections, args.threads, args.warmup)
    load_before = os.getloadavg()
    stats = measured(server, lambda: run_wrk(server.base, prospects_script(key, gap_ids), args.connections, args.threads, args.duration))
    stats.update({"route": "GET /v1/gaps/{id}/prospects?top=20", "workers": workers, "startup_s": round(startup_s, 1),
                  "server_threads": args.server_threads, "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
    report["runs"].append(stats)
    print(row(f"prospects, {workers} worker(s){threads_label(args)}", stats), flush=True)


def search_run(server: "Server", key: str, needs: list[str], workers: int, args, report: dict) -> None:
    warm, needs = needs[-WARM_NEEDS:], needs[:-WARM_NEEDS]  # warm-up texts are never searched again
    run_wrk(server.base, search_script(key, warm, args.threads), args.search_connections, args.threads, args.warmup)
    load_before = os.getloadavg()
    stats = measured(server, lambda: run_wrk(server.base, search_script(key, needs, args.threads), args.search_connections,
                                             args.threads, args.search_duration))
    stats["distinct_needs"] = len(needs)
    if stats.get("requests", 0) > len(needs):
        log(f"warning: {stats['requests']} searches over {len(needs)} needs: some repeated (cache hits); raise --search-needs")
    stats.update({"route": "POST /v1/prospects/search", "workers": workers, "server_threads": args.server_threads,
                  "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
    report["runs"].append(stats)
    print(row(f"search, {workers} worker(s){threads_label(args)}", stats), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="workspace with a published version to scale (e.g. 'matcher demo')")
    parser.add_argument("--bench-home", type=Path, required=True, help="workspace the scaled version is published into and served from")
    parser.add_argument("--scale", type=int, default=10, help="copies of the base universe (20k x 10 = 200k)")
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--workers", default="2,1", help="comma-separated 'matcher serve --workers' values to measure")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=60, help="seconds of prospect-list load per worker setting")
    parser.add_argument("--search-connections", type=int, default=8)
    parser.add_argument("--search-duration", type=int, default=30)
    parser.add_argument("--search-needs", type=int, default=20000,
                        help="distinct needs; each is searched at most once, so every search is a cache miss")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of load before each measured run")
    parser.add_argument("--routes", default="prospects,search", help="which loads to run: prospects, search or both")
    parser.add_argument("--server-threads", type=int, default=None,
                        help="OMP/MKL/OpenBLAS threads of the service processes (torch's query encoder included); "
                             "default: unset (the libraries' own default, one per core)")
    args = parser.parse_args()
    routes = {r.strip() for r in args.routes.split(",")}
    if not shutil.which("wrk"):
        print("wrk not installed (apt-get install wrk); skipping", file=sys.stderr)
        return 0

    # No quota: the benchmark's keys are the load (MATCHER_SERVICE_RATE_LIMIT would answer it 429).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MATCHER_SERVICE_RATE_LIMIT": "off"}
    env.pop("DATABASE_URL", None)  # the bench home's own SQLite database
    if args.server_threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(args.server_threads)
    report: dict = {"machine": machine_info(), "versions": versions(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "loadavg_start": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()}}
    t = time.perf_counter()
    version = publish_scaled(args.home, args.bench_home, args.scale, args.noise)
    report["scaled_version"] = version
    report["publish_s"] = round(time.perf_counter() - t, 1)

    staff_key = json.loads(matcher("keys", "create", "--role", "staff", "--name", "load-benchmark", "--json",
                                   "--home", str(args.bench_home), env=env))["key"]
    gaps_file = args.bench_home / "models" / "matcher" / version / "gaps.json"
    gap_ids = [g["gap_id"] for g in json.loads(gaps_file.read_text())]
    chain_map = args.bench_home / "models" / "matcher" / version / "chain_map.yaml"
    needs = search_needs(chain_map, args.search_needs)
    report["gaps"] = len(gap_ids)
    report["search_needs"] = len(needs)

    report["runs"] = []
    print("\n| run | connections | duration | req/s | p50 ms | p99 ms | max ms | errors | service CPU ms/request | req/s per 2 cores |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        log_path = args.bench_home / f"serve-w{workers}.log"
        server = Server(args.bench_home, workers, env, log_path)
        try:
            t = time.perf_counter()
            ready = server.wait_ready()
            startup_s = time.perf_counter() - t
            log(f"workers={workers}: ready in {startup_s:.1f} s, version {ready.get('version')}")
            probe = get_json(f"{server.base}/v1/gaps/{gap_ids[0]}/prospects?top=20", staff_key)
            assert len(probe["results"]) == 20, probe
        except BaseException:
            server.stop()
            raise
        try:
            if "prospects" in routes:
                prospects_run(server, staff_key, gap_ids, workers, startup_s, args, report)
            if "search" in routes:
                search_run(server, staff_key, needs, workers, args, report)
        finally:
            server.stop()

    report["loadavg_end"] = os.getloadavg()
    report["targets"] = {"prospects_rps": TARGET_RPS, "prospects_p99_ms": TARGET_P99_MS, "search_rps": TARGET_SEARCH_RPS}
    for run in report["runs"]:
        if run["route"].startswith("GET"):
            run["meets_target"] = run["rps"] >= TARGET_RPS and run["p99_ms"] <= TARGET_P99_MS and run["errors"] == 0
        else:
            run["meets_target"] = run["rps"] >= TARGET_SEARCH_RPS and run["errors"] == 0
    OUT_FILE.parent.mkdir(exist_ok=True)
    OUT_FILE.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nmachine: {report['machine'].get('lscpu', {}).get('Model name')} x {report['machine']['cores']}, "
          f"load average at start {report['loadavg_start'][0]:.2f}; written {OUT_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
