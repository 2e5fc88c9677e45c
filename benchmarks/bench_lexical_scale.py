"""Lexical retrieval at 1M-10M profiles: top-k over the query's postings with estimated statistics
(matcher/lexical_topk.py) against scoring every document (the exact path).

``scale SIZES``: synthetic corpora built in token-id space from a real corpus (``--corpus yc``: the
YC 2024 descriptions, English; ``cn``: the A-share 企业名称。经营范围。主营业务, Chinese with the
TF-IDF cosine), so 10M documents need no 10M tokenisations. Synthetic document j mixes two real
documents A and B drawn at random: each occurrence of a token of A is kept with probability 0.7,
of B with 0.3 (about a real document's length, real co-occurrence, real document frequencies as
shares). BM25 is bm25s's "lucene" scoring in closed form (as bench_retrieval.py). The dense signal
(English) is that of the same mixture, ``normalise(0.7 v_A + 0.3 v_B)`` of the real documents'
MiniLM vectors, so the fused top 20 can be compared. Queries: the development needs, then real
short descriptions (YC) / main businesses (A-share) as needs. Per query it times the lexical work
of retrieval (statistics, top ``--depth`` under a filter allowing ``--allowed-share``, scores of the
fused candidates), both ways, and compares the lexical top-depth and the fused top 20.

``agreement HOME``: a built artifact (the sample region, YC or A-share) answered twice through
the Catalog, with full scoring and with the estimated path forced (``--sample-size`` documents,
far fewer than production's 65,536 against corpora of 5k-20k, so the estimate is pessimistic):
overlap of the fused retrieval top 20 and of the ranked top 20, and nDCG@10 of both runs with the
shared scorers where the queries have labels.

    python benchmarks/bench_lexical_scale.py scale 1000000,10000000 --corpus yc
    python benchmarks/bench_lexical_scale.py agreement HOME --queries ../shared/eval/queries_dev.json

Writes benchmarks/out/lexical_scale-*.json; never fails on timing.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import bm25s
import numpy as np
import pandas as pd

import matcher.lexical_topk as topk
from matcher.lexical_topk import BLOCK_DOCS, BlockMax, Postings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OUT = ROOT / "benchmarks" / "out"
YC = SHARED / "datasets" / "yc" / "yc-companies-2024-05-11.csv"
CN = SHARED / "datasets" / "cn-listed" / "cn-listed-companies-2025-10-25.csv"
K1, B = 1.2, 0.75
KEEP_A, KEEP_B = 0.7, 0.3
CHUNK = 250_000


def real_corpus(corpus: str, n_queries: int, seed: int) -> tuple[list[str], list[str], bool]:
    """(document texts, query texts, Chinese?) of a real corpus."""
    rng = np.random.default_rng(seed)
    if corpus == "yc":
        frame = pd.read_csv(YC)
        texts = (frame.company_name.fillna("") + ". " + frame.short_description.fillna("") + ". "
                 + frame.long_description.fillna("")).tolist()
        needs = [q["text"] for q in json.loads((SHARED / "eval" / "queries_dev.json").read_text())]
        extra = frame.short_description.dropna().tolist()
        chinese = False
    else:
        frame = pd.read_csv(CN, dtype=str)
        texts = (frame["企业名称"].fillna("") + "。" + frame["经营范围"].fillna("") + "。" + frame["主营业务"].fillna("")).tolist()
        needs = [q["text"] for q in json.loads((SHARED / "eval" / "cn_queries_dev.json").read_text())]
        extra = [t.split("。")[0][:60] for t in frame["主营业务"].dropna()]
        chinese = True
    picked = rng.choice(len(extra), size=max(0, n_queries - len(needs)), replace=False)
    return texts, (needs + [extra[i] for i in picked])[:n_queries], chinese


def industry_groups(corpus: str) -> np.ndarray:
    """A group number per real document, near codes adjacent: the A-share 行业代码 (83 CSRC
    divisions), or a YC company's first tag."""
    if corpus == "cn":
        codes = pd.read_csv(CN, dtype=str)["行业代码"].fillna("")
    else:
        codes = pd.read_csv(YC)["tags"].fillna("").astype(str).str.split(",").str[0]
    return np.searchsorted(np.unique(codes.to_numpy()), codes.to_numpy()).astype(np.int32)


def token_matrix(tokens: list[list[str]]) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Vocabulary and the real documents as CSR term counts (indptr, token ids, counts)."""
    vocab: dict[str, int] = {}
    ids, counts, indptr = [], [], [0]
    for doc in tokens:
        for token, count in Counter(doc).items():
            ids.append(vocab.setdefault(token, len(vocab)))
            counts.append(count)
        indptr.append(len(ids))
    return vocab, np.asarray(indptr, np.int64), np.asarray(ids, np.int32), np.asarray(counts, np.int32)


def mixed_chunk(real, chunk: int, count: int, seed: int, sources: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Documents ``chunk * CHUNK ..`` of the synthetic corpus: (sources A, B, local doc, token, tf),
    the entries sorted by token then document (one sort of packed integer keys, no argsort).
    ``sources``: the documents' real sources (2, count), where the corpus is reordered."""
    indptr, ids, counts, n_vocab = real
    rng = np.random.default_rng([seed, chunk])
    drawn = rng.integers(0, len(indptr) - 1, size=(2, count))
    sources = drawn if sources is None else sources
    keys = []
    for which, keep in ((sources[0], KEEP_A), (sources[1], KEEP_B)):
        lengths = indptr[which + 1] - indptr[which]
        flat = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(indptr[which], lengths)
        tf = np.minimum(rng.binomial(counts[flat], keep), 63)
        kept = tf > 0
        doc = np.repeat(np.arange(count, dtype=np.int64), lengths)[kept]
        keys.append(((ids[flat][kept].astype(np.int64) * count + doc) << 6) | tf[kept])
    key = np.sort(np.concatenate(keys))
    pair = key >> 6
    starts = np.flatnonzero(np.concatenate([[True], pair[1:] != pair[:-1]]))
    tf = np.add.reduceat(key & 63, starts).astype(np.int32)
    pair = pair[starts]
    return sources[0], sources[1], pair % count, (pair // count).astype(np.int32), tf


def synthetic_index(real, n_docs: int, chinese: bool, seed: int, on_disk: Path | None = None,
                    groups: np.ndarray | None = None):
    """The synthetic corpus's BM25 postings (and TF-IDF cosine postings when ``chinese``); with
    ``on_disk``, written into memory-mapped files there (10M Chinese: ~20 GB of postings, more
    than this machine's memory holds beside the generator) and read back mapped, as a saved index
    is served, and reused by a later run asking for the same corpus. ``groups``: a group number
    per real document (its industry): the synthetic documents are then ordered by their main
    source's group."""
    from scipy import sparse

    from matcher.lexical_tfidf import TfidfCosine

    n_vocab = real[3]
    key = dict(n_docs=n_docs, chinese=chinese, seed=seed, vocab=n_vocab, ordered=groups is not None)
    if on_disk is not None and (on_disk / "corpus.json").is_file() and json.loads((on_disk / "corpus.json").read_text()) == key:
        print(f"  reusing the corpus in {on_disk}", flush=True)
        return _mapped_corpus(on_disk, n_docs, chinese)
    chunks = [(c, min(CHUNK, n_docs - c * CHUNK)) for c in range((n_docs + CHUNK - 1) // CHUNK)]
    df = np.zeros(n_vocab, np.int64)
    doc_len = np.zeros(n_docs, np.float32)
    sources = np.zeros((2, n_docs), np.int32)
    ordered = None
    if groups is not None:
        for c, count in chunks:
            sources[:, c * CHUNK:c * CHUNK + count] = np.random.default_rng([seed, c]).integers(0, len(real[0]) - 1, size=(2, count))
        ordered = sources[:, np.argsort(groups[sources[0]], kind="stable")]

    def chunk_of(c: int, count: int):
        return mixed_chunk(real, c, count, seed, None if ordered is None else ordered[:, c * CHUNK:c * CHUNK + count])

    for c, count in chunks:  # pass 1: document frequencies and lengths
        a, b, doc, tok, tf = chunk_of(c, count)
        sources[:, c * CHUNK:c * CHUNK + count] = a, b
        df += np.bincount(tok, minlength=n_vocab)
        doc_len[c * CHUNK:c * CHUNK + count] = np.bincount(doc, weights=tf, minlength=count)
    indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
    idf_c = (np.log((1 + n_docs) / (1 + df)) + 1).astype(np.float32)
    avg_len = float(doc_len.mean())

    def array(name: str, dtype) -> np.ndarray:
        if on_disk is None:
            return np.empty(indptr[-1], dtype)
        on_disk.mkdir(parents=True, exist_ok=True)
        return np.lib.format.open_memmap(on_disk / f"{name}.npy", mode="w+", dtype=dtype, shape=(int(indptr[-1]),))

    indices = array("indices", np.int32)
    data = array("data", np.float32)
    cosine = array("cosine", np.float32) if chinese else None
    cursor = indptr[:-1].copy()
    for c, count in chunks:  # pass 2: scores, written column by column in document order
        _, _, doc, tok, tf = chunk_of(c, count)
        rows = doc + c * CHUNK
        per_token = np.bincount(tok, minlength=n_vocab)
        at = np.repeat(cursor - (np.cumsum(per_token) - per_token), per_token) + np.arange(len(tok))
        indices[at] = rows
        data[at] = idf[tok] * tf / (K1 * ((1.0 - B) + B * doc_len[rows] / avg_len) + tf)
        if chinese:
            w = (1 + np.log(tf)) * idf_c[tok]
            norm = np.sqrt(np.bincount(doc, weights=w * w, minlength=count))
            cosine[at] = w / norm[doc]
        cursor += per_token
        print(f"  postings of documents to {c * CHUNK + count:,} written", flush=True)
    if on_disk is None:
        tfidf = TfidfCosine(sparse.csc_matrix((cosine, indices, indptr), shape=(n_docs, n_vocab)), idf_c) if chinese else None
        return data, indices, indptr, tfidf, sources
    for written in (indices, data, cosine):  # flushed, then mapped read-only as a served index is
        if written is not None:
            written.flush()
    np.save(on_disk / "indptr.npy", indptr)
    np.save(on_disk / "idf.npy", idf_c)
    np.save(on_disk / "sources.npy", sources)
    (on_disk / "corpus.json").write_text(json.dumps(key))
    del indices, data, cosine
    return _mapped_corpus(on_disk, n_docs, chinese)


def _mapped_corpus(folder: Path, n_docs: int, chinese: bool):
    """A corpus written by :func:`synthetic_index`, its postings memory-mapped."""
    from scipy import sparse

    from matcher.lexical_tfidf import TfidfCosine

    def mapped(name: str) -> np.ndarray:
        return np.load(folder / f"{name}.npy", mmap_mode="r").view(np.ndarray)

    indptr, idf_c, sources = np.load(folder / "indptr.npy"), np.load(folder / "idf.npy"), np.load(folder / "sources.npy")
    indices, data = mapped("indices"), mapped("data")
    tfidf = None
    if chinese:
        tfidf = TfidfCosine(sparse.csc_matrix((mapped("cosine"), indices, indptr), shape=(n_docs, len(idf_c))), idf_c)
    return data, indices, indptr, tfidf, sources


def lexical_index(vocab, data, indices, indptr, n_docs, tfidf, sample_size: int, block_docs: int):
    from matcher.lexical import LexicalIndex

    retriever = bm25s.BM25(k1=K1, b=B)
    retriever.vocab_dict = dict(vocab)
    retriever.unique_token_ids_set = set(vocab.values())
    retriever.nonoccurrence_array = None
    retriever.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}
    bm25 = Postings(data, indices, indptr)
    tfidf_postings = None if tfidf is None else Postings(tfidf.matrix.data, tfidf.matrix.indices, tfidf.matrix.indptr)
    blocks = BlockMax.build(n_docs, bm25, tfidf_postings, block_docs=block_docs)
    return LexicalIndex(retriever, tfidf=tfidf, sample_size=sample_size, blocks=blocks)


def real_vectors(corpus: str, texts: list[str], queries: list[str], scratch: Path) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors of the real documents (cached under ``scratch``) and of the queries."""
    from matcher.embedding import Encoder

    encoder = Encoder()
    cache = scratch / f"{corpus}-vectors.npy"
    if cache.is_file() and len(np.load(cache, mmap_mode="r")) == len(texts):
        docs = np.load(cache)
    else:
        docs = encoder.encode(texts)
        np.save(cache, docs)
    return docs, encoder.encode(queries)


def postings_of(index, tokens: list[str]) -> int:
    """Postings of a query's distinct tokens."""
    vocab, indptr = index.retriever.vocab_dict, index.retriever.scores["indptr"]
    ids = np.unique([vocab[t] for t in tokens if t in vocab]).astype(np.int64)
    return int((indptr[ids + 1] - indptr[ids]).sum())


def percentile(values, q):
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def run_scale(args) -> dict:
    from matcher.index import top_k
    from matcher.lexical import tokenize
    from matcher.retrieval import fuse

    if args.full_scan_share is not None:
        topk.FULL_SCAN_SHARE = args.full_scan_share
    texts, queries, chinese = real_corpus(args.corpus, args.queries, args.seed)
    t = time.perf_counter()
    tokens = tokenize(texts)
    vocab, *csr = token_matrix(tokens)
    real = (*csr, len(vocab))
    print(f"{args.corpus}: {len(texts)} real documents, {len(vocab)} tokens ({time.perf_counter() - t:.1f} s)", flush=True)
    weight = 0.0 if chinese else 0.5  # dense_weight_zh / dense_weight defaults
    if not chinese:
        doc_vectors, query_vectors = real_vectors(args.corpus, texts, queries, args.scratch)
    query_tokens = [[t for t in toks if t in vocab] for toks in tokenize(queries)]
    results = []
    for n_docs in args.sizes:
        gc.collect()
        t = time.perf_counter()
        data, indices, indptr, tfidf, sources = synthetic_index(
            real, n_docs, chinese, args.seed, args.postings_on_disk,
            industry_groups(args.corpus) if args.order == "industry" else None)
        t_gen = time.perf_counter() - t
        t = time.perf_counter()
        index = lexical_index(vocab, data, indices, indptr, n_docs, tfidf, args.sample_size, args.block_docs[0])
        t_stats = time.perf_counter() - t
        stats = index.stats
        tables = {}
        for block_docs in args.block_docs:
            t = time.perf_counter()
            tables[block_docs] = BlockMax.build(n_docs, *index._postings(), block_docs=block_docs)
            blocks = tables[block_docs]
            print(f"{block_docs}-document blocks: {blocks.blocks:,} blocks, {int((blocks.slot >= 0).sum()):,} tokens with a "
                  f"table, {blocks.nbytes / 2**20:.1f} MB, built in {time.perf_counter() - t:.1f} s", flush=True)
        paths = [("exact", n_docs, None)] + [(f"blocks{b}", 0, tables[b]) for b in args.block_docs]
        if args.maxscore:
            paths.append(("maxscore", 0, None))
        index_bytes = data.nbytes + indices.nbytes + indptr.nbytes + (
            tfidf.matrix.data.nbytes + tfidf.idf.nbytes if tfidf is not None else 0)
        stats_bytes = sum(v.nbytes for v in vars(stats).values() if isinstance(v, np.ndarray)) + sum(
            p.data.nbytes + p.indices.nbytes + p.indptr.nbytes for p in (stats.sample_b, stats.sample_c) if p is not None)
        print(f"{n_docs:,}: {len(data):,} postings, generated in {t_gen:.0f} s, statistics in {t_stats:.1f} s", flush=True)
        if not chinese:
            gram = doc_vectors @ doc_vectors.T  # real x real cosines, so a mixture's norm is a lookup
            pair = gram[sources[0], sources[1]]
            del gram
            inv_norm = (1.0 / np.sqrt(KEEP_A ** 2 + KEEP_B ** 2 + 2 * KEEP_A * KEEP_B * pair)).astype(np.float32)
        allowed = np.random.default_rng(args.seed).random(n_docs) < args.allowed_share
        rows = []
        for qi, toks in enumerate(query_tokens):
            if not chinese:
                sims = doc_vectors @ query_vectors[qi]
                dense_all = (KEEP_A * sims[sources[0]] + KEEP_B * sims[sources[1]]) * inv_norm
                dense_all[~allowed] = -np.inf
                dense_pos = np.sort(top_k(dense_all, args.depth))
                sample = dense_all[:: max(1, n_docs // 4096)][:4096]
                sample = np.where(np.isfinite(sample), sample, 0)
                dense_stats = (float(sample.mean()), float(sample.std()))
            else:
                dense_all, dense_pos, dense_stats = np.zeros(n_docs, np.float32), np.zeros(0, np.int64), (0.0, 0.0)
            out = {}
            for label, exact_max, blocks in paths:
                index.blocks = blocks
                times, cpu = [], []
                for _ in range(args.repeat):
                    t, c = time.perf_counter(), time.process_time()
                    relevance = index.query(toks, chinese, exact_max)
                    lexical_pos = relevance.top(allowed, args.depth)
                    candidates = np.union1d(dense_pos, lexical_pos)
                    values = relevance.rows(candidates)
                    times.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                order, _ = fuse(candidates, dense_all[candidates], values, dense_stats, (relevance.mean, relevance.sd), weight)
                out[label] = dict(ms=1000 * min(times), cpu_ms=1000 * min(cpu), sd=relevance.sd, lexical=lexical_pos,
                                  fused=candidates[order[:20]], counts=getattr(relevance, "visit_counts", np.zeros(4)).copy())
            x = out["exact"]
            for label, _, blocks in paths[1:]:
                e = out[label]
                rows.append(dict(
                    path=label, tokens=len(toks), exact_ms=x["ms"], estimated_ms=e["ms"], exact_cpu_ms=x["cpu_ms"],
                    estimated_cpu_ms=e["cpu_ms"], sd_ratio=e["sd"] / x["sd"] if x["sd"] else None,
                    visited_share=e["counts"][0] / blocks.blocks if blocks is not None else None,
                    read_share=e["counts"][1] / max(1, postings_of(index, toks)) if blocks is not None else None,
                    pruned_share=e["counts"][3] / max(1, e["counts"][0]) if blocks is not None else None,
                    lexical_same=bool(np.array_equal(e["lexical"], x["lexical"])),
                    lexical_overlap=len(np.intersect1d(e["lexical"], x["lexical"])) / max(1, len(x["lexical"])),
                    fused_overlap=len(np.intersect1d(e["fused"], x["fused"])) / max(1, len(x["fused"])),
                ))
        summary = dict(
            size=n_docs, postings=int(len(data)), generate_s=round(t_gen, 1), statistics_s=round(t_stats, 2),
            index_mb=round(index_bytes / 2**20, 1), statistics_mb=round(stats_bytes / 2**20, 1),
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), queries=len(query_tokens),
            full_scan_share=topk.FULL_SCAN_SHARE, paths={},
        )
        everything = pd.DataFrame(rows)
        for label, _, blocks in paths[1:]:
            frame = everything[everything.path == label]
            summary["paths"][label] = dict(
                exact_p50_ms=percentile(frame.exact_ms, 50), exact_p95_ms=percentile(frame.exact_ms, 95),
                exact_cpu_p50_ms=percentile(frame.exact_cpu_ms, 50), exact_cpu_p95_ms=percentile(frame.exact_cpu_ms, 95),
                estimated_p50_ms=percentile(frame.estimated_ms, 50), estimated_p95_ms=percentile(frame.estimated_ms, 95),
                estimated_cpu_p50_ms=percentile(frame.estimated_cpu_ms, 50),
                estimated_cpu_p95_ms=percentile(frame.estimated_cpu_ms, 95),
                lexical_top_identical=float(frame.lexical_same.mean()), lexical_top_overlap_min=float(frame.lexical_overlap.min()),
                fused_top20_overlap_mean=float(frame.fused_overlap.mean()), fused_top20_overlap_min=float(frame.fused_overlap.min()),
                sd_ratio_min=float(frame.sd_ratio.min()), sd_ratio_max=float(frame.sd_ratio.max()),
                **(dict(block_docs=1 << blocks.shift, blocks=blocks.blocks, tables_mb=round(blocks.nbytes / 2**20, 1),
                        tabled_tokens=int((blocks.slot >= 0).sum()),
                        visited_share_p50=percentile(frame.visited_share, 50),
                        visited_share_p95=percentile(frame.visited_share, 95),
                        postings_read_share_p50=percentile(frame.read_share, 50),
                        postings_read_share_p95=percentile(frame.read_share, 95),
                        pruned_share_p50=percentile(frame.pruned_share, 50)) if blocks is not None else {}),
            )
        print(json.dumps(summary), flush=True)
        results.append(summary)
        del index, data, indices, indptr, tfidf, sources
    return dict(corpus=args.corpus, depth=args.depth, allowed_share=args.allowed_share, sample_size=args.sample_size,
                results=results)


def run_agreement(args) -> dict:
    """The same queries through a built artifact with full scoring and with the estimated path."""
    from matcher.artifacts import version_dir
    from matcher.catalog import Catalog
    from matcher.lexical_topk import LexicalStats
    from matcher.retrieval import Filters

    catalog = Catalog.load(version_dir(args.home / "models" / "matcher"))
    filters = Filters(include_local=args.include_local)
    if args.queries:
        queries = json.loads(args.queries.read_text(encoding="utf-8"))
        asks = [(q["id"], q["text"], None) for q in queries]
    else:  # the artifact's own gaps
        asks = [(g["gap_id"], catalog.match_text(g), g["gap_id"]) for g in catalog.gaps]
    vectors = catalog.encoder.encode([text for _, text, _ in asks])

    def answer() -> tuple[list, list]:
        fused, ranked = [], []
        for (qid, text, gap_id), vector in zip(asks, vectors):
            found = catalog._retrieve(vector, text, 20, filters)
            fused.append(found.rows.tolist())
            top = catalog.prospects(gap_id, args.top, filters) if gap_id else catalog.search(text, args.top, filters)
            ranked.append(top["enterprise_id"].tolist())
        return fused, ranked

    exact = answer()
    lexical = catalog.lexical
    n = lexical.num_docs
    lexical.stats = LexicalStats.build(n, *lexical._postings(), size=args.sample_size)
    lexical.exact_max = 0
    estimated = answer()
    overlap = [[len(set(a[:20]) & set(b[:20])) / max(1, min(20, len(a))) for a, b in zip(x, y)]
               for x, y in zip(exact, estimated)]
    out = dict(home=str(args.home), documents=n, queries=len(asks), sample_size=args.sample_size,
               fused_top20_overlap_mean=float(np.mean(overlap[0])), fused_top20_overlap_min=float(np.min(overlap[0])),
               ranked_top20_overlap_mean=float(np.mean(overlap[1])), ranked_top20_overlap_min=float(np.min(overlap[1])),
               ranked_top20_identical=float(np.mean([a[:20] == b[:20] for a, b in zip(exact[1], estimated[1])])))
    if args.scorer:
        for label, (_, ranked) in (("exact", exact), ("estimated", estimated)):
            path = OUT / f"lexical-agreement-{label}.jsonl"
            path.write_text("".join(json.dumps({"id": qid, "ranked": r}) + "\n" for (qid, _, _), r in zip(asks, ranked)))
            cmd = [sys.executable, str(args.scorer), "--queries", str(args.queries), "--results", str(path), "--json"]
            if args.snapshot:
                cmd += ["--snapshot", str(args.snapshot)]
            metrics = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            out[f"ndcg@10_{label}"] = round(float(metrics["ndcg@10"]), 4)
    return out


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return dict(cpu=next((line.split(":", 1)[1].strip() for line in lscpu if line.startswith("Model name")), platform.processor()),
                cores=len(__import__("os").sched_getaffinity(0)), python=platform.python_version(),
                **{name: version(name) for name in ("numpy", "scipy", "bm25s", "jieba")})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    scale = sub.add_parser("scale", help="synthetic corpora of the given sizes")
    scale.add_argument("sizes", type=lambda s: [int(float(x)) for x in s.split(",")], help="e.g. 1000000,10000000")
    scale.add_argument("--corpus", choices=("yc", "cn"), default="yc")
    scale.add_argument("--queries", type=int, default=100)
    scale.add_argument("--depth", type=int, default=200, help="lexical candidates per query (retrieval_depth)")
    scale.add_argument("--allowed-share", type=float, default=0.83, help="share of documents the filter allows")
    scale.add_argument("--sample-size", type=int, default=65_536, help="documents in the statistics sample")
    scale.add_argument("--repeat", type=int, default=2, help="timings per query (the best is kept)")
    scale.add_argument("--scratch", type=Path, default=OUT, help="cache of the real documents' vectors")
    scale.add_argument("--seed", type=int, default=0)
    scale.add_argument("--block-docs", type=lambda s: [int(x) for x in s.split(",")], default=[BLOCK_DOCS],
                       help="documents per block of the block-max tables, e.g. 1024,4096,16384 (each timed)")
    scale.add_argument("--maxscore", action="store_true", help="also time MaxScore with one maximum per term")
    scale.add_argument("--full-scan-share", type=float, help="lexical_topk.FULL_SCAN_SHARE for this run")
    scale.add_argument("--order", choices=("random", "industry"), default="random",
                       help="document order: as drawn, or by the main source's industry (as a build orders profiles)")
    scale.add_argument("--postings-on-disk", type=Path, metavar="DIR",
                       help="write the synthetic postings to memory-mapped files in DIR (10M Chinese needs ~20 GB)")
    agree = sub.add_parser("agreement", help="a built artifact, full scoring against the estimated path")
    agree.add_argument("home", type=Path, help="workspace with a published version")
    agree.add_argument("--queries", type=Path, help="needs as JSON [{id, text}]; default: the artifact's gaps")
    agree.add_argument("--scorer", type=Path, help="shared scorer (retrieval_eval.py or cn_eval.py) for nDCG@10")
    agree.add_argument("--snapshot", type=Path, help="the scorer's --snapshot (retrieval_eval.py)")
    agree.add_argument("--include-local", action="store_true")
    agree.add_argument("--top", type=int, default=100)
    agree.add_argument("--sample-size", type=int, default=512)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.command == "scale":
        if not (YC.is_file() and CN.is_file()):
            print(f"skipped: {SHARED} (the YC and A-share corpora) is not available")
            return 0
        args.scratch.mkdir(parents=True, exist_ok=True)
        report = run_scale(args)
        name = f"lexical_scale-{args.corpus}-{'-'.join(str(s) for s in args.sizes)}.json"
    else:
        report = run_agreement(args)
        print(json.dumps(report), flush=True)
        name = f"lexical_agreement-{args.home.name}.json"
    report["machine"] = machine()
    (OUT / name).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
