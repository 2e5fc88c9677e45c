"""Retrieval quality on real data: the YC 2024-05-11 snapshot and the development queries.

Ingests ../shared/datasets/yc/yc-companies-2024-05-11.csv with data/mappings/yc.yaml (the YC tags
are carried as the non-indexed column yc_tags and never reach the index), builds, answers
../shared/eval/queries_dev.json through ``matcher search --batch`` (what users get: hybrid
retrieval, then the ranker — cold start here, as there are no YC outcomes), and scores with
../shared/eval/retrieval_eval.py. Also scores the fused retrieval alone, dense-only and BM25-only
runs from the same artifact, so the default is compared with its parts in the same run. Skips
cleanly when shared/ is absent.

    python benchmarks/bench_yc_retrieval.py [--home benchmarks/out/yc-home]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SNAPSHOT = SHARED / "datasets" / "yc" / "yc-companies-2024-05-11.csv"
QUERIES = SHARED / "eval" / "queries_dev.json"
SCORER = SHARED / "eval" / "retrieval_eval.py"
DEPTH = 100


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def score(run_path: Path) -> dict:
    result = run([sys.executable, str(SCORER), "--queries", str(QUERIES), "--snapshot", str(SNAPSHOT), "--results", str(run_path), "--json"])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=ROOT / "benchmarks" / "out" / "yc-home")
    args = parser.parse_args()
    if not (SNAPSHOT.is_file() and QUERIES.is_file() and SCORER.is_file()):
        print(f"skipped: {SHARED} (YC snapshot and eval set) is not available")
        return 0
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    home = args.home
    matcher = [sys.executable, "-m", "pipelines"]
    run([*matcher, "ingest", str(SNAPSHOT), "--mapping", str(ROOT / "data" / "mappings" / "yc.yaml"), "--home", str(home)])
    run([*matcher, "build", "--home", str(home)])

    queries = json.loads(QUERIES.read_text())
    needs = out / "yc-needs.jsonl"
    needs.write_text("".join(json.dumps({"id": q["id"], "text": q["text"]}) + "\n" for q in queries))
    rows = {}
    for label, extra in (("matcher search: fused retrieval + cold-start ranking (default: closed excluded)", []),
                         ("matcher search, closed included", ["--include-closed"])):
        result = run([*matcher, "search", "--batch", str(needs), "--top", str(DEPTH), "--json", "--home", str(home), *extra])
        path = out / f"yc-run-{len(rows)}.jsonl"
        path.write_text("".join(
            json.dumps({"id": a["id"], "ranked": [r["enterprise_id"] for r in a["results"]]}) + "\n"
            for a in map(json.loads, result.stdout.splitlines())
        ))
        rows[label] = score(path)

    # Ablations from the same artifact: each signal alone, closed included (as the baselines).
    from matcher.artifacts import version_dir
    from matcher.catalog import Catalog
    from matcher.index import top_k
    from matcher.retrieval import Filters, filter_mask, retrieve

    catalog = Catalog.load(version_dir(home / "models" / "matcher"))
    allowed = filter_mask(catalog.enterprises, Filters(include_closed=True))
    vectors = catalog.encoder.encode([q["text"] for q in queries])
    ids = catalog.enterprises["enterprise_id"].to_numpy()
    for label in ("fused retrieval only, closed included", "dense only (MiniLM, FAISS)", "BM25 only"):
        path = out / f"yc-run-{len(rows)}.jsonl"
        with open(path, "w") as handle:
            for q, v in zip(queries, vectors):
                if label.startswith("fused"):
                    found = retrieve(catalog.enterprises, catalog.searcher, catalog.lexical, v, catalog.lexical.query_tokens(q["text"]),
                                     DEPTH, Filters(include_closed=True), depth=catalog.depth, dense_weight=catalog.dense_weight)
                    pos = found["_row"].to_numpy()
                elif label.startswith("dense"):
                    pos, _ = catalog.searcher.search(v, DEPTH, allowed)
                else:
                    s = catalog.lexical.scores(catalog.lexical.query_tokens(q["text"]))
                    pos = top_k(np.where(allowed, s, -np.inf), DEPTH)
                handle.write(json.dumps({"id": q["id"], "ranked": ids[pos].tolist()}) + "\n")
        rows[label] = score(path)

    print("| run | nDCG@10 | P@10 | R@100 | MRR |\n|---|---|---|---|---|")
    for label, m in rows.items():
        print(f"| {label} | {m['ndcg@10']:.3f} | {m['p@10']:.3f} | {m['recall@100']:.3f} | {m['mrr']:.3f} |")
    (out / "yc_retrieval.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
