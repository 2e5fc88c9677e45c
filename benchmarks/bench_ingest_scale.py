"""Ingest at scale: wall time and peak memory (RSS) of ``matcher ingest`` of a fast sample.

    python benchmarks/bench_ingest_scale.py --n 1000000 --work /scratch/ingest [--chunk-rows 100000]
    python benchmarks/bench_ingest_scale.py --n 1000000 --work /scratch/ingest --code-root /path/to/old/checkout

Generates ``matcher sample --fast`` rows once (cached in WORK), then ingests them in a child
process, so the peak RSS measured (``getrusage(RUSAGE_CHILDREN)``) is the ingest's alone.
``--code-root`` runs the ingest of another checkout (for example the one before streaming, which
reads the source whole). Prints one JSON line per run; the snapshot is deleted afterwards.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
from pathlib import Path
from matcher.mapping import load_mapping
from matcher.snapshot import ingest
source, mapping, out, chunk = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
kwargs = {"chunk_rows": chunk} if chunk else {}
t = time.perf_counter()
info = ingest(Path(source), load_mapping(mapping), out, 0.05, **kwargs)
print(json.dumps({"ingest_s": round(time.perf_counter() - t, 1), "counts": info.manifest["counts"],
                  "data_sha256": info.manifest["data_sha256"][:16]}))
"""


def fast_sample(work: Path, n: int, seed: int) -> tuple[Path, float]:
    from matcher.settings import Settings
    from pipelines.make_sample import write_sample_fast

    target = work / f"fast-{n}-{seed}"
    path = target / "enterprises.parquet"
    if path.is_file():
        return path, 0.0
    start = time.perf_counter()
    write_sample_fast(target, n=n, seed=seed, chain_map_path=Settings().chain_map)
    return path, time.perf_counter() - start


def run_ingest(source: Path, work: Path, chunk_rows: int, code_root: Path) -> dict:
    out = work / "snapshots-bench"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(code_root), "PYTHONDONTWRITEBYTECODE": "1"}
    mapping = ROOT / "data" / "mappings" / "sample.yaml"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(mapping), str(out), str(chunk_rows)],
                          env=env, capture_output=True, text=True, cwd=code_root)
    wall = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({code_root}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes
    return {**result, "wall_s": round(wall, 1), "peak_rss_gb": round(peak_kb / 1024**2, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows of the fast sample")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (sample and snapshot)")
    parser.add_argument("--chunk-rows", type=int, default=0, help="ingest chunk size (0: the setting's default)")
    parser.add_argument("--code-root", type=Path, default=ROOT, help="checkout whose ingest runs")
    parser.add_argument("--keep-sample", action="store_true", help="keep the generated sample in WORK")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source, generate_s = fast_sample(args.work, args.n, args.seed)
    import pyarrow
    import pandas

    report = {
        "n": args.n, "source_mb": round(source.stat().st_size / 1e6, 1), "generate_s": round(generate_s, 1),
        "code_root": str(args.code_root), "chunk_rows": args.chunk_rows or "default",
        **run_ingest(source, args.work, args.chunk_rows, args.code_root),
        "python": platform.python_version(), "pandas": pandas.__version__, "pyarrow": pyarrow.__version__,
    }
    print(json.dumps(report))
    if not args.keep_sample:
        shutil.rmtree(source.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
