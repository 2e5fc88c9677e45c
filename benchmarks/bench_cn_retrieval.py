"""Retrieval quality on real Chinese data: 5,440 A-share listed companies and 14 development needs.

Ingests ../shared/datasets/cn-listed/cn-listed-companies-2025-10-25.csv through
data/mappings/cn-listed.yaml (until that mapping exists: a temporary mapping over a copy whose
成立日期 is cut to a year, both under a temporary directory), builds with the configured (English
default) embedding model, answers ../shared/eval/cn_queries_dev.json with ``matcher search --batch
--top 100 --include-local --json`` and scores with ../shared/eval/cn_eval.py.

In the same run, on the same corpus text (企业名称。经营范围。主营业务): the two published baselines
(jieba ``lcut_for_search`` + BM25; character 1-2-gram TF-IDF, sublinear tf, cosine), the tokenizer
ablations that chose matcher.lexical's settings (BM25 alone), and the dense weights for Chinese
queries (fused retrieval alone and ``Catalog.search``, from the built artifact). Then, from the
built artifact, the ranking ablations (:func:`ranking_ablations`): the Chinese lexical signal (BM25
alone / BM25 + TF-IDF cosine), the industry-code evidence of a search (none / the segment the need
is placed on / the industry profile of its best matches), the cold-start weights (a gap's / a
search's), and the feedback depth of the industry profile with a leave-one-query-out check. Skips
cleanly when ../shared is absent.

    python benchmarks/bench_cn_retrieval.py [--home DIR] [--skip-ablations]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "datasets" / "cn-listed" / "cn-listed-companies-2025-10-25.csv"
QUERIES = SHARED / "eval" / "cn_queries_dev.json"
LABELLED = SHARED / "eval" / "cn_labelled_ids.json"
SCORER = SHARED / "eval" / "cn_eval.py"
MAPPING = ROOT / "data" / "mappings" / "cn-listed.yaml"
DEPTH = 100
TEMP_MAPPING = """name: cn-listed-benchmark
description: temporary mapping of bench_cn_retrieval.py (成立日期 pre-cut to a year)
columns:
  enterprise_id: 股票代码
  name: 企业名称
  description: {concat: [经营范围, 主营业务], sep: "。"}
  industry_code: 行业代码
  province: 所属省份
  founded_year: 成立年份
  employees: 员工人数
  country: {constant: CN}
is_local: {column: 所属省份, in: [上海市]}
updated_at_from_filename: '(\\d{4}-\\d{2}-\\d{2})'
"""


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], text=True, capture_output=True).stdout.splitlines()
        model = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("Model name")), "unknown CPU")
    except OSError:
        model = "unknown CPU"
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def ndcg_at(ranked: list[str], relevant: set[str], labelled: set[str], k: int = 10) -> float:
    """nDCG@k as cn_eval.py computes it (unlabelled companies dropped first)."""
    ranked = [c for c in ranked if c in labelled]
    dcg = sum(1 / math.log2(i + 2) for i, c in enumerate(ranked[:k]) if c in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def score_file(path: Path) -> dict:
    result = run([sys.executable, str(SCORER), "--queries", str(QUERIES), "--results", str(path), "--json"])
    return json.loads(result.stdout.strip().splitlines()[-1])


def source_csv(tmp: Path) -> tuple[Path, Path]:
    """(file, mapping) to ingest: the shipped mapping when it exists, else the temporary one over a
    copy with a 成立年份 column (the data set's own file name, so updated_at comes from it)."""
    if MAPPING.is_file():
        return DATA, MAPPING
    rows = list(csv.DictReader(DATA.open(encoding="utf-8")))
    copy = tmp / DATA.name
    with copy.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0].keys(), "成立年份"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "成立年份": row["成立日期"][:4]})
    mapping = tmp / "cn-listed.yaml"
    mapping.write_text(TEMP_MAPPING, encoding="utf-8")
    return copy, mapping


def baselines(texts: list[str], ids: list[str], queries: list[dict], labelled: set[str],
              out: Path | None = None) -> dict[str, float]:
    """nDCG@10 of the two published baselines (and, with ``out``, their runs written there as
    cn-baseline-*.jsonl for cn_eval.py)."""
    import bm25s
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer

    jieba.setLogLevel(60)
    retriever = bm25s.BM25()
    retriever.index([jieba.lcut_for_search(t) for t in texts], show_progress=False)
    vocab = set(retriever.vocab_dict)

    def bm25(q: str) -> np.ndarray:
        tokens = [w for w in jieba.lcut_for_search(q) if w in vocab]
        return retriever.get_scores(tokens) if tokens else np.zeros(len(texts))

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
    matrix = vectorizer.fit_transform(texts)
    runs = {"baseline: jieba lcut_for_search + BM25": bm25,
            "baseline: character 1-2-gram TF-IDF (sublinear tf, cosine)":
                lambda q: (matrix @ vectorizer.transform([q]).T).toarray().ravel()}
    results = {}
    for i, (label, score) in enumerate(runs.items()):
        results[label] = evaluate(score, ids, queries, labelled)
        if out is not None:
            (out / f"cn-baseline-{i}.jsonl").write_text("".join(
                json.dumps({"id": q["id"], "ranked": [ids[j] for j in np.argsort(-np.asarray(score(q["text"])), kind="stable")[:DEPTH]]})
                + "\n" for q in queries))
    return results


def evaluate(score, ids: list[str], queries: list[dict], labelled: set[str]) -> float:
    values = []
    for q in queries:
        order = np.argsort(-np.asarray(score(q["text"])), kind="stable")[:DEPTH]
        values.append(ndcg_at([ids[i] for i in order], set(q["relevant"]), labelled))
    return float(np.mean(values))


def tokenizer_ablations(texts: list[str], ids: list[str], queries: list[dict], labelled: set[str]) -> dict[str, float]:
    """BM25 alone with each tokenizer variant (module settings of matcher.lexical, restored after)."""
    import re

    import matcher.lexical as L

    variants = {
        "jieba lcut + character bigrams (in use)": {},
        "jieba lcut, words only": {"CJK_BIGRAMS": False},
        "jieba lcut_for_search + character bigrams": {"CJK_MODE": "search"},
        "jieba lcut_for_search, words only": {"CJK_MODE": "search", "CJK_BIGRAMS": False},
        "lcut + bigrams, single characters kept": {"DROP_SINGLE_CHARS": False},
        "lcut + bigrams, boilerplate kept": {"BOILERPLATE": re.compile(r"(?!x)x")},
        "lcut + bigrams, no Chinese stop words": {"STOPWORDS_ZH": frozenset()},
    }
    out = {}
    for label, changes in variants.items():
        saved = {k: getattr(L, k) for k in changes}
        try:
            for k, v in changes.items():
                setattr(L, k, v)
            index = L.LexicalIndex.build(texts)
            out[f"BM25 only: {label}"] = evaluate(lambda q: index.scores(index.query_tokens(q)), ids, queries, labelled)
        finally:
            for k, v in saved.items():
                setattr(L, k, v)
    return out


def dense_weights(home: Path, queries: list[dict], labelled: set[str], weights=(0.0, 0.1, 0.2, 0.3, 0.5)) -> dict[str, float]:
    """Fused retrieval alone and ``Catalog.search`` at each dense weight for the Chinese queries."""
    sys.path.insert(0, str(ROOT))
    from matcher.artifacts import version_dir
    from matcher.catalog import Catalog
    from matcher.retrieval import Filters

    catalog = Catalog.load(version_dir(home / "models" / "matcher"))
    texts = [q["text"] for q in queries]
    vectors = catalog.encoder.encode(texts)
    filters = Filters(include_local=True)
    out = {}
    for w in weights:
        catalog.dense_weight_zh = w
        fused, ranked = [], []
        for q, v in zip(queries, vectors):
            found = catalog.retrieve(v, q["text"], DEPTH, filters)
            ids = catalog.enterprises["enterprise_id"].to_numpy()[found.rows]
            fused.append(ndcg_at(list(ids), set(q["relevant"]), labelled))
        for q, result in zip(queries, catalog.search_many(texts, DEPTH, [filters] * len(texts))):
            ranked.append(ndcg_at(list(result["enterprise_id"]), set(q["relevant"]), labelled))
        out[f"fused retrieval alone, dense_weight_zh {w}"] = float(np.mean(fused))
        out[f"Catalog.search (retrieval + cold-start ranking), dense_weight_zh {w}"] = float(np.mean(ranked))
    return out


def ranking_ablations(home: Path, queries: list[dict], labelled: set[str]) -> tuple[dict[str, float], dict]:
    """What each part of a Chinese search contributes, end to end on the built artifact (the
    pieces of ``Catalog._rank_pool`` recombined), and the feedback depth's sensitivity.

    Returns (rows, {"per_query": {label: [nDCG@10 per query]}, "loo": leave-one-query-out nDCG@10
    of choosing the feedback depth on the other 13 needs}).
    """
    sys.path.insert(0, str(ROOT))
    from matcher.artifacts import version_dir
    from matcher.catalog import RANK_DEPTH, Catalog
    from matcher.chains import FEEDBACK_DOCS, code_profile
    from matcher.ranking import SEARCH_WEIGHTS, WEIGHTS, cold_start_score, component_scores
    from matcher.retrieval import Filters, retrieve_arrays

    catalog = Catalog.load(version_dir(home / "models" / "matcher"))
    ids = catalog.enterprises["enterprise_id"].to_numpy()
    ctx = catalog.context
    vectors = catalog.encoder.encode([q["text"] for q in queries])
    allowed = catalog.allowed(Filters(include_local=True))
    per_query: dict[str, list[float]] = {}

    def record(label: str, q: dict, rows: np.ndarray) -> None:
        per_query.setdefault(label, []).append(ndcg_at(list(ids[rows]), set(q["relevant"]), labelled))

    for q, v in zip(queries, vectors):
        gap = catalog.need_as_gap(q["text"], v)
        tokens = catalog.lexical.query_tokens(q["text"])
        for lexical, chinese in (("BM25", False), ("BM25 + TF-IDF cosine", True)):
            found = retrieve_arrays(catalog.searcher, catalog.lexical, v, tokens, RANK_DEPTH, allowed, depth=catalog.depth,
                                    dense_weight=catalog.dense_weight_for(q["text"]), dense_sample=catalog.dense_sample,
                                    chinese=chinese)
            record(f"retrieval alone: {lexical}", q, found.rows)
            divisions = ctx.divisions[ctx.division_index[found.rows]]
            evidence = {"no industry code": {}, "segment's codes": None}
            for depth in (5, 10, 20, 30):
                evidence[f"industry profile of the best {depth}"] = code_profile(divisions[:depth])
            for code, profile in evidence.items():
                features = catalog.features(gap, v, found.rows, found.lexical_z, profile)
                components = component_scores(features)
                for weighting, weights in (("gap weights", WEIGHTS), ("search weights", SEARCH_WEIGHTS)):
                    if code.startswith("industry profile") and code != f"industry profile of the best {FEEDBACK_DOCS}" and (
                            lexical == "BM25" or weighting == "gap weights"):
                        continue
                    score = np.round(cold_start_score(components, weights), 6)
                    record(f"ranked: {lexical}, {code}, {weighting}", q, found.rows[np.lexsort((-found.fused, -score))])
    rows = {label: float(np.mean(values)) for label, values in per_query.items()}
    depths = [label for label in per_query if "industry profile" in label and "TF-IDF" in label and "search weights" in label]
    table = np.array([per_query[label] for label in depths])
    loo = [table[np.argmax(np.delete(table, i, axis=1).mean(axis=1)), i] for i in range(table.shape[1])]
    rows[f"leave-one-query-out: feedback depth chosen on the other 13 needs ({len(depths)} depths)"] = float(np.mean(loo))
    return rows, {"per_query": per_query, "loo": float(np.mean(loo))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=ROOT / "benchmarks" / "out" / "cn-home")
    parser.add_argument("--skip-ablations", action="store_true", help="only the end-to-end run and the baselines")
    args = parser.parse_args()
    if not (DATA.is_file() and QUERIES.is_file() and SCORER.is_file() and LABELLED.is_file()):
        print(f"skipped: {SHARED} (cn-listed data set and Chinese eval set) is not available")
        return 0
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    queries = json.loads(QUERIES.read_text(encoding="utf-8"))
    labelled = set(json.loads(LABELLED.read_text()))
    matcher = [sys.executable, "-m", "pipelines"]
    rows: dict[str, float] = {}
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source, mapping = source_csv(Path(tmp))
        t = time.perf_counter()
        run([*matcher, "ingest", str(source), "--mapping", str(mapping), "--home", str(args.home)])
        build = run([*matcher, "build", "--home", str(args.home)])
        timings["ingest + build (s)"] = time.perf_counter() - t
    needs = out / "cn-needs.jsonl"
    needs.write_text("".join(json.dumps({"id": q["id"], "text": q["text"]}, ensure_ascii=False) + "\n" for q in queries),
                     encoding="utf-8")
    result = run([*matcher, "search", "--batch", str(needs), "--top", str(DEPTH), "--include-local", "--json",
                  "--home", str(args.home)])
    run_path = out / "cn-run-search.jsonl"
    run_path.write_text("".join(
        json.dumps({"id": a["id"], "ranked": [r["enterprise_id"] for r in a["results"]]}) + "\n"
        for a in map(json.loads, result.stdout.splitlines())
    ))
    end_to_end = score_file(run_path)
    rows["matcher search --batch --top 100 --include-local (what users get)"] = end_to_end["ndcg@10"]

    data = list(csv.DictReader(DATA.open(encoding="utf-8")))
    ids = [r["股票代码"] for r in data]
    texts = [f"{r['企业名称']}。{r['经营范围']}。{r['主营业务']}" for r in data]
    rows.update(baselines(texts, ids, queries, labelled, out))
    baseline_metrics = {label: score_file(out / f"cn-baseline-{i}.jsonl")
                        for i, label in enumerate(k for k in rows if k.startswith("baseline"))}
    if not args.skip_ablations:
        sys.path.insert(0, str(ROOT))
        rows.update(tokenizer_ablations(texts, ids, queries, labelled))
        rows.update(dense_weights(args.home, queries, labelled))
        ranking, details = ranking_ablations(args.home, queries, labelled)
        rows.update(ranking)
        (out / "cn_ranking_ablations.json").write_text(json.dumps(details, indent=1))

    best_baseline = max(v for k, v in rows.items() if k.startswith("baseline"))
    print(f"machine: {machine()}; jieba {version('jieba')}, bm25s {version('bm25s')}, "
          f"sentence-transformers {version('sentence-transformers')}, scikit-learn {version('scikit-learn')}")
    print(f"build: {[l for l in build.stderr.splitlines() if 'Chinese' in l][:1]}")
    print("| run | nDCG@10 | ratio to best baseline |\n|---|---|---|")
    for label, value in rows.items():
        print(f"| {label} | {value:.3f} | {value / best_baseline:.2f} |")
    print(f"end to end: {json.dumps(end_to_end)}")
    print(f"baselines (P@10, R@100, MRR as cn_eval.py): {json.dumps(baseline_metrics)}")
    (out / "cn_retrieval.json").write_text(json.dumps({"rows": rows, "end_to_end": end_to_end, "baselines": baseline_metrics,
                                                       "timings": timings, "machine": machine()}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
