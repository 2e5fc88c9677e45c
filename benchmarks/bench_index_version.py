"""A published version's dense index as a worker uses it: index memory beyond the memory-mapped
vectors, one-thread query latency and recall@10 against exact search under the default filter.

    python benchmarks/bench_index_version.py --home /scratch/scale/home-10000000 \\
        --work /scratch/scale --nprobe 64 128 256 --out /tmp/index-10m.json

For the universes ``bench_scale.py`` builds (vectors mixed from the real profile vectors at hand,
``synthetic_vectors.py``): the queries are 220 fresh vectors from the same generator (WORK's
``real_pool.npy`` and ``pool_mixing.json``), 20 of them warm-up. The filter is the version's own
default one (outside the district, not closed: ``Catalog.allowed(Filters())``). Truth: exact top 10
of the allowed rows, the vectors read in blocks. Each nprobe: 200 queries one at a time through
``VectorSearcher`` (IVF: exact re-ranking of its candidates against the float32 vectors), FAISS on
one thread. Index memory: RSS growth of loading ``index.faiss`` as the catalog does (inverted lists
memory-mapped), split into anonymous memory and file pages. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

QUERIES, WARMUP, K = 200, 20, 10  # as bench_index_scale.measure (depth 200)


def memory_kb() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        label, _, value = line.partition(":")
        if label in ("VmRSS", "RssAnon", "RssFile"):
            fields[label] = int(value.split()[0])
    return fields


def mapped_kb(names: tuple[str, ...]) -> dict[str, int]:
    """Resident kB of this process's mappings of each file name (``/proc/self/smaps``)."""
    out, current = dict.fromkeys(names, 0), None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            current = next((n for n in names if len(head) >= 6 and head[-1].endswith("/" + n)), None)
        elif current and line.startswith("Rss:"):
            out[current] += int(head[1])
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int = K,
              block: int = 200_000, progress=print) -> np.ndarray:
    """Exact top ``k`` allowed rows per query, best first (rows read ``block`` at a time)."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    started = time.perf_counter()
    for start in range(0, len(vectors), block):
        stop = min(start + block, len(vectors))
        scores = queries @ np.asarray(vectors[start:stop], dtype=np.float32).T
        scores[:, ~allowed[start:stop]] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k] if scores.shape[1] > k else np.argsort(-scores, axis=1)
        both_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        both_rows = np.concatenate([best_rows, top + start], axis=1)
        order = np.argsort(-both_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(both_scores, order, axis=1)
        best_rows = np.take_along_axis(both_rows, order, axis=1)
        if start // block % 10 == 0:
            progress(f"  exact: {stop:,}/{len(vectors):,} rows, {time.perf_counter() - started:.0f} s")
    return best_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="workspace whose current version is measured")
    parser.add_argument("--work", type=Path, required=True, help="bench_scale.py's WORK (real_pool.npy, pool_mixing.json)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[64, 128, 256], help="IVF lists probed per query")
    parser.add_argument("--out", type=Path, help="append the result as one JSON line to this file")
    args = parser.parse_args()

    import faiss

    from matcher import artifacts
    from matcher.catalog import INDEX_FILE, VECTORS_FILE, Catalog
    from matcher.index import VectorSearcher, load_index
    from matcher.retrieval import Filters
    from matcher.settings import Settings, default
    from bench_index_scale import measure
    from synthetic_vectors import mix

    path = artifacts.version_dir(Settings(home=args.home).artifacts_dir)
    vectors = np.load(path / VECTORS_FILE, mmap_mode="r").view(np.ndarray)
    before = memory_kb()
    t = time.perf_counter()
    index = load_index(path / INDEX_FILE, default("hnsw_ef_search"), mmap=True)
    load_s = time.perf_counter() - t
    after = memory_kb()
    catalog = Catalog.load(path)  # the default filter, as the service computes it
    allowed = catalog.allowed(Filters())
    manifest = catalog.manifest
    del catalog

    real = np.load(args.work / "real_pool.npy")
    noise, low = json.loads((args.work / "pool_mixing.json").read_text())["mixing"]
    queries = mix(real, QUERIES + WARMUP, noise, np.random.default_rng(7), low)
    t = time.perf_counter()
    truth = exact_top(vectors, queries[WARMUP:], allowed)
    truth_s = time.perf_counter() - t
    print(f"exact top-{K} of {QUERIES} queries over {len(vectors):,} vectors in {truth_s:.0f} s", flush=True)

    faiss.omp_set_num_threads(1)
    ivf = faiss.try_extract_index_ivf(faiss.downcast_index(index.index))
    runs = []
    for nprobe in args.nprobe if ivf is not None else [None]:
        if ivf is not None:
            ivf.nprobe = nprobe
        searcher = VectorSearcher(index, vectors, rerank_depth=default("ivf_rerank_depth"))
        run = {"nprobe": nprobe, **measure(searcher, queries, truth, allowed)}  # bench_index_scale's loop
        runs.append(run)
        print(json.dumps(run), flush=True)
    resident = mapped_kb((INDEX_FILE, VECTORS_FILE))
    result = {
        "version": manifest["version"], "factory": manifest["index"]["factory"], "ntotal": int(index.ntotal),
        "allowed_share": round(float(allowed.mean()), 4), "index_file_gb": round((path / INDEX_FILE).stat().st_size / 2**30, 3),
        "index_load_s": round(load_s, 1),
        "index_memory_gb": {k: round((after[k] - before[k]) / 2**20, 3) for k in after},
        "resident_after_queries_gb": {name: round(kb / 2**20, 3) for name, kb in resident.items()},
        "vectors_gb": round((path / VECTORS_FILE).stat().st_size / 2**30, 2), "truth_s": round(truth_s, 1),
        "default_nprobe": default("ivf_nprobe"), "rerank_depth": default("ivf_rerank_depth"), "runs": runs,
        "machine": {"cpu": _cpu(), "python": platform.python_version(), "faiss": faiss.__version__},
    }
    print(json.dumps(result), flush=True)
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
