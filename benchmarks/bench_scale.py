"""Scale benchmark: ingest, build, refresh and service start-up of a fast sample, size by size.

    python benchmarks/bench_scale.py --sizes 20000 200000 --work /scratch/scale
    python benchmarks/bench_scale.py --sizes 20000 --work /scratch/scale --churn 0.005 --skip-service \
        --results benchmarks/RESULTS.md

For each size ``n``, in order, every heavy step runs in a child process (the ``matcher`` CLI as
``python -m pipelines``, or ``python -c``), whose memory the parent samples from
``/proc/<pid>/status`` about every 0.5 s: peak VmRSS, RssAnon and RssFile (file-backed pages,
such as those of memory-mapped vectors, are reclaimable and shared between workers; anonymous
ones are not), and the peak summed VmRSS of its whole process tree (JSON only). The child's own
``ru_maxrss`` (``os.wait4``) is reported as a cross-check; the samples go to
``WORK/logs/<size>-<step>.memory.tsv``.

1. ``sample``: ``matcher sample --fast --n N --seed 1``, cached in WORK (a rerun skips it).
2. ``ingest``: into a fresh workspace WORK/home-N.
3. ``vectors``: synthetic vectors for every profile of the snapshot straight into the build's
   embedding cache (65,536 rows per shard), mixed from every real profile vector at hand (YC 2024
   and 2023, the A-share companies, the sample region: ``synthetic_vectors.real_pool``, about
   30,000, more than the 16,384 IVF lists of 10M) by ``benchmarks/synthetic_vectors.py``
   (calibrated once, cached in WORK), so the build embeds
   only the chain and gap texts. Without the YC data set (and no YC vectors cached in WORK) the
   benchmark prints why and exits 0.
4. ``build``: ``matcher build --json`` with ``MATCHER_EMBEDDING_BACKEND=torch`` (no backend
   calibration); the manifest's timings and index factory.
5. ``refresh``: the next export, WORK/home-N/next-export (``--churn`` of the rows: a third with a changed description, a
   third removed, a third new), then ``matcher refresh``, which embeds its new and changed
   profiles with the real model (the honest refresh cost). Against it, a PROJECTED full rebuild:
   the measured build wall time (vectors cached) plus n / rate, the rate being profiles per second
   of the real encoder measured in this run on 2,000 of the sample's profiles, through each
   available backend, the fastest counting (as the build's backend calibration would choose).
6. ``service``: one worker's start-up as the service does it (``create_app`` with the default
   service settings and a SQLite database in WORK, under ``TestClient`` until ``/ready``), then a
   prospects query twice (the second warm); seconds to ready, and VmRSS, RssAnon, RssFile and Pss.

Prints one JSON line per step, then a Markdown table with the machine and versions (``--results
FILE`` appends it). Measured figures and projections are labelled; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

MAPPING = ROOT / "data" / "mappings" / "sample.yaml"
CACHE_CHUNK_ROWS = 65_536
STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
GB = 1024**2  # kB per GiB: /proc and ru_maxrss count kilobytes

# Child: the real profile vectors (synthetic_vectors.real_pool) and the mixing calibrated on them (cached in WORK).
PREPARE_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from synthetic_vectors import YC_CSV, calibrate, real_pool
work = Path(sys.argv[1])
if not (work / "yc_vectors.npy").is_file() and not YC_CSV.is_file():
    print(json.dumps({"skipped": f"the YC data set ({YC_CSV}) is not here"}))
    sys.exit(0)
if not (work / "real_pool.npy").is_file():
    real, sources = real_pool(work)
    np.save(work / "real_pool.npy", real)
    (work / "real_pool.json").write_text(json.dumps(sources))
real = np.load(work / "real_pool.npy", mmap_mode="r")
mixing_file = work / "pool_mixing.json"
if not mixing_file.is_file():
    mixing, check = calibrate(np.asarray(real))
    mixing_file.write_text(json.dumps({"mixing": mixing, "check": check}))
print(json.dumps({"real_vectors": len(real), "sources": json.loads((work / "real_pool.json").read_text()),
                  **json.loads(mixing_file.read_text())}))
"""

# Child: synthetic vectors for every profile hash of the newest snapshot, into the build's cache.
VECTORS_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
import pyarrow.parquet as pq
from matcher import schemas as S
from matcher.embedding import EmbeddingCache
from matcher.embedding_models import encoder_key
from matcher.settings import Settings
from matcher.snapshot import find_snapshot
from synthetic_vectors import mix
home, work, chunk_rows = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
settings = Settings(home=home)
snapshot = find_snapshot(settings.snapshots_dir)
column = pq.read_table(snapshot.enterprises_path, columns=[S.PROFILE_HASH]).column(0)
hashes = list(dict.fromkeys(column.to_pylist()))  # identical profiles share one vector
real = np.load(work / "real_pool.npy")
noise, low = json.loads((work / "pool_mixing.json").read_text())["mixing"]
key = encoder_key(settings.embedding_model, settings.embedding_precision)
cache = EmbeddingCache(settings.cache_dir / "embeddings" / key, real.shape[1])
rng = np.random.default_rng(1)
for start in range(0, len(hashes), chunk_rows):
    chunk = hashes[start:start + chunk_rows]
    cache.add(chunk, mix(real, len(chunk), noise, rng, low))
print(json.dumps({"profiles": len(column), "vectors": len(hashes), "cache_key": key, "dim": int(real.shape[1])}))
"""

# Child: the next export of the fast sample (runs here so that the parent stays small; see Step.maxrss_kb).
EXPORT_CHILD = """
import json, sys
from pathlib import Path
from bench_scale import write_next_export
print(json.dumps(write_next_export(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))))
"""

# Child: profiles per second of the real encoder on the given texts, through each backend.
RATE_CHILD = """
import json, sys, time
from pathlib import Path
from bench_scale import profile_texts_of
from matcher.calibration import available_backends
from matcher.embedding import Encoder
texts = profile_texts_of(Path(sys.argv[1]), int(sys.argv[2]))
rates = {}
for backend in available_backends():
    t = time.perf_counter()
    encoder = Encoder(backend=backend)
    encoder.encode(texts[:64])  # first-call costs (OpenVINO compiles for new shapes) are not throughput
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    encoder.encode(texts)
    seconds = time.perf_counter() - t
    rates[encoder.backend] = {"per_s": round(len(texts) / seconds, 1), "seconds": round(seconds, 1),
                              "load_s": round(load_s, 1), "precision": encoder.precision}
print(json.dumps({"texts": len(texts), "rates": rates}))
"""

# Child: one service worker's start-up (load + warm) and a prospects query, cold then warm.
SERVICE_CHILD = """
import time
started = time.perf_counter()
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from matcher.settings import Settings
from matcher.store import repo
from service.app import create_app
imported_s = time.perf_counter() - started
home, database = Path(sys.argv[1]), Path(sys.argv[2])
t = time.perf_counter()
app = create_app(Settings(home=home, database_url=f"sqlite:///{database}"))
with TestClient(app) as client:
    while True:
        response = client.get("/ready")
        if response.status_code == 200:
            break
        if time.perf_counter() - t > 1800:
            raise SystemExit(f"not ready after 1800 s: {response.text}")
        time.sleep(0.05)
    ready_s = time.perf_counter() - t
    version = response.json()["version"]
    key = repo.create_key(app.state.svc.store, "admin", name="bench_scale")[0]
    auth = {"Authorization": f"Bearer {key}"}
    gaps = client.get("/v1/gaps", headers=auth).json()["gaps"]
    queries = []
    for _ in range(2):
        t = time.perf_counter()
        response = client.get(f"/v1/gaps/{gaps[0]['gap_id']}/prospects", headers=auth)
        queries.append({"status": response.status_code, "ms": round(1000 * (time.perf_counter() - t), 1),
                        "results": len(response.json()["results"]) if response.status_code == 200 else None,
                        "total": response.json()["total"] if response.status_code == 200 else None})
    memory = {}
    for name in ("/proc/self/status", "/proc/self/smaps_rollup"):
        for line in Path(name).read_text().splitlines():
            label, _, value = line.partition(":")
            if label in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Pss", "Pss_Anon", "Pss_File"):
                memory[label + "_kb"] = int(value.split()[0])
    from bench_scale import rss_by_file
    top = list(rss_by_file("self").items())[:10]  # which files the file pages are
print(json.dumps({"imported_s": round(imported_s, 1), "ready_s": round(ready_s, 1), "version": version,
                  "gaps": len(gaps), "query_cold": queries[0], "query_warm": queries[1], "memory_after_query": memory,
                  "rss_by_file_mb": {path.replace(str(home), "HOME"): round(kb / 1024) for path, kb in top}}))
"""


@dataclass
class Step:
    """One measured child process: wall time, peak memory, its output."""

    size: int
    name: str
    wall_s: float = 0.0
    peak_kb: dict = field(default_factory=dict)  # VmRSS, RssAnon, RssFile of the child; TreeRSS
    # The child's ru_maxrss (os.wait4). Linux counts the high-water mark of the memory the child
    # had before its exec too, which after subprocess's vfork is the parent's: the parent keeps
    # numpy and pandas out of its own memory so that this floor stays small.
    maxrss_kb: int = 0
    result: dict | None = None
    notes: str = ""
    measured: bool = True

    def record(self) -> dict:
        """The step as one JSON-able dict (memory in GiB)."""
        return {
            "size": self.size, "step": self.name, "measured": self.measured, "wall_s": round(self.wall_s, 1),
            **{f"peak_{k}_gb": round(v / GB, 3) for k, v in self.peak_kb.items()},
            "ru_maxrss_gb": round(self.maxrss_kb / GB, 3), "notes": self.notes, "result": self.result,
        }


class StepFailed(Exception):
    """A child exited with an unexpected code; the rest of its size is skipped."""

    def __init__(self, step: Step):
        super().__init__(step.notes)
        self.step = step


def log(message: str) -> None:
    """A progress line on stderr (stdout carries the JSON lines and the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from ``/proc/<pid>/task/*/children``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(c) for c in handle.read().split())
        except OSError:  # exited meanwhile
            continue
    return found


def rss_by_file(pid: int | str) -> dict[str, int]:
    """Resident kB per mapped file of a process (``/proc/<pid>/smaps``), largest first; empty
    when the process is gone."""
    by_file, mapping = {}, None
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            mapping = head[5] if len(head) > 5 and head[5].startswith("/") else None
        elif head[0] == "Rss:" and mapping:
            by_file[mapping] = by_file.get(mapping, 0) + int(head[1])
    return dict(sorted(by_file.items(), key=lambda kv: -kv[1]))


def read_status(pid: int) -> dict[str, int]:
    """The memory fields of ``/proc/<pid>/status`` in kB (empty when the process is gone)."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                label, _, value = line.partition(":")
                if label in STATUS_FIELDS:
                    values[label] = int(value.split()[0])
    except OSError:
        pass
    return values


class MemorySampler(threading.Thread):
    """Samples a process's VmRSS, RssAnon and RssFile, and its process tree's summed VmRSS
    (``TreeRSS``), every ``interval_s``, keeping the peak of each (peaks of different fields may
    come from different moments) and the samples themselves (``timeline``: seconds since the start,
    VmRSS, RssAnon, RssFile in kB), so a step's memory can be matched to its phases (a build's
    phases are its manifest's timings, in order).

    The table reports the process itself: a short-lived child forked by a library (a
    ``find_library`` probe, say) counts the parent's copy-on-write pages again in the tree's sum
    (seen: 2.7 GB for a 1.9 GB service worker).

    Which files the file pages are: at each new VmRSS peak (at most every ``files_every_s``, unless
    it is 5 % above the last reading) the resident kB per mapped file (:func:`rss_by_file`) are
    read again and kept with the moment (``files_at_peak``)."""

    def __init__(self, pid: int, interval_s: float = 0.5, files_every_s: float = 5.0):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.peak_kb = dict.fromkeys(("VmRSS", "RssAnon", "RssFile", "TreeRSS"), 0)
        self.timeline: list[tuple] = []
        self.files_at_peak: dict = {}
        self.files_every_s = files_every_s
        self._files_read = -files_every_s
        self._t0 = time.monotonic()
        self._stop_event = threading.Event()

    def sample(self) -> None:
        """Add one sample."""
        values = read_status(self.pid)
        values["TreeRSS"] = sum(read_status(pid).get("VmRSS", 0) for pid in process_tree(self.pid))
        now = time.monotonic() - self._t0
        rss = values.get("VmRSS", 0)
        if rss > self.peak_kb["VmRSS"] and (now - self._files_read >= self.files_every_s
                                            or rss > 1.05 * self.files_at_peak.get("VmRSS_kb", 0)):
            self._files_read = now
            top = list(rss_by_file(self.pid).items())[:8]
            self.files_at_peak = {"seconds": round(now, 1), "VmRSS_kb": values["VmRSS"],
                                  "RssAnon_kb": values.get("RssAnon", 0), "files_kb": dict(top)}
        for name in self.peak_kb:
            self.peak_kb[name] = max(self.peak_kb[name], values.get(name, 0))
        if values.get("VmRSS"):
            self.timeline.append((round(now, 1),
                                  *(values.get(name, 0) for name in ("VmRSS", "RssAnon", "RssFile"))))

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop_event.is_set():
            self.sample()
            # Denser for the first seconds, so that a short step is sampled more than once.
            self._stop_event.wait(self.interval_s if time.monotonic() - started > 5 else self.interval_s / 5)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def child_env(**extra: str) -> dict:
    """The environment of a child: this checkout's code first, no network for the model."""
    paths = [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "HF_HUB_OFFLINE": "1",
            "PYTHONDONTWRITEBYTECODE": "1", **extra}


def run_child(step: Step, argv: list[str], logs: Path, env: dict | None = None, expect: tuple = (0,)) -> dict | None:
    """Run ``argv`` as a measured child for ``step``; its last stdout line parsed as JSON.

    stdout and stderr go to files in ``logs`` (a pipe could fill and stall the child while the
    parent waits in ``os.wait4``). Raises :class:`StepFailed` on an unexpected exit code, with the
    last line of stderr in the step's notes.
    """
    logs.mkdir(parents=True, exist_ok=True)
    stem = f"{step.size}-" + "".join(c if c.isalnum() else "-" for c in step.name)
    out_path, err_path = logs / f"{stem}.out", logs / f"{stem}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env or child_env(), cwd=ROOT)
        sampler = MemorySampler(child.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            child.kill()
            child.wait()
            sampler.stop()
            raise
        child.returncode = os.waitstatus_to_exitcode(status)
        step.wall_s = time.perf_counter() - started
        sampler.stop()
    step.peak_kb = sampler.peak_kb
    step.maxrss_kb = usage.ru_maxrss  # Linux: kilobytes
    (logs / f"{stem}.files-at-peak.json").write_text(json.dumps(sampler.files_at_peak, indent=1))
    (logs / f"{stem}.memory.tsv").write_text("seconds\tVmRSS_kb\tRssAnon_kb\tRssFile_kb\n" + "".join(
        "\t".join(map(str, sample)) + "\n" for sample in sampler.timeline))
    if child.returncode not in expect:
        errors = [line for line in err_path.read_text().splitlines() if line.strip()]
        step.notes = f"FAILED: exit {child.returncode}: {errors[-1][:300] if errors else '(no stderr)'}; see {err_path}"
        raise StepFailed(step)
    lines = [line for line in out_path.read_text().splitlines() if line.strip()]
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return {"stdout_tail": lines[-1][:500]}


def matcher_argv(*args) -> list[str]:
    """The ``matcher`` CLI of this checkout."""
    return [sys.executable, "-m", "pipelines", *map(str, args)]


def emit(step: Step, steps: list[Step]) -> None:
    """Keep ``step`` and print it as one JSON line."""
    steps.append(step)
    print(json.dumps(step.record(), default=str), flush=True)


def fast_sample(n: int, seed: int, work: Path, steps: list[Step]) -> Path:
    """The fast sample of ``n`` rows (``enterprises.parquet``), generated once per WORK."""
    target = work / f"sample-{n}-{seed}"
    source = target / "enterprises.parquet"
    step = Step(n, "sample")
    if source.is_file():
        step.notes = "cached in WORK (not regenerated)"
        step.measured = False
    else:
        shutil.rmtree(target, ignore_errors=True)
        step.result = run_child(step, matcher_argv("sample", "--fast", "--n", n, "--seed", seed, "--out", target,
                                                   "--json"), work / "logs")
        step.notes = f"{source.stat().st_size / 1e6:.0f} MB parquet"
    emit(step, steps)
    return source


def write_next_export(source: Path, target: Path, churn: float, seed: int = 0) -> dict:
    """The next night's export of ``source``: of its n rows, churn * n / 3 get a sentence added to
    the description, churn * n / 3 are removed and churn * n / 3 new enterprises are added (copies
    of random rows with new unique ids, names and descriptions). Streamed a row group at a time
    (a 10M-row export is ~20 GB as one pandas frame)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    parquet = pq.ParquetFile(source)
    n = parquet.metadata.num_rows
    third = int(churn * n / 3)
    picks = rng.permutation(n)
    changed, removed = picks[:third], picks[third:2 * third]
    copied = rng.choice(picks[2 * third:], size=third, replace=False)
    extra = ["It recently opened a research centre for industrial AI inspection.",
             "In 2026 it added a subscription service for hospital laboratories.",
             "The company now also exports battery recycling equipment to Europe."]
    sentence = dict(zip(changed.tolist(), (extra[k % 3] for k in range(len(changed)))))
    removed_set, copies = set(removed.tolist()), {}
    copy_rows = np.sort(copied)
    target.parent.mkdir(parents=True, exist_ok=True)
    schema = parquet.schema_arrow
    offset = 0
    with pq.ParquetWriter(target, schema) as writer:
        for batch in parquet.iter_batches(batch_size=250_000):
            chunk = batch.to_pandas()
            rows = np.arange(offset, offset + len(chunk))
            for i in copy_rows[(copy_rows >= offset) & (copy_rows < offset + len(chunk))]:
                copies[int(i)] = chunk.iloc[[int(i) - offset]]
            hit = [i for i in rows if i in sentence]
            if hit:
                scope = chunk["business_scope"].fillna("")
                chunk.loc[chunk.index[np.array(hit) - offset], "business_scope"] = [
                    f"{scope.iat[i - offset]} {sentence[i]}".strip() for i in hit]
            keep = np.array([i not in removed_set for i in rows])
            writer.write_table(pa.Table.from_pandas(chunk[keep], schema=schema, preserve_index=False))
            offset += len(chunk)
        new = pd.concat([copies[int(i)] for i in copied], ignore_index=True) if third else None
        if new is not None:
            new["uscc"] = [f"NEW{seed:02d}{i:013d}" for i in range(len(new))]
            new["company_name"] = [f"{name} Newco {i}" for i, name in enumerate(new["company_name"])]
            new["business_scope"] = [f"{text} {extra[(i + 1) % 3]}".strip()
                                     for i, text in enumerate(new["business_scope"].fillna(""))]
            writer.write_table(pa.Table.from_pandas(new, schema=schema, preserve_index=False))
    return {"rows_before": n, "rows_after": n - len(removed) + third, "description_changed": len(changed),
            "removed": len(removed), "added": third}


def profile_texts_of(source: Path, count: int) -> list[str]:
    """``count`` profile texts of the fast sample ``source`` (a seeded choice), as the build makes them."""
    import pandas as pd

    from matcher.snapshot import profile_text

    raw = pd.read_parquet(source, columns=["company_name", "business_scope", "keywords"]).fillna("")
    picked = raw.sample(min(count, len(raw)), random_state=0)
    texts = [profile_text(name, scope, [k for k in keys.split(";") if k] or None)
             for name, scope, keys in zip(picked["company_name"], picked["business_scope"], picked["keywords"])]
    return texts


def measure_build(n: int, home: Path, logs: Path, steps: list[Step]) -> Step:
    """``matcher build`` of the newest snapshot (its vectors all in the cache): the manifest's
    timings and index factory."""
    build = Step(n, "build")
    # torch: the embedding backend calibration would time the encoder, not the build.
    manifest = run_child(build, matcher_argv("build", "--home", home, "--json"), logs,
                         env=child_env(MATCHER_EMBEDDING_BACKEND="torch"))
    timings = manifest.get("timings") or {}
    build.result = {"version": manifest.get("version"), "index": manifest.get("index", {}).get("factory"),
                    "embedded": manifest.get("counts", {}).get("embedded"), "timings": timings}
    build.notes = f"{build.result['index']}; " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
    emit(build, steps)
    return build


def measure_refresh(n: int, source: Path, home: Path, churn: float, logs: Path, steps: list[Step]) -> Step:
    """Write the next export of ``source`` with ``churn`` and ``matcher refresh`` ``home`` with it
    (new and changed profiles embedded by the real model); the refresh's record."""
    export = home / "next-export" / "enterprises.parquet"
    step = Step(n, "next export")
    churned = step.result = run_child(step, [sys.executable, "-c", EXPORT_CHILD, str(source), str(export),
                                             str(churn)], logs)
    step.notes = f"{churned['rows_after']:,} rows"
    emit(step, steps)
    refresh = Step(n, "refresh")
    record = run_child(refresh, matcher_argv("refresh", export, "--mapping", MAPPING, "--home", home, "--json"), logs)
    counts = record.get("counts", {})
    refresh.result = {"export": churned, "status": record.get("status"), "counts": counts,
                      "timings": record.get("timings"), "index": record.get("index")}
    refresh.notes = (f"churn {churn:.1%}: {churned['description_changed']} changed, {churned['removed']} removed, "
                     f"{churned['added']} new; embedded {counts.get('embedded')}; status {record.get('status')}")
    emit(refresh, steps)
    return refresh


def project_rebuild(n: int, source: Path, build: Step, refresh: Step, rate_texts: int, logs: Path,
                    steps: list[Step], ingest_s: float | None = None) -> None:
    """The PROJECTED full rebuild: the measured build (vectors cached) plus ``n`` profiles at the
    encoder's rate measured now on ``rate_texts`` of the sample's profiles, through each available
    backend, the fastest counting (the one the build's backend calibration would choose). The
    refresh ingests its export; with ``ingest_s`` (the measured ingest of the same size) a second
    ratio counts that ingest in the rebuild too, as a rebuild from the same export would."""
    rate = Step(n, "encoder-rate")
    rate.result = run_child(rate, [sys.executable, "-c", RATE_CHILD, str(source), str(rate_texts)], logs)
    backend, fastest = max(rate.result["rates"].items(), key=lambda item: item[1]["per_s"])
    rate.notes = "; ".join(f"{b} {r['precision']} {r['per_s']:.0f}/s" for b, r in rate.result["rates"].items())
    emit(rate, steps)

    rebuild = Step(n, "rebuild (PROJECTED)", measured=False)
    embed_s = n / fastest["per_s"]
    rebuild.wall_s = build.wall_s + embed_s
    ratio = refresh.wall_s / rebuild.wall_s
    rebuild.result = {"build_wall_s_measured": round(build.wall_s, 1), "embed_all_s_projected": round(embed_s, 1),
                      "rate_backend": backend, "rate_per_s": fastest["per_s"],
                      "refresh_over_rebuild": round(ratio, 4), "target": "<= 0.10"}
    rebuild.notes = (f"build {build.wall_s:.0f} s (measured) + {n:,} / {fastest['per_s']:.0f} per s ({backend}) = "
                     f"{embed_s:.0f} s embedding (projected); refresh/rebuild = {ratio:.3f} (target <= 0.10)")
    if ingest_s:
        with_ingest = refresh.wall_s / (rebuild.wall_s + ingest_s)
        rebuild.result.update(ingest_wall_s_measured=round(ingest_s, 1), refresh_over_rebuild_with_ingest=round(with_ingest, 4))
        rebuild.notes += f"; with the ingest ({ingest_s:.0f} s, measured) in the rebuild: {with_ingest:.3f}"
    emit(rebuild, steps)


def measure_service(n: int, home: Path, work: Path, logs: Path, steps: list[Step]) -> None:
    """One service worker's start-up on ``home`` and a prospects query (see ``SERVICE_CHILD``)."""
    service = Step(n, "service start")
    database = work / f"service-{n}.db"
    database.unlink(missing_ok=True)
    result = service.result = run_child(service, [sys.executable, "-c", SERVICE_CHILD, str(home), str(database)], logs)
    memory = {k.removesuffix("_kb"): v / GB for k, v in result["memory_after_query"].items()}
    service.notes = (f"ready {result['ready_s']:.1f} s (+ imports {result['imported_s']:.1f} s); warm prospects "
                     f"query {result['query_warm']['ms']:.0f} ms ({result['query_warm']['total']} ranked); after it: "
                     f"RSS {memory.get('VmRSS', 0):.2f} GB (anon {memory.get('RssAnon', 0):.2f}, file "
                     f"{memory.get('RssFile', 0):.2f}), Pss {memory.get('Pss', 0):.2f} GB")
    emit(service, steps)


def bench_size(n: int, args: argparse.Namespace, steps: list[Step]) -> None:
    """All steps for one universe size ``n`` (each step's JSON line printed as it ends)."""
    work, logs = args.work, args.work / "logs"
    source = fast_sample(n, args.seed, work, steps)

    home = work / f"home-{n}"
    step = Step(n, "ingest")
    if args.reuse_ingest and any((home / "models" / "snapshots").glob("2*/manifest.json")):
        step.notes, step.measured = "reused WORK/home-N's snapshot (not re-measured)", False
        for version in (home / "models" / "matcher").glob("2*"):  # the build below is the only version
            if not args.reuse_build:
                shutil.rmtree(version)
    else:
        shutil.rmtree(home, ignore_errors=True)
        step.result = run_child(step, matcher_argv("ingest", source, "--mapping", MAPPING, "--home", home, "--json"),
                                logs)
    emit(step, steps)

    step = Step(n, "vectors")
    if args.reuse_ingest and args.reuse_vectors:
        step.notes, step.measured = "reused: the cache holds the snapshot's vectors (not re-measured)", False
    else:
        argv = [sys.executable, "-c", VECTORS_CHILD, str(home), str(work), str(CACHE_CHUNK_ROWS)]
        step.result = run_child(step, argv, logs)
        step.notes = f"synthetic (real-pool mix), {CACHE_CHUNK_ROWS:,}-row cache shards"
    emit(step, steps)
    if args.prepare_only:
        return

    current = home / "models" / "matcher" / "CURRENT"
    if args.reuse_build and current.is_file():
        build = Step(n, "build", measured=False)
        manifest = json.loads((current.parent / current.read_text().strip() / "manifest.json").read_text())
        build.wall_s = manifest["timings"]["total_s"]
        build.result = {"version": manifest["version"], "index": manifest["index"]["factory"], "timings": manifest["timings"]}
        build.notes = f"reused version {manifest['version']}: wall = its manifest's total_s (measured when it was built)"
        emit(build, steps)
    else:
        build = measure_build(n, home, logs, steps)
    if not args.skip_refresh:
        refresh = measure_refresh(n, source, home, args.churn, logs, steps)
        ingest_s = args.ingest_wall_s or next((s.wall_s for s in steps if s.size == n and s.name == "ingest" and s.measured),
                                              None)
        project_rebuild(n, source, build, refresh, args.rate_texts, logs, steps, ingest_s)
    if not args.skip_service:
        measure_service(n, home, work, logs, steps)
    if args.clean:
        shutil.rmtree(home, ignore_errors=True)


def machine() -> dict:
    """CPU model, cores and RAM of this machine, and the library versions that matter here."""
    from importlib.metadata import PackageNotFoundError, version

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().split()
    ram_gb = int(meminfo[meminfo.index("MemTotal:") + 1]) / GB
    versions = {"python": platform.python_version()}
    for package in ("numpy", "pandas", "faiss-cpu", "torch", "openvino"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "absent"
    return {"cpu": model, "cores": os.cpu_count(), "ram_gb": round(ram_gb, 1), "load_average": os.getloadavg(),
            "versions": versions}


def markdown(steps: list[Step], info: dict, args: argparse.Namespace) -> str:
    """The results as Markdown: a table per step, the machine and the versions."""
    def gb(step: Step, name: str) -> str:
        return f"{step.peak_kb[name] / GB:.2f}" if step.peak_kb else "-"

    parent_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / GB

    lines = [
        f"### Scale benchmark ({time.strftime('%Y-%m-%d')}, `benchmarks/bench_scale.py --sizes "
        f"{' '.join(map(str, args.sizes))} --churn {args.churn}`)",
        "",
        "Fast sample (`matcher sample --fast`); vectors synthesised from the YC set's real vectors into the "
        "embedding cache, so the build embeds no profile; the refresh embeds its new and changed profiles with "
        "the real model. Peak memory of each step's process: sampled every 0.5 s (0.1 s in its first 5 s) "
        "from /proc (GiB; a shorter peak can be missed); ru_maxrss is the child's own high-water mark (Linux "
        f"counts the parent's at the exec in it: {parent_gb:.2f} GiB here). Every figure is MEASURED except the "
        "rows marked PROJECTED.",
        "",
        "| size | step | wall s | peak RSS | peak anon | peak file | ru_maxrss | notes |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for step in steps:
        wall = f"{step.wall_s:.1f}" if step.wall_s or step.measured else "-"
        maxrss = f"{step.maxrss_kb / GB:.2f}" if step.maxrss_kb else "-"
        size = f"{step.size:,}" if step.size else "all"
        lines.append(f"| {size} | {step.name} | {wall} | {gb(step, 'VmRSS')} | {gb(step, 'RssAnon')} | "
                     f"{gb(step, 'RssFile')} | {maxrss} | {step.notes} |")
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    lines += ["", f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GiB RAM, load average at the end "
                  f"{', '.join(f'{x:.1f}' for x in info['load_average'])}. Versions: {versions}.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    parser.add_argument("--sizes", type=int, nargs="+", required=True, help="universe sizes, run in this order")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (samples, workspaces, logs)")
    parser.add_argument("--churn", type=float, default=0.005, help="share of rows the next export changes "
                        "(a third changed descriptions, a third removed, a third new) [default: 0.005]")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fast sample [default: 1]")
    parser.add_argument("--rate-texts", type=int, default=2000, help="profiles timed through each encoder backend "
                        "for the projected rebuild [default: 2000]")
    parser.add_argument("--skip-service", action="store_true", help="leave out the service start-up")
    parser.add_argument("--skip-refresh", action="store_true", help="leave out the refresh and the projected rebuild")
    parser.add_argument("--prepare-only", action="store_true", help="stop after the vectors step (sample, ingest, "
                        "cache); a later run with --reuse-ingest measures the rest")
    parser.add_argument("--reuse-build", action="store_true", help="with --reuse-ingest: keep WORK/home-N's "
                        "current version instead of building (its manifest's total_s stands for the build's wall time)")
    parser.add_argument("--ingest-wall-s", type=float, help="measured ingest wall time of this size, for the "
                        "rebuild projection that counts ingest (default: this run's ingest step, when measured)")
    parser.add_argument("--reuse-vectors", action="store_true", help="with --reuse-ingest: skip the vectors step "
                        "(an earlier run put the snapshot's vectors in the cache)")
    parser.add_argument("--reuse-ingest", action="store_true", help="keep WORK/home-N's snapshot when it has one "
                        "(the ingest is not re-measured; its published versions are deleted)")
    parser.add_argument("--clean", action="store_true", help="delete each size's workspace (and its next export) "
                        "when done")
    parser.add_argument("--results", type=Path, help="append the Markdown table to this file (default: only print)")
    args = parser.parse_args()

    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    steps: list[Step] = []
    prepare = Step(0, "real vectors + mixing")
    try:
        prepare.result = run_child(prepare, [sys.executable, "-c", PREPARE_CHILD, str(args.work)], args.work / "logs")
    except StepFailed as failure:
        print(failure.step.notes)
        return 1
    if "skipped" in prepare.result:
        print(f"skipped: {prepare.result['skipped']}; the synthetic vectors are mixed from its real vectors "
              "(or from WORK/yc_vectors.npy, absent too)")
        return 0
    sources = ", ".join(f"{k} {v:,}" for k, v in prepare.result["sources"].items())
    prepare.notes = (f"{prepare.result['real_vectors']:,} real profiles ({sources}); noise {prepare.result['mixing'][0]}, "
                     f"weight low {prepare.result['mixing'][1]} (cached in WORK)")
    emit(prepare, steps)
    failed = False
    for n in args.sizes:
        log(f"size {n:,}")
        try:
            bench_size(n, args, steps)
        except StepFailed as failure:  # reported in the table; the next size still runs
            emit(failure.step, steps)
            log(failure.step.notes)
            failed = True
    table = markdown(steps, machine(), args)
    print(table)
    if args.results:
        with open(args.results, "a") as handle:
            handle.write("\n" + table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
