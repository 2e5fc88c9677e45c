"""Gap-retrieval latency and recall at 20k, 200k and 1M enterprises.

For each universe size this measures

* dense search alone: the exact ``Flat`` index against HNSW and IVF variants (build time, memory,
  warm latency, recall@10 against exact search), unfiltered and under filters, through
  :class:`matcher.index.VectorSearcher` as :func:`matcher.retrieval.retrieve` calls it;
* how selective a filter must be before an exact scan of the allowed rows beats a filtered
  graph search (random masks of a given share);
* BM25 scoring alone, and cheaper ways to get the same lexical top-``depth``;
* the whole :func:`matcher.retrieval.retrieve` (what users wait for), with a CPU-time breakdown by
  stage, a proposed faster variant checked to return the same frame, ``retrieve()`` at
  ``catalog.RANK_DEPTH`` (what ``Catalog.prospects`` asks for), and 1 vs all FAISS/BLAS threads.

A size within 1% of the sample's is the sample itself. Larger sizes are synthesised from the
sample, since embedding a million texts is not an option:

* enterprise rows are replicated (copy ``c`` of ``enterprise_id`` X is ``X~c``, with its own
  FAISS id); copy 0 is the sample itself;
* vectors of copies are the sample's plus Gaussian noise (``--noise`` per dimension), re-normalised;
* BM25 is the index of the replicated texts with 10% of token occurrences dropped in each copy
  (so copies score differently). It is computed in closed form from the sample's term counts
  (``bm25s`` "lucene" scoring), which is what ``bm25s.BM25.index`` computes on those token lists;
  the script checks this on a two-copy corpus at start-up and reports the largest difference.

Queries: the artifact's real gap vectors with their gap texts' tokens, then perturbed copies of them
(same noise, 10% of query tokens dropped) up to ``--queries``.

Latencies are warm single-query wall times (p50/p99) and process CPU times (p50) with
``--query-threads`` FAISS/BLAS threads (builds use every core). On a shared machine the wall time
includes waiting for a core and the CPU time does not; compare either as ratios to the exact
baseline measured in the same run. The script never fails on timing; a measurement cell stops early
(and says so, with its query count) once it has used ``--cell-budget-s`` seconds, and an index whose
build is projected from the previous size to exceed ``--build-budget-s`` is skipped (and says so).

Usage::

    python benchmarks/bench_retrieval.py --artifact /tmp/ws/models/matcher \\
        --sizes 20000,200000,1000000 --queries 200

Writes ``benchmarks/out/retrieval.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bm25s
import faiss
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from matcher import catalog as C
from matcher import schemas as S
from matcher.enterprise_table import read_enterprise_table
from matcher.index import (
    APPROXIMATE_FACTORY,
    HNSW_EF_CONSTRUCTION,
    VectorSearcher,
    build_index,
    enterprise_faiss_ids,
    set_search_params,
    top_k,
)
from matcher.lexical import LexicalIndex, tokenize
from matcher.retrieval import RESULT_COLUMNS, FilterColumns, Filters, corpus_sample, filter_mask, fuse, lexical_top, retrieve
from matcher.snapshot import profile_texts

OUT_FILE = Path(__file__).resolve().parent / "out" / "retrieval.json"
TARGET_P50_MS = 10.0
TARGET_RECALL = 0.95
EXACT_DENSE_BUDGET_MS = 2.0
TOKEN_DROP = 0.10
FILTERS = {
    "none": Filters(include_local=True, include_closed=True),
    "default": Filters(),
    "employees>=50": Filters(min_employees=50),
    "country=DE": Filters(countries=("DE",)),
}
RANDOM_SHARES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- machine and inputs


def machine_info() -> dict:
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "avx512": "avx512f" in flags,
        "amx": "amx_tile" in flags,
        "faiss_threads": faiss.omp_get_max_threads(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }


def library_versions() -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "faiss": faiss.__version__,
        "faiss_compile": faiss.get_compile_options(),
        "bm25s": bm25s.__version__,
    }


def resolve_artifact(path: Path) -> Path:
    """A version directory, or an artifacts directory holding ``CURRENT``."""
    if (path / "CURRENT").is_file():
        return path / (path / "CURRENT").read_text().strip()
    if (path / "manifest.json").is_file():
        return path
    raise SystemExit(f"{path}: neither an artifact version (manifest.json) nor an artifacts dir (CURRENT)")


@dataclass
class Sample:
    enterprises: pd.DataFrame
    vectors: np.ndarray  # (n0, dim) float32
    gap_vectors: np.ndarray  # (g, dim) float32
    gap_tokens: list[list[str]]
    lexical: LexicalIndex
    term_docs: np.ndarray  # (nnz,) int64, ascending
    term_ids: np.ndarray  # (nnz,) int64, vocabulary ids
    term_counts: np.ndarray  # (nnz,) int64


def load_sample(version_dir: Path) -> Sample:
    """The parts of an artifact retrieval needs (read directly, so the benchmark does not depend on
    every file a newer ``Catalog`` expects)."""
    enterprises = read_enterprise_table(version_dir / C.ENTERPRISES_FILE)
    lexical = LexicalIndex.load(version_dir / C.LEXICAL_DIR)
    gaps = json.loads((version_dir / C.GAPS_FILE).read_text())
    vocab = lexical.retriever.vocab_dict
    docs, ids = [], []
    for i, tokens in enumerate(tokenize(profile_texts(enterprises))):
        known = [vocab[t] for t in tokens if t in vocab]
        ids.extend(known)
        docs.extend([i] * len(known))
    key = np.asarray(docs, np.int64) * len(vocab) + np.asarray(ids, np.int64)
    key, counts = np.unique(key, return_counts=True)
    return Sample(
        enterprises=enterprises,
        vectors=np.ascontiguousarray(np.load(version_dir / C.VECTORS_FILE), dtype=np.float32),
        gap_vectors=np.ascontiguousarray(np.load(version_dir / C.GAP_VECTORS_FILE), dtype=np.float32),
        gap_tokens=[lexical.query_tokens(g["text"]) for g in gaps],
        lexical=lexical,
        term_docs=key // len(vocab),
        term_ids=key % len(vocab),
        term_counts=counts.astype(np.int64),
    )


# ----------------------------------------------------------------------------- synthetic universes


def normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def replicated_vectors(base: np.ndarray, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows: row ``i`` is base row ``i % n0``, plus noise for copies after the first."""
    n0, dim = base.shape
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, n0):
        m = min(n0, n - start)
        if start == 0:
            out[:m] = base[:m]
        else:
            out[start:start + m] = normalise(base[:m] + noise * rng.standard_normal((m, dim), dtype=np.float32))
    return out


def replicated_enterprises(base: pd.DataFrame, n: int) -> pd.DataFrame:
    n0 = len(base)
    rows = base.iloc[np.arange(n) % n0].reset_index(drop=True)
    copy = pd.Series(np.arange(n) // n0)
    ids = rows[S.ENTERPRISE_ID].astype(str)
    rows[S.ENTERPRISE_ID] = ids.where(copy == 0, ids + "~" + copy.astype(str))
    rows[S.FAISS_ID] = enterprise_faiss_ids(rows[S.ENTERPRISE_ID].tolist())
    return rows


def replicated_terms(sample: Sample, n: int, rng: np.random.Generator, drop: float = TOKEN_DROP):
    """(docs, term ids, counts) of ``n`` replicated documents; copies after the first lose a
    ``drop`` share of their token occurrences (binomial thinning of each term count)."""
    n0 = len(sample.enterprises)
    docs, ids, counts = [], [], []
    for start in range(0, n, n0):
        end = np.searchsorted(sample.term_docs, min(n0, n - start))
        d, t, c = sample.term_docs[:end] + start, sample.term_ids[:end], sample.term_counts[:end]
        if start > 0 and drop > 0:
            c = rng.binomial(c, 1.0 - drop)
            keep = c > 0
            d, t, c = d[keep], t[keep], c[keep]
        docs.append(d)
        ids.append(t)
        counts.append(c)
    return np.concatenate(docs), np.concatenate(ids), np.concatenate(counts)


def closed_form_bm25(docs, ids, counts, n_docs: int, vocab: dict, k1: float = 1.2, b: float = 0.75) -> LexicalIndex:
    """The bm25s "lucene" index of documents given as term counts (what ``BM25.index`` builds)."""
    n_vocab = len(vocab)
    doc_len = np.bincount(docs, weights=counts, minlength=n_docs)
    avg_len = float(doc_len.mean())
    df = np.bincount(ids, minlength=n_vocab).astype(np.float64)
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
    tf = counts.astype(np.float64)
    scores = idf[ids] * tf / (k1 * ((1.0 - b) + b * doc_len[docs] / avg_len) + tf)
    order = np.argsort(ids, kind="stable")  # docs ascend within each term, as in bm25s
    indptr = np.zeros(n_vocab + 1, np.int64)
    np.cumsum(np.bincount(ids, minlength=n_vocab), out=indptr[1:])
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.vocab_dict = dict(vocab)
    retriever.unique_token_ids_set = set(vocab.values())
    retriever.nonoccurrence_array = None
    retriever.scores = {
        "data": scores[order].astype(np.float32),
        "indices": docs[order].astype(np.int32),
        "indptr": indptr,
        "num_docs": n_docs,
    }
    return LexicalIndex(retriever)


def check_closed_form(sample: Sample, seed: int) -> dict:
    """Largest |score difference| between the closed form and ``bm25s.BM25.index`` on a two-copy
    corpus, and on the sample itself against the published index."""
    n0 = len(sample.enterprises)
    vocab = sample.lexical.retriever.vocab_dict
    same = closed_form_bm25(sample.term_docs, sample.term_ids, sample.term_counts, n0, vocab)
    docs, ids, counts = replicated_terms(sample, 2 * n0, np.random.default_rng(seed))
    closed = closed_form_bm25(docs, ids, counts, 2 * n0, vocab)
    words = {i: w for w, i in vocab.items()}
    token_lists: list[list[str]] = [[] for _ in range(2 * n0)]
    for d, t, c in zip(docs.tolist(), ids.tolist(), counts.tolist()):
        token_lists[d].extend([words[t]] * c)
    reference = bm25s.BM25(k1=1.2, b=0.75)
    reference.index(token_lists, show_progress=False)
    reference = LexicalIndex(reference)
    diff_sample = diff_two = 0.0
    for tokens in sample.gap_tokens[:8]:
        diff_sample = max(diff_sample, float(np.abs(same.scores(tokens) - sample.lexical.scores(tokens)).max()))
        diff_two = max(diff_two, float(np.abs(closed.scores(tokens) - reference.scores(tokens)).max()))
    return {"max_abs_diff_vs_published": diff_sample, "max_abs_diff_vs_bm25s_index_2x": diff_two}


@dataclass
class Universe:
    n: int
    enterprises: pd.DataFrame
    vectors: np.ndarray
    lexical: LexicalIndex
    query_vectors: np.ndarray
    query_tokens: list[list[str]]
    masks: dict[str, np.ndarray]
    synth_s: float
    dense_sample: np.ndarray
    filter_columns: FilterColumns


def make_universe(sample: Sample, n: int, n_queries: int, noise: float, seed: int) -> Universe:
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    n0 = len(sample.enterprises)
    if n == n0:
        enterprises, vectors, lexical = sample.enterprises, sample.vectors, sample.lexical
    else:
        enterprises = replicated_enterprises(sample.enterprises, n)
        vectors = replicated_vectors(sample.vectors, n, noise, rng)
        docs, ids, counts = replicated_terms(sample, n, rng)
        lexical = closed_form_bm25(docs, ids, counts, n, sample.lexical.retriever.vocab_dict)
        del docs, ids, counts
    n_gaps = len(sample.gap_vectors)
    query_vectors = np.empty((n_queries, vectors.shape[1]), np.float32)
    query_tokens = []
    for j in range(n_queries):
        g = j % n_gaps
        if j < n_gaps:
            query_vectors[j] = sample.gap_vectors[g]
            query_tokens.append(list(sample.gap_tokens[g]))
        else:
            noisy = sample.gap_vectors[g] + noise * rng.standard_normal(vectors.shape[1], dtype=np.float32)
            query_vectors[j] = noisy / np.linalg.norm(noisy)
            tokens = [w for w in sample.gap_tokens[g] if rng.random() >= TOKEN_DROP]
            query_tokens.append(tokens or list(sample.gap_tokens[g][:1]))
    masks = {name: filter_mask(enterprises, f) for name, f in FILTERS.items()}
    filter_columns = FilterColumns.build(enterprises)
    for name, f in FILTERS.items():
        if not np.array_equal(filter_columns.mask(enterprises, f), masks[name]):
            raise AssertionError(f"FilterColumns.mask differs from filter_mask for {name}")
    return Universe(
        n, enterprises, vectors, lexical, query_vectors, query_tokens, masks, time.perf_counter() - t,
        corpus_sample(vectors), filter_columns,
    )


def exact_top(universe: Universe, k: int, chunk: int = 16) -> dict[str, list[np.ndarray]]:
    """Exact top-``k`` positions per filter and query (ground truth), best first."""
    truth: dict[str, list[np.ndarray]] = {name: [] for name in universe.masks}
    for start in range(0, len(universe.query_vectors), chunk):
        scores = universe.query_vectors[start:start + chunk] @ universe.vectors.T
        for row in scores:
            for name, mask in universe.masks.items():
                allowed = np.flatnonzero(mask)
                truth[name].append(allowed[top_k(row[allowed], k)])
    return truth


def recall(found: list[np.ndarray], truth: list[np.ndarray], at: int) -> float:
    hits = [len(set(f[:at].tolist()) & set(t[:at].tolist())) / max(1, min(at, len(t))) for f, t in zip(found, truth)]
    return float(np.mean(hits)) if hits else float("nan")


# ----------------------------------------------------------------------------- timing


def timed(fn, n_queries: int, budget_s: float, warmup: int = 10, min_queries: int = 30, keep: bool = True) -> tuple[dict, list]:
    """Warm single-query latencies of ``fn(j)`` over queries ``j``; returns (stats, outputs if ``keep``)."""
    for j in range(min(warmup, n_queries)):
        fn(j)
    times, cpu_times, outputs = [], [], []
    started = time.perf_counter()
    for j in range(n_queries):
        c = time.process_time_ns()
        t = time.perf_counter_ns()
        result = fn(j)
        times.append((time.perf_counter_ns() - t) / 1e6)
        cpu_times.append((time.process_time_ns() - c) / 1e6)
        if keep:
            outputs.append(result)
        if len(times) >= min_queries and time.perf_counter() - started > budget_s:
            break
    return stats(times, cpu_times, n_queries), outputs


def stats(times_ms: list[float], cpu_ms: list[float], wanted: int) -> dict:
    """Wall-clock percentiles, and process CPU time (all threads) per query: on a shared machine
    the wall time includes waiting for a core; the CPU time does not."""
    a, c = np.asarray(times_ms), np.asarray(cpu_ms)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "cpu_p50_ms": float(np.percentile(c, 50)),
        "cpu_p99_ms": float(np.percentile(c, 99)),
        "n": len(a),
        "truncated": len(a) < wanted,
    }


def set_threads(n: int) -> None:
    """Threads for FAISS (OpenMP) and numpy's BLAS."""
    faiss.omp_set_num_threads(n)
    threadpool_limits(n)


def index_bytes(index: faiss.Index) -> int:
    return int(faiss.serialize_index(index).nbytes)


# ----------------------------------------------------------------------------- dense search


@dataclass(frozen=True)
class Variant:
    name: str
    factory: str
    sweep: tuple[int, ...]  # efSearch (HNSW) or nprobe (IVF) for the raw recall curve

    @property
    def kind(self) -> str:
        return "hnsw" if "HNSW" in self.factory else "ivf" if "IVF" in self.factory else "flat"


def variants_for(n: int, hnsw_ms: list[int], ivf: bool = True) -> list[Variant]:
    out = [Variant("Flat (exact)", "IDMap2,Flat", ())]
    for m in hnsw_ms:
        out.append(Variant(f"HNSW{m}", f"IDMap2,HNSW{m},Flat", (16, 32, 64, 128, 256, 512)))
    if ivf:
        nlist = 2 ** round(math.log2(math.sqrt(n)))
        out.append(Variant(f"IVF{nlist}", f"IDMap2,IVF{nlist},Flat", (4, 8, 16, 32, 64)))
    return out


def set_raw_param(inner: faiss.Index, kind: str, value: int) -> None:
    if kind == "hnsw":
        inner.hnsw.efSearch = value
    elif kind == "ivf":
        inner.nprobe = value


def bench_dense(universe: Universe, variant: Variant, truth, masks_truth, args, build_estimate_s: float | None) -> dict:
    """Build one index and measure it: the raw recall curve (top 10, no filter) and the searcher
    path ``retrieve()`` uses (top ``depth``, every filter)."""
    result: dict = {"variant": variant.name, "factory": variant.factory, "kind": variant.kind}
    if build_estimate_s is not None and build_estimate_s > args.build_budget_s:
        result["skipped"] = f"projected build {build_estimate_s:.0f} s > --build-budget-s {args.build_budget_s:.0f}"
        log(f"  {variant.name}: skipped ({result['skipped']})")
        return result
    ids = universe.enterprises[S.FAISS_ID].to_numpy()
    set_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    index = build_index(universe.vectors, ids, variant.factory, args.ef_search, args.ef_construction)
    result["build_s"] = time.perf_counter() - t
    set_threads(args.query_threads)
    result["index_mb"] = index_bytes(index) / 2**20
    log(f"  {variant.name}: built in {result['build_s']:.1f} s, {result['index_mb']:.0f} MB")
    searcher = VectorSearcher(index, universe.vectors)
    inner = searcher.inner
    q = universe.query_vectors
    n_q = len(q)

    curve = []
    for value in variant.sweep or (0,):
        set_raw_param(inner, variant.kind, value)
        st, out = timed(lambda j: inner.search(q[j:j + 1], 10)[1][0], n_q, args.cell_budget_s)
        curve.append({"param": value, **st, "recall@10": recall(out, truth["none"], 10)})
    set_search_params(index, args.ef_search)
    result["curve"] = curve

    per_filter = {}
    for name, mask in universe.masks.items():
        allowed = None if mask.all() else mask
        st, out = timed(lambda j: searcher.search(q[j], args.depth, allowed)[0], n_q, args.cell_budget_s)
        per_filter[name] = {
            **st,
            "allowed_share": float(mask.mean()),
            "recall@10": recall(out, truth[name], 10),
            f"recall@{args.depth}": recall(out, truth[name], args.depth),
        }
    result["searcher"] = per_filter
    result["ef_search"] = args.ef_search
    result["ef_construction"] = args.ef_construction
    if variant.kind == "hnsw" and masks_truth:
        result["selectivity"] = bench_selectivity(universe, searcher, masks_truth, args)
    stages = variant.kind == "flat" or variant.factory == APPROXIMATE_FACTORY
    result["retrieve"] = bench_retrieve(universe, searcher, args, stages)
    searcher = index = None  # free the index before the next variant is built
    gc.collect()
    return result


def selectivity_truth(universe: Universe, args, chunk: int = 16) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Random masks of each share in ``RANDOM_SHARES`` with their exact top-``depth`` per query."""
    rng = np.random.default_rng(args.seed + 1)
    masks = [rng.random(universe.n) < share for share in RANDOM_SHARES]
    allowed = [np.flatnonzero(m) for m in masks]
    truth: list[list[np.ndarray]] = [[] for _ in masks]
    q = universe.query_vectors[: args.selectivity_queries]
    for start in range(0, len(q), chunk):
        for row in q[start:start + chunk] @ universe.vectors.T:
            for i, a in enumerate(allowed):
                truth[i].append(a[top_k(row[a], args.depth)])
    return list(zip(masks, truth))


def bench_selectivity(universe: Universe, searcher: VectorSearcher, masks_truth, args) -> list[dict]:
    """Exact scan of the allowed rows vs filtered index search, on random masks of a given share."""
    q = universe.query_vectors
    graph = VectorSearcher(searcher.index, searcher.vectors, selective_filter_share=0.0)
    scan = VectorSearcher(searcher.index, searcher.vectors, selective_filter_share=1.01)
    rows = []
    for share, (mask, truth) in zip(RANDOM_SHARES, masks_truth):
        n_q = len(truth)
        st_scan, _ = timed(lambda j: scan.search(q[j], args.depth, mask)[0], n_q, args.cell_budget_s / 2, keep=False)
        st_graph, out = timed(lambda j: graph.search(q[j], args.depth, mask)[0], n_q, args.cell_budget_s / 2)
        rows.append({
            "share": share,
            "scan_p50_ms": st_scan["p50_ms"],
            "index_p50_ms": st_graph["p50_ms"],
            "scan_cpu_p50_ms": st_scan["cpu_p50_ms"],
            "index_cpu_p50_ms": st_graph["cpu_p50_ms"],
            "index_recall@10": recall(out, truth, 10),
            f"index_recall@{args.depth}": recall(out, truth, args.depth),
            "n": st_graph["n"],
        })
    return rows


# ----------------------------------------------------------------------------- BM25 alone


def postings(lexical: LexicalIndex, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Document positions and BM25 contributions of the query tokens' postings."""
    r = lexical.retriever
    ids = r.get_tokens_ids(tokens)
    s = r.scores
    spans = [(int(s["indptr"][i]), int(s["indptr"][i + 1])) for i in ids]
    if not spans:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    docs = np.concatenate([s["indices"][a:b] for a, b in spans])
    weights = np.concatenate([s["data"][a:b] for a, b in spans])
    return docs, weights


def bincount_scores(lexical: LexicalIndex, tokens: list[str]) -> np.ndarray:
    """Same values as ``LexicalIndex.scores`` (float32 sums), via one ``np.bincount`` (measured as an
    alternative to bm25s' ``np.add.at``; not faster with numpy 2)."""
    n = lexical.retriever.scores["num_docs"]
    docs, weights = postings(lexical, tokens)
    return np.bincount(docs, weights=weights, minlength=n).astype(np.float32)


def lexical_top_current(bm25: np.ndarray, allowed: np.ndarray, depth: int) -> np.ndarray:
    """``retrieve()``'s lexical candidates today: mask the full score array, top-k over all n."""
    bm25_allowed = np.where(allowed & (bm25 > 0), bm25, -np.inf)
    pos = top_k(bm25_allowed, depth)
    return pos[np.isfinite(bm25_allowed[pos])]


def lexical_top_touched(bm25: np.ndarray, allowed: np.ndarray, depth: int) -> np.ndarray:
    """Same positions, ranking only documents with a positive score that pass the filter."""
    candidates = np.flatnonzero(bm25 > 0)
    candidates = candidates[allowed[candidates]]
    return candidates[top_k(bm25[candidates], depth)]


# The sampled-threshold top-k this benchmark proposed is now the library's.
lexical_top_threshold = lexical_top


def bench_bm25(universe: Universe, args) -> dict:
    lexical = universe.lexical
    tokens = universe.query_tokens
    n_q = len(tokens)
    mask = universe.masks["default"]
    weight = mask.astype(np.float32)
    budget = args.cell_budget_s
    out: dict = {
        "postings_per_query": float(np.mean([len(postings(lexical, t)[0]) for t in tokens[:50]])),
        "tokens_per_query": float(np.mean([len(t) for t in tokens])),
    }
    out["scores_current"], _ = timed(lambda j: lexical.scores(tokens[j]), n_q, budget, keep=False)
    out["scores_bincount"], _ = timed(lambda j: bincount_scores(lexical, tokens[j]), n_q, budget, keep=False)
    full = [lexical.scores(t) for t in tokens[: min(n_q, 50)]]
    out["scores_max_abs_diff"] = float(max(np.abs(f - bincount_scores(lexical, t)).max() for f, t in zip(full, tokens)))
    m = len(full)
    out["topk_current"], top_a = timed(lambda j: lexical_top_current(full[j], mask, args.depth), m, budget)
    out["topk_touched"], top_b = timed(lambda j: lexical_top_touched(full[j], mask, args.depth), m, budget)
    out["topk_threshold"], top_c = timed(lambda j: lexical_top_threshold(full[j], mask, args.depth), m, budget)
    out["topk_threshold_identical"] = all(np.array_equal(f[a], f[c]) for f, a, c in zip(full, top_a, top_c))
    # Equal scores at the cut may be taken in a different order; compare the ranked scores.
    out["topk_identical"] = all(np.array_equal(f[a], f[b]) for f, a, b in zip(full, top_a, top_b))
    r = lexical.retriever
    out["bm25s_retrieve_weight_mask"], _ = timed(
        lambda j: r.retrieve([tokens[j]], k=args.depth, weight_mask=weight, show_progress=False, n_threads=0),
        n_q, budget, keep=False,
    )
    out["lexical_total_current"], _ = timed(
        lambda j: lexical_top_current(lexical.scores(tokens[j]), mask, args.depth), n_q, budget, keep=False
    )
    out["lexical_total_proposed"], _ = timed(
        lambda j: lexical_top_threshold(lexical.scores(tokens[j]), mask, args.depth), n_q, budget, keep=False
    )
    return out


# ----------------------------------------------------------------------------- retrieve()


def retrieve_stages(universe: Universe, searcher: VectorSearcher, j: int, filters: Filters, args, proposed: bool):
    """``retrieve()`` step by step with a CPU-time clock per stage; ``proposed`` uses the changes described
    in the report (masks from :class:`FilterColumns`, lexical top-k by :func:`lexical_top_threshold`,
    the result frame built in one call). The results are checked against ``retrieve()``."""
    clock = {}
    t0 = time.process_time_ns()
    enterprises, lexical = universe.enterprises, universe.lexical
    query_vector = np.asarray(universe.query_vectors[j], dtype=np.float32)
    query_tokens = universe.query_tokens[j]
    k = args.k
    allowed = universe.filter_columns.mask(enterprises, filters) if proposed else filter_mask(enterprises, filters)
    t1 = time.process_time_ns()
    clock["mask"] = t1 - t0
    depth = max(args.depth, k)
    dense_pos, _ = searcher.search(query_vector, depth, None if allowed.all() else allowed)
    t2 = time.process_time_ns()
    clock["dense"] = t2 - t1
    bm25 = lexical.scores(query_tokens)
    t3 = time.process_time_ns()
    clock["bm25"] = t3 - t2
    lexical_pos = (lexical_top_threshold if proposed else lexical_top_current)(bm25, allowed, depth)
    t4 = time.process_time_ns()
    clock["bm25_topk"] = t4 - t3
    candidates = np.union1d(dense_pos, lexical_pos)
    dense = searcher.vectors[candidates] @ query_vector
    sample = universe.dense_sample @ query_vector
    order, fused = fuse(
        candidates, dense, bm25[candidates],
        (float(sample.mean()), float(sample.std())), (float(bm25.mean()), float(bm25.std())),
        0.5,
    )
    order, fused = order[:k], fused[:k]
    top = candidates[order]
    t5 = time.process_time_ns()
    clock["fuse"] = t5 - t4
    if proposed:  # take the needed columns' rows only, not every column of the table
        def column(name: str) -> np.ndarray:
            return enterprises[name].array.take(top).to_numpy()
    else:
        rows = enterprises.iloc[top]

        def column(name: str) -> np.ndarray:
            return rows[name].to_numpy()
    dense_rank = {p: r for r, p in enumerate(dense_pos.tolist(), start=1)}
    lexical_rank = {p: r for r, p in enumerate(lexical_pos.tolist(), start=1)}
    data = {
        S.ENTERPRISE_ID: column(S.ENTERPRISE_ID),
        S.NAME: column(S.NAME),
        "score": np.round(fused.astype(float), 6),
        "similarity": np.round(dense[order].astype(float), 6),
        "lexical_score": np.round(bm25[top].astype(float), 4),
        "dense_rank": pd.array([dense_rank.get(p) for p in top.tolist()], dtype="Int64"),
        "lexical_rank": pd.array([lexical_rank.get(p) for p in top.tolist()], dtype="Int64"),
    }
    if proposed:  # one constructor call: inserting columns one by one costs ~0.3 ms each
        out = pd.DataFrame({**data, **{name: column(name) for name in RESULT_COLUMNS[7:]}})
    else:
        out = pd.DataFrame(data)
        for name in RESULT_COLUMNS[7:]:
            out[name] = column(name)
    clock["frame"] = time.process_time_ns() - t5
    return out, {name: ns / 1e6 for name, ns in clock.items()}


def same_frame(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """``a`` (a step-by-step copy) equals ``retrieve()``'s frame ``b`` on ``a``'s columns (``b`` may
    carry extra columns that later versions of ``retrieve()`` add): the same enterprises in the same
    order, numbers equal to within one unit of their rounding (BM25 sums accumulated in another
    order can differ in the last float32 bit, which can flip the 4th decimal of ``lexical_score``)."""
    try:
        pd.testing.assert_frame_equal(a, b[list(a.columns)], check_exact=False, rtol=0, atol=1.5e-4)
    except AssertionError:
        return False
    return True


def bench_retrieve(universe: Universe, searcher: VectorSearcher, args, stages: bool) -> dict:
    q, tokens = universe.query_vectors, universe.query_tokens
    n_q = len(q)
    budget = args.cell_budget_s
    out = {}
    for name, filters in FILTERS.items():
        st, real = timed(
            lambda j: retrieve(
                universe.enterprises, searcher, universe.lexical, q[j], tokens[j], args.k, filters,
                depth=args.depth, dense_sample=universe.dense_sample,
            ),
            n_q, budget,
        )
        cell = {**st}
        for proposed in (False, True) if stages else ():
            label = "proposed" if proposed else "stages"
            st2, outs = timed(lambda j: retrieve_stages(universe, searcher, j, filters, args, proposed), n_q, budget)
            cell[label] = {
                **st2,
                **{f"{k}_p50_ms": float(np.median([o[1][k] for o in outs])) for k in outs[0][1]},
                "identical": all(same_frame(outs[i][0], real[i]) for i in range(min(len(outs), len(real)))),
            }
        out[name] = cell
    if stages:
        # What Catalog.prospects asks for: RANK_DEPTH candidates for the ranker, not k.
        rank_depth = getattr(C, "RANK_DEPTH", None)
        if rank_depth:
            filters = FILTERS["default"]
            out["default_rank_depth"], _ = timed(
                lambda j: retrieve(
                    universe.enterprises, searcher, universe.lexical, q[j], tokens[j], rank_depth, filters,
                    depth=args.depth, dense_sample=universe.dense_sample,
                ),
                n_q, budget, keep=False,
            )
            out["default_rank_depth"]["k"] = rank_depth
        set_threads(os.cpu_count() or 1)
        filters = FILTERS["default"]
        out["default_all_threads"], _ = timed(
            lambda j: retrieve(
                universe.enterprises, searcher, universe.lexical, q[j], tokens[j], args.k, filters,
                depth=args.depth, dense_sample=universe.dense_sample,
            ),
            n_q, budget, keep=False,
        )
        set_threads(args.query_threads)
    return out


# ----------------------------------------------------------------------------- reporting


def fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def ms(cell: dict) -> str:
    """``wall p50 / wall p99 (cpu p50)``, and the query count when a cell was cut short."""
    text = f"{cell['p50_ms']:.2f} / {cell['p99_ms']:.2f} ({cell['cpu_p50_ms']:.2f})"
    return text + (f" n={cell['n']}" if cell.get("truncated") else "")


def print_size(size: dict, args) -> None:
    n = size["n"]
    print(f"\n### {n:,} enterprises\n")
    print(f"Synthesis {size['synth_s']:.1f} s; exact ground truth {size['truth_s']:.1f} s; "
          f"allowed share per filter: " + ", ".join(f"{k} {v:.3f}" for k, v in size["allowed_share"].items()) + "\n")
    flat = next(v for v in size["dense"] if v["kind"] == "flat")
    print(f"**Dense search as `retrieve()` calls it** (`VectorSearcher.search`, top {args.depth}, "
          f"HNSW efConstruction={args.ef_construction}, hnsw_ef_search={args.ef_search} → efSearch=max(ef, k); IVF nprobe=ef/4): "
          "wall p50 / p99 (CPU p50) ms, recall@10 vs exact\n")
    head = "| index | build s | index MB | " + " | ".join(f"{f} p50/p99 | R@10" for f in FILTERS) + " |"
    print(head)
    print("|" + "---|" * (3 + 2 * len(FILTERS)))
    for v in size["dense"]:
        if "skipped" in v:
            print(f"| {v['variant']} | skipped: {v['skipped']} |" + " |" * (1 + 2 * len(FILTERS)))
            continue
        cells = " | ".join(f"{ms(v['searcher'][f])} | {fmt(v['searcher'][f]['recall@10'], 3)}" for f in FILTERS)
        print(f"| {v['variant']} | {fmt(v['build_s'], 1)} | {fmt(v['index_mb'], 0)} | {cells} |")
    base = flat["curve"][0]["cpu_p50_ms"]
    print(f"\n**Raw index, top 10, no filter** (speed-up = exact CPU p50 / CPU p50; exact {base:.2f} ms)\n")
    print("| index | efSearch / nprobe | wall p50 / p99 (CPU p50) ms | speed-up | recall@10 |\n|---|---|---|---|---|")
    for v in size["dense"]:
        for c in v.get("curve", []):
            param = "–" if v["kind"] == "flat" else c["param"]
            print(f"| {v['variant']} | {param} | {ms(c)} | {fmt(base / c['cpu_p50_ms'], 1)}× | {fmt(c['recall@10'], 3)} |")
    sel = [v for v in size["dense"] if v.get("selectivity")]
    if sel:
        print(f"\n**Filter selectivity** (random masks; exact scan of allowed rows vs filtered index search, top {args.depth}): CPU p50 ms, index recall@10\n")
        print("| share | " + " | ".join(f"scan | {v['variant']} | R@10" for v in sel) + " |")
        print("|---|" + "---|---|---|" * len(sel))
        for i, share in enumerate(RANDOM_SHARES):
            cells = " | ".join(
                f"{fmt(v['selectivity'][i]['scan_cpu_p50_ms'])} | {fmt(v['selectivity'][i]['index_cpu_p50_ms'])} | "
                f"{fmt(v['selectivity'][i]['index_recall@10'], 3)}" for v in sel
            )
            print(f"| {share} | {cells} |")
    b = size["bm25"]
    print(f"\n**BM25 alone** ({b['tokens_per_query']:.0f} query tokens, {b['postings_per_query']:,.0f} postings per query; "
          f"lexical top {args.depth} under the default filter): wall p50 / p99 (CPU p50) ms\n")
    print("| step | current | proposed |\n|---|---|---|")
    print(f"| scores for all docs | {ms(b['scores_current'])} (`bm25s.get_scores`, np.add.at) | {ms(b['scores_bincount'])} (alternative: np.bincount; max diff {b['scores_max_abs_diff']:.1e}) |")
    print(f"| mask + top {args.depth} | {ms(b['topk_current'])} (over all n) | {ms(b['topk_touched'])} (positive scores only; identical: {b['topk_identical']}) |")
    print(f"| mask + top {args.depth}, sampled threshold | – | {ms(b['topk_threshold'])} (identical: {b['topk_threshold_identical']}) |")
    print(f"| lexical candidates total | {ms(b['lexical_total_current'])} | {ms(b['lexical_total_proposed'])} (get_scores + threshold top-k) |")
    print(f"| bm25s `retrieve(k={args.depth}, weight_mask=…)` | {ms(b['bm25s_retrieve_weight_mask'])} | – |")
    print(f"\n**Whole `retrieve()`** (top {args.k}, depth {args.depth}, {args.query_threads} query thread(s)): "
          "wall p50 / p99 (CPU p50) ms; speed-up on CPU p50 vs exact; stage CPU p50s from a step-by-step copy; "
          "proposed = masks from precomputed numpy columns + lexical top-k over documents above a sampled threshold + the result "
          "frame from the needed columns' rows in one constructor call (identical: `assert_frame_equal` with retrieve()'s frame)\n")
    print("| index | filter | retrieve() | vs exact | mask | dense | bm25 | bm25 top-k | fuse | frame | proposed | identical |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for v in size["dense"]:
        if "retrieve" not in v:
            continue
        for f in FILTERS:
            c = v["retrieve"][f]
            ratio = flat["retrieve"][f]["cpu_p50_ms"] / c["cpu_p50_ms"]
            if "stages" not in c:
                print(f"| {v['variant']} | {f} | {ms(c)} | {ratio:.1f}× faster |" + " – |" * 8)
                continue
            st, pr = c["stages"], c["proposed"]
            print(f"| {v['variant']} | {f} | {ms(c)} | {ratio:.1f}× faster | {fmt(st['mask_p50_ms'])} | {fmt(st['dense_p50_ms'])} | "
                  f"{fmt(st['bm25_p50_ms'])} | {fmt(st['bm25_topk_p50_ms'])} | {fmt(st['fuse_p50_ms'])} | {fmt(st['frame_p50_ms'])} | "
                  f"{ms(pr)} | {pr['identical'] and st['identical']} |")
    deep = [(v["variant"], v["retrieve"]["default_rank_depth"], v["retrieve"]["default"]) for v in size["dense"]
            if "default_rank_depth" in v.get("retrieve", {})]
    if deep:
        print(f"\n**`retrieve()` as `Catalog.prospects` calls it** (k = catalog.RANK_DEPTH = {deep[0][1]['k']} candidates "
              "for the ranker, default filter): wall p50 / p99 (CPU p50) ms\n")
        print(f"| index | k={args.k} | k={deep[0][1]['k']} |\n|---|---|---|")
        for name, big, small in deep:
            print(f"| {name} | {ms(small)} | {ms(big)} |")
    threads = [(v["variant"], v["retrieve"]["default_all_threads"], v["retrieve"]["default"]) for v in size["dense"]
               if "default_all_threads" in v.get("retrieve", {})]
    if threads:
        print(f"\n**Threads** (`retrieve()`, default filter): {args.query_threads} vs {os.cpu_count()} FAISS/BLAS threads, "
              "wall p50 / p99 (CPU p50) ms\n")
        print(f"| index | {args.query_threads} thread(s) | {os.cpu_count()} threads |\n|---|---|---|")
        for name, many, one in threads:
            print(f"| {name} | {ms(one)} | {ms(many)} |")


def recommend(sizes: list[dict], args) -> dict:
    """Inputs for ``exact_index_max`` and the approximate setting (the report makes the call).

    Exact search cost grows linearly with n; ``exact_index_max_estimate`` is the n at which the
    exact dense search (default filter, CPU p50) takes ``EXACT_DENSE_BUDGET_MS``, a fifth of the
    end-to-end target, since the rest of ``retrieve()`` needs the remainder.
    """
    rec: dict = {"target_p50_ms": TARGET_P50_MS, "target_recall@10": TARGET_RECALL,
                 "exact_dense_budget_ms": EXACT_DENSE_BUDGET_MS}
    points = []
    for size in sizes:
        flat = next(v for v in size["dense"] if v["kind"] == "flat")
        points.append((size["n"], flat["retrieve"]["default"]["cpu_p50_ms"], flat["searcher"]["default"]["cpu_p50_ms"]))
    rec["exact_retrieve_default_cpu_p50_ms"] = {n: p for n, p, _ in points}
    rec["exact_dense_default_cpu_p50_ms"] = {n: d for n, _, d in points}
    n_big, _, dense_big = max(points)
    slope = dense_big / n_big
    rec["exact_dense_ms_per_100k_vectors"] = slope * 1e5
    rec["exact_index_max_estimate"] = int(EXACT_DENSE_BUDGET_MS / slope) if slope > 0 else None
    candidates = {}
    for size in sizes:
        for v in size["dense"]:
            if v["kind"] == "flat" or "skipped" in v:
                continue
            worst = min(v["searcher"][f]["recall@10"] for f in FILTERS)
            entry = candidates.setdefault(v["variant"], {
                "factory": v["factory"], "min_recall@10": 1.0, "recall@10_by_size": {},
                "dense_default_cpu_p50_ms": {}, "retrieve_default_cpu_p50_ms": {}, "build_s": {}, "index_mb": {},
            })
            entry["min_recall@10"] = min(entry["min_recall@10"], worst)
            entry["recall@10_by_size"][size["n"]] = worst
            entry["dense_default_cpu_p50_ms"][size["n"]] = v["searcher"]["default"]["cpu_p50_ms"]
            entry["retrieve_default_cpu_p50_ms"][size["n"]] = v["retrieve"]["default"]["cpu_p50_ms"]
            entry["build_s"][size["n"]] = v["build_s"]
            entry["index_mb"][size["n"]] = v["index_mb"]
            for c in v["curve"]:
                if c["recall@10"] >= TARGET_RECALL:
                    entry.setdefault("min_param_for_target_top10", {})[size["n"]] = c["param"]
                    break
    rec["approximate"] = candidates
    meeting = [name for name, e in candidates.items() if e["min_recall@10"] >= TARGET_RECALL]
    rec["approximate_meeting_recall"] = meeting
    return rec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=Path("models/matcher"),
                        help="artifact version dir, or the artifacts dir holding CURRENT")
    parser.add_argument("--sizes", default="20000,200000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=20, help="results per query")
    parser.add_argument("--depth", type=int, default=200, help="candidates per signal, as retrieve()")
    parser.add_argument("--ef-search", type=int, default=512,
                        help="hnsw_ef_search passed to build_index (512: the recommended setting)")
    parser.add_argument("--hnsw-m", default="16,32", help="HNSW M values to build")
    parser.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION,
                        help="HNSW efConstruction passed to build_index")
    parser.add_argument("--noise", type=float, default=0.025, help="per-dimension noise of synthetic copies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cell-budget-s", type=float, default=4.0,
                        help="stop a latency cell after this long (at least 30 queries)")
    parser.add_argument("--build-budget-s", type=float, default=300.0,
                        help="skip an index whose build is projected (from the previous size) to take longer")
    parser.add_argument("--selectivity-queries", type=int, default=100)
    parser.add_argument("--no-ivf", action="store_true", help="skip the IVF variant")
    parser.add_argument("--query-threads", type=int, default=1,
                        help="FAISS/BLAS threads while timing queries (builds use every core)")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    hnsw_ms = [int(m) for m in args.hnsw_m.split(",") if m.strip()]

    started = time.perf_counter()
    set_threads(args.query_threads)
    version_dir = resolve_artifact(args.artifact)
    log(f"loading sample {version_dir}")
    sample = load_sample(version_dir)
    n0 = len(sample.enterprises)
    report: dict = {
        "machine": machine_info(),
        "versions": library_versions(),
        "artifact": str(version_dir),
        "sample_enterprises": n0,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    t = time.perf_counter()
    report["bm25_closed_form_check"] = check_closed_form(sample, args.seed)
    report["bm25_closed_form_check"]["seconds"] = time.perf_counter() - t
    log(f"closed-form BM25 check: {report['bm25_closed_form_check']}")
    copy_cos = replicated_vectors(sample.vectors[:2000], 4000, args.noise, np.random.default_rng(args.seed))
    report["copy_cosine_mean"] = float(np.mean(np.sum(copy_cos[2000:] * copy_cos[:2000], axis=1)))
    nn = sample.vectors[:2000] @ sample.vectors.T
    nn[np.arange(2000), np.arange(2000)] = -1
    report["sample_nearest_neighbour_cosine_median"] = float(np.median(nn.max(axis=1)))
    del copy_cos, nn

    print("## Retrieval benchmark\n")
    m = report["machine"]
    print(f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB, AVX-512 {m['avx512']}, AMX {m['amx']}, "
          f"load average at start {m['loadavg_start']}; queries timed with {args.query_threads} FAISS/BLAS thread(s). Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"\nSample {n0:,} enterprises; copies add N(0, {args.noise}²) per dimension (cosine to the original "
          f"{report['copy_cosine_mean']:.3f}; the sample's median nearest-neighbour cosine is "
          f"{report['sample_nearest_neighbour_cosine_median']:.3f}). Closed-form BM25 vs bm25s.index (2 copies): max |diff| "
          f"{report['bm25_closed_form_check']['max_abs_diff_vs_bm25s_index_2x']:.1e}; vs the published index: "
          f"{report['bm25_closed_form_check']['max_abs_diff_vs_published']:.1e}.")

    report["sizes"] = []
    previous_build: dict[str, tuple[int, float]] = {}
    for n in sizes:
        if abs(n - n0) <= 0.01 * n0:
            n = n0  # the sample itself, nothing synthesised
        log(f"size {n:,}: synthesising")
        universe = make_universe(sample, n, args.queries, args.noise, args.seed)
        t = time.perf_counter()
        truth = exact_top(universe, args.depth)
        masks_truth = selectivity_truth(universe, args) if n > n0 else []
        size = {
            "n": n,
            "synth_s": universe.synth_s,
            "truth_s": time.perf_counter() - t,
            "allowed_share": {k: float(v.mean()) for k, v in universe.masks.items()},
            "dense": [],
        }
        log(f"size {n:,}: BM25")
        size["bm25"] = bench_bm25(universe, args)
        for variant in variants_for(n, hnsw_ms, not args.no_ivf):
            estimate = None
            if variant.name in previous_build:
                n_prev, s_prev = previous_build[variant.name]
                estimate = s_prev * n / n_prev * (math.log(n) / math.log(n_prev) if variant.kind == "hnsw" else 1.0)
            log(f"size {n:,}: {variant.name}")
            result = bench_dense(universe, variant, truth, masks_truth, args, estimate)
            if "build_s" in result:
                previous_build[variant.name] = (n, result["build_s"])
            size["dense"].append(result)
        size["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        report["sizes"].append(size)
        print_size(size, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=str))
        del universe, truth, masks_truth
        gc.collect()

    report["recommendation"] = recommend(report["sizes"], args)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_s"] = time.perf_counter() - started
    print("\n**Recommendation inputs**\n")
    print("```json\n" + json.dumps(report["recommendation"], indent=1, default=str) + "\n```")
    print(f"\nTotal run time {report['total_s']:.0f} s; load average at end {report['machine']['loadavg_end']}.")
    args.out.write_text(json.dumps(report, indent=1, default=str))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
