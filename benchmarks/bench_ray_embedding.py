"""Embedding on Ray against in-process, on this machine (issue 14).

Embeds the first ``--n`` profiles of a snapshot (``--snapshot``: an ingested snapshot's
``enterprises.parquet``) three ways, each into a fresh embedding cache:

- in-process: ``Encoder.encode`` over the profile texts, as ``matcher build`` does;
- Ray, 1 actor and 2 actors: :func:`matcher.ray_embedding.embed_on_ray` on a local Ray started
  here (``num_cpus`` = this machine's cores), the same encoder (model, backend, precision).

Reported: wall time and profiles/s of each, the Ray job's ratio to in-process (its overhead: actor
start-up, the encoder loaded per actor, Parquet reads, shard writes), and per-actor rates. From the
measured per-actor rate it *projects* the wall time of 10M profiles on N nodes of 2 cores (one
actor per core, assuming a shared filesystem that keeps up): a projection, not a measurement. No GPU
node was measured here; the projection for one says so. Prints a table and writes
benchmarks/out/ray_embedding.json; reports, never fails on the figures.

    python benchmarks/bench_ray_embedding.py --snapshot HOME/models/snapshots/<id>/enterprises.parquet --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT_FILE = REPO / "benchmarks" / "out" / "ray_embedding.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", type=Path, required=True, help="an ingested snapshot's enterprises.parquet")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import ray

    from matcher import schemas as S
    from matcher.embedding import Encoder
    from matcher.ray_embedding import TEXT_COLUMNS, embed_on_ray
    from matcher.snapshot import profile_texts

    frame = pd.read_parquet(args.snapshot, columns=TEXT_COLUMNS).drop_duplicates(S.PROFILE_HASH).head(args.n)
    encoder = Encoder("all-MiniLM-L6-v2", args.precision, backend=args.backend)
    results = {"created_at": datetime.now(timezone.utc).isoformat(), "machine": platform.platform(),
               "processor": platform.processor(), "cpus": os.cpu_count(), "profiles": len(frame),
               "backend": encoder.backend, "precision": encoder.precision, "ray": ray.__version__, "runs": {}}
    encoder.encode(profile_texts(frame.head(64)))  # warm-up
    started = time.perf_counter()
    encoder.encode(profile_texts(frame))
    results["runs"]["in-process"] = {"seconds": time.perf_counter() - started}

    with tempfile.TemporaryDirectory(prefix="ray-bench-") as work:
        parquet = Path(work) / "enterprises.parquet"
        frame.to_parquet(parquet)
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
        try:
            for actors in (1, 2):
                started = time.perf_counter()
                report = embed_on_ray("local", parquet, Path(work) / f"cache-{actors}" / encoder.key, encoder, actors=actors)
                seconds = time.perf_counter() - started
                results["runs"][f"ray, {actors} actor(s)"] = {"seconds": seconds, "embedded": report.embedded,
                                                             "failed": len(report.failed), "actors": actors}
        finally:
            ray.shutdown()

    base = results["runs"]["in-process"]["seconds"]
    print(f"{len(frame)} profiles, {encoder.backend} {encoder.precision}, {os.cpu_count()} cores, ray {ray.__version__}")
    print("| run | wall s | profiles/s | x in-process time | profiles/s per actor |\n|---|---:|---:|---:|---:|")
    for name, run in results["runs"].items():
        rate = len(frame) / run["seconds"]
        run.update(rate=round(rate, 1), ratio=round(run["seconds"] / base, 2),
                   rate_per_actor=round(rate / run.get("actors", 1), 1))
        print(f"| {name} | {run['seconds']:.1f} | {rate:.1f} | {run['ratio']} | {run['rate_per_actor']} |")
    per_actor = results["runs"]["ray, 1 actor(s)"]["rate_per_actor"]
    projection = {f"{nodes} nodes x 2 cores": round(10_000_000 / (per_actor * 2 * nodes) / 3600, 1) for nodes in (1, 8, 32, 128)}
    results["projection_10M_hours"] = projection
    print("projected wall time for 10M profiles from the measured 1-actor rate (hours; not measured): "
          + ", ".join(f"{k}: {v}" for k, v in projection.items()) + "; one GPU node: not measured here")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
