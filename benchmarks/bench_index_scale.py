"""Dense index at 1M-10M vectors: build time, index memory beyond the memory-mapped vectors, one-thread
query latency and recall@10 against exact search under the default filter; HNSW vs IVF variants.

Vectors come from ``benchmarks/synthetic_vectors.py`` (real YC neighbourhood structure); queries
are fresh vectors from the same generator (not in the index). The default filter allows a seeded
83 % of rows (the share `outside, not closed` allows on the sample). Each variant runs in its own
process: build (FAISS threads: all cores), save, then a clean load whose RSS growth is the index's
memory (the vectors stay memory-mapped, as the service maps them), then 200 queries on one thread
after 20 warm-up queries, through ``matcher.index.VectorSearcher`` (IVF: exact re-ranking).

    python benchmarks/bench_index_scale.py --vectors /work/scratch-ivf/vectors-1m.npy \\
        --sizes 1000000 --variants "IVF4096,SQ8" "IVF4096,PQ48" --out /tmp/scale.json
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_FILTER_SHARE = 0.83
QUERIES, WARMUP, K, DEPTH = 200, 20, 10, 200


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def make_queries(vectors_path: Path, real_cache: Path, n: int = QUERIES + WARMUP) -> np.ndarray:
    from synthetic_vectors import mix

    check = json.loads(vectors_path.with_suffix(".check.json").read_text())
    real = np.load(real_cache)
    return mix(real, n, check["noise"], np.random.default_rng(7), check["weight_low"])


def default_filter(n: int) -> np.ndarray:
    return np.random.default_rng(3).random(n) < DEFAULT_FILTER_SHARE


def exact_top(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int = K, block: int = 250_000) -> np.ndarray:
    """Exact top ``k`` rows per query among ``allowed`` (chunked over the memory-mapped rows)."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), block):
        scores = queries @ np.asarray(vectors[start:start + block]).T
        scores[:, ~allowed[start:start + block]] = -np.inf
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, np.broadcast_to(np.arange(start, start + scores.shape[1] - k), (len(queries), scores.shape[1] - k))], axis=1)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_rows = np.take_along_axis(rows, top, axis=1)
    return best_rows


def index_path(args) -> Path:
    return Path(args.scratch) / f"index-{args.size}-{args.variant.replace(',', '_')}.faiss"


def build_variant(args) -> dict:
    """Build one variant in this process and save it; the build's figures."""
    import resource

    import faiss

    from matcher.index import build_index, enterprise_faiss_ids, save_index

    vectors = np.load(args.vectors, mmap_mode="r")[: args.size]
    ids = enterprise_faiss_ids([f"S{i:08d}" for i in range(args.size)])
    factory = args.variant if args.variant.startswith("IDMap") else f"IDMap2,{args.variant}"
    faiss.omp_set_num_threads(args.build_threads)
    t = time.perf_counter()
    done = {"n": 0, "next": time.perf_counter() + 60}

    def progress(n: int) -> None:
        done["n"] += n
        if time.perf_counter() > done["next"]:
            print(f"  {args.variant}: {done['n']}/{args.size} added, {time.perf_counter() - t:.0f} s", flush=True)
            done["next"] = time.perf_counter() + 60

    index = build_index(vectors, ids, factory, ef_search=args.ef_search, nprobe=args.nprobe[0], progress=progress)
    build_s = time.perf_counter() - t
    save_index(index, index_path(args))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"build_s": round(build_s, 1), "build_peak_rss_mb": round(peak / 2**20, 1)}


def query_variant(args) -> dict:
    """Load one saved variant in a fresh process (its RSS growth: the index's memory), then query."""
    import faiss

    from matcher.index import VectorSearcher, load_index

    vectors = np.load(args.vectors, mmap_mode="r")[: args.size]
    path = index_path(args)
    gc.collect()
    before = rss_bytes()
    index = load_index(path, args.ef_search)
    memory = rss_bytes() - before
    file_bytes = path.stat().st_size
    path.unlink()

    queries = np.load(args.queries)
    truth = np.load(args.truth)
    allowed = default_filter(args.size)
    faiss.omp_set_num_threads(1)
    out = {"size": args.size, "variant": args.variant, **json.loads(args.build_result),
           "index_memory_mb": round(memory / 2**20, 1), "index_file_mb": round(file_bytes / 2**20, 1), "runs": []}
    ivf = faiss.try_extract_index_ivf(faiss.downcast_index(index.index))
    settings = [(p, r) for p in args.nprobe for r in args.rerank] if ivf is not None else [(None, DEPTH)]
    for nprobe, rerank in settings:
        if ivf is not None:
            ivf.nprobe = nprobe
        run = {"nprobe": nprobe, "rerank_depth": rerank if ivf is not None else None,
               **measure(VectorSearcher(index, vectors, rerank_depth=rerank), queries, truth, allowed)}
        out["runs"].append(run)
        print(f"  {args.variant} {run}", flush=True)
    if args.churn:
        out["refresh"] = refresh_in_place(args, index, vectors, queries, allowed)
        print(f"  {args.variant} refresh {out['refresh']}", flush=True)
    return out


def measure(searcher, queries: np.ndarray, truth: np.ndarray, allowed: np.ndarray) -> dict:
    """Warm up, then one query at a time: wall and CPU p50/p95 (ms) and recall@10 against ``truth``."""
    for q in queries[:WARMUP]:
        searcher.search(q, DEPTH, allowed)
    wall, cpu, found = [], [], 0
    for q, want in zip(queries[WARMUP:], truth):
        t, c = time.perf_counter(), time.process_time()
        rows, _ = searcher.search(q, DEPTH, allowed)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        found += len(set(rows[:K].tolist()) & set(want.tolist()))
    return {"p50_ms": round(1000 * float(np.median(wall)), 2), "p95_ms": round(1000 * float(np.quantile(wall, 0.95)), 2),
            "cpu_p50_ms": round(1000 * float(np.median(cpu)), 2), "recall_at_10": round(found / (K * len(truth)), 4)}


def refresh_in_place(args, index, vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray) -> dict:
    """A refresh's index step with ``--churn`` of the universe gone and as many new firms: the
    in-place update's time, the ids/rows check and recall@10 against exact search afterwards."""
    import faiss

    from matcher.index import VectorSearcher, enterprise_faiss_ids, set_search_params, update_index
    from matcher.settings import default
    from synthetic_vectors import mix

    set_search_params(index, args.ef_search, default("ivf_nprobe"))
    rng = np.random.default_rng(11)
    n = int(args.churn * args.size)
    keep = np.ones(args.size, dtype=bool)
    keep[rng.choice(args.size, n, replace=False)] = False
    check = json.loads(args.vectors.with_suffix(".check.json").read_text())
    new = mix(np.load(args.real_cache), n, check["noise"], np.random.default_rng(12), check["weight_low"])
    old_ids = enterprise_faiss_ids([f"S{i:08d}" for i in range(args.size)])
    new_ids = enterprise_faiss_ids([f"N{i:08d}" for i in range(n)])
    t = time.perf_counter()
    how = update_index(index, old_ids[~keep], new, new_ids)
    update_s = time.perf_counter() - t
    table_ids = np.concatenate([old_ids[keep], new_ids])
    aligned = bool(np.array_equal(faiss.vector_to_array(index.id_map), table_ids))
    table = np.concatenate([vectors[keep], new])
    table_allowed = np.concatenate([allowed[keep], rng.random(n) < DEFAULT_FILTER_SHARE])
    truth = exact_top(table, queries[WARMUP:], table_allowed)
    return {"removed": n, "added": n, "how": how, "update_s": round(update_s, 2), "ids_aligned_with_rows": aligned,
            "nprobe": default("ivf_nprobe"),
            **measure(VectorSearcher(index, table), queries, truth, table_allowed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=Path, required=True, help=".npy from synthetic_vectors.py")
    parser.add_argument("--real-cache", type=Path, default=Path("/work/scratch-ivf/yc_vectors.npy"))
    parser.add_argument("--sizes", type=int, nargs="+", required=True, help="first N rows of --vectors")
    parser.add_argument("--variants", nargs="+", default=["IVF4096,SQ8"], help="FAISS factory strings")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--rerank", type=int, nargs="+", default=[200, 400])
    parser.add_argument("--ef-search", type=int, default=512)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--churn", type=float, default=0.0, help="also update in place: this share removed, as many added")
    parser.add_argument("--scratch", type=Path, default=Path("/work/scratch-ivf"))
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per variant")
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--truth", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build-result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant and not args.build_result:  # child process: build
        print("BUILT " + json.dumps(build_variant(args)), flush=True)
        return
    if args.variant:  # child process: load and query
        result = json.dumps(query_variant(args))
        print("RESULT " + result, flush=True)
        with args.out.open("a") as f:
            f.write(result + "\n")
        return
    queries = make_queries(args.vectors, args.real_cache)
    queries_path = args.scratch / "queries.npy"
    np.save(queries_path, queries)
    for size in args.sizes:
        vectors = np.load(args.vectors, mmap_mode="r")[:size]
        t = time.perf_counter()
        truth = exact_top(vectors, queries[WARMUP:], default_filter(size))
        truth_path = args.scratch / f"truth-{size}.npy"
        np.save(truth_path, truth)
        print(f"{size}: exact top-{K} of {QUERIES} queries in {time.perf_counter() - t:.0f} s", flush=True)
        for variant in args.variants:
            cmd = [sys.executable, __file__, "--vectors", str(args.vectors), "--sizes", str(size), "--out", str(args.out),
                   "--size", str(size), "--variant", variant, "--queries", str(queries_path), "--truth", str(truth_path),
                   "--ef-search", str(args.ef_search), "--build-threads", str(args.build_threads),
                   "--scratch", str(args.scratch), "--churn", str(args.churn), "--nprobe", *map(str, args.nprobe), "--rerank", *map(str, args.rerank)]
            built = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            print(built.stdout, end="", flush=True)
            if built.returncode:
                print(f"{variant} at {size}: build failed (see above)", flush=True)
                continue
            result = next(line[6:] for line in built.stdout.splitlines() if line.startswith("BUILT "))
            if subprocess.run([*cmd, "--build-result", result]).returncode:
                print(f"{variant} at {size}: queries failed (see above)", flush=True)


if __name__ == "__main__":
    main()
