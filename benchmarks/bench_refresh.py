"""Nightly refresh against a full rebuild: real YC pair and a 200k synthetic universe.

``--part yc`` (skips cleanly without ../shared): ingest + build the YC 2023-02-27 snapshot, then
``matcher refresh`` with the 2024-05-11 one. Reported: the diff counts, profiles embedded, the
refresh's wall time against a full rebuild of the refreshed snapshot from scratch (fresh
workspace, empty embedding cache: ingest + build, every profile embedded), and whether both give
the same standing prospect lists (top 50 of every gap): compared with the from-scratch rebuild
(re-embedded vectors: same ids and ranks expected, scores within bf16 noise) and with a rebuild
that reads the same vectors from the cache (bit-for-bit identical expected).

``--part synthetic``: ``matcher sample --n 200000``; build it (HNSW index); then a new export with
1% of profiles changed (a sentence added to the business scope), 0.5% new enterprises and 2% with
a new head count; ``matcher refresh`` with it (the refresh embeds its new and changed profiles
with the real model). The full-rebuild baseline of the new export is ingest + build with every
vector already in the cache (measured: index, BM25, chains, standing lists, publish) plus the
embedding of every profile, which is *estimated* from the real model's throughput on 2,000 of these
profiles measured in the same run — embedding 200k profiles takes 20+ minutes on an idle 2-core
machine and far longer on a shared one. With ``--prefill`` the base snapshot's cache is filled
with stand-in vectors (a hashing of the words) so the base build costs no model time either; the
refresh's timing is unaffected (its reused vectors are read, not computed). ``--rebuild-new``
measures the from-scratch rebuild of the new export for real instead of estimating it. Also
reported: recall@10 of the refreshed HNSW index against exact search (measured by the refresh) and
the top-20 overlap per gap with the rebuild that reads the same vectors.

Every command runs as a subprocess (``python -m pipelines ...``), timed by wall clock, on the same
machine in the same run; compare the ratio. Writes ``benchmarks/out/refresh-<part>.json``.

    python benchmarks/bench_refresh.py --part yc
    python benchmarks/bench_refresh.py --part synthetic [--n 200000] [--prefill] [--rebuild-new]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YC = SHARED / "datasets" / "yc"
YC_MAPPING = ROOT / "data" / "mappings" / "yc.yaml"
SAMPLE_MAPPING = ROOT / "data" / "mappings" / "sample.yaml"
OUT = ROOT / "benchmarks" / "out"
MATCHER = [sys.executable, "-m", "pipelines"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def matcher(*args, expect=(0,)) -> tuple[dict | list | None, float, int]:
    """Run ``matcher ARGS --json``; (parsed stdout, wall seconds, exit code)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    result = subprocess.run([*MATCHER, *map(str, args), "--json"], text=True, capture_output=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode not in expect:
        raise RuntimeError(f"matcher {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return (json.loads(lines[-1]) if lines else None), seconds, result.returncode


def current_dir(home: Path) -> Path:
    artifacts = home / "models" / "matcher"
    return artifacts / (artifacts / "CURRENT").read_text().strip()


def standing(home: Path) -> pd.DataFrame:
    return pd.read_parquet(current_dir(home) / "prospects.parquet")


def compare_standing(a: pd.DataFrame, b: pd.DataFrame, top: int = 20) -> dict:
    """Same top ``top`` per gap (ids in rank order), and the largest score difference."""
    gaps = sorted(set(a["gap_id"]) | set(b["gap_id"]))
    same, overlap = 0, []
    for gap in gaps:
        x = a[(a["gap_id"] == gap) & (a["rank"] <= top)].sort_values("rank")["enterprise_id"].tolist()
        y = b[(b["gap_id"] == gap) & (b["rank"] <= top)].sort_values("rank")["enterprise_id"].tolist()
        same += x == y
        overlap.append(len(set(x) & set(y)) / max(len(x), len(y), 1))
    merged = a.merge(b, on=["gap_id", "enterprise_id"], suffixes=("_a", "_b"))
    return {
        "gaps": len(gaps), f"gaps_with_identical_top{top}": same, f"mean_top{top}_overlap": round(float(np.mean(overlap)), 4),
        "max_score_difference": float((merged["score_a"] - merged["score_b"]).abs().max()) if len(merged) else None,
        "identical_standing_lists": bool(a.drop(columns="ranked_in", errors="ignore").reset_index(drop=True)
                                         .equals(b.drop(columns="ranked_in", errors="ignore").reset_index(drop=True))),
    }


def fresh_home_with_snapshot(home: Path, source_home: Path, snapshot_id: str, cache: bool) -> Path:
    shutil.rmtree(home, ignore_errors=True)
    (home / "models" / "snapshots").mkdir(parents=True)
    shutil.copytree(source_home / "models" / "snapshots" / snapshot_id, home / "models" / "snapshots" / snapshot_id)
    if cache:
        shutil.copytree(source_home / "models" / "cache", home / "models" / "cache")
    return home


def machine() -> dict:
    from importlib.metadata import version

    cpu = platform.processor()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version(),
            **{p: version(p) for p in ("faiss-cpu", "numpy", "pandas", "torch", "sentence-transformers", "openvino", "bm25s")}}


def bench_yc(work: Path) -> dict:
    before, after = YC / "yc-companies-2023-02-27.csv", YC / "yc-companies-2024-05-11.csv"
    if not (before.is_file() and after.is_file()):
        print(f"skipped: the YC snapshots are not in {YC}")
        return {"skipped": True}
    home = work / "yc-refresh"
    shutil.rmtree(home, ignore_errors=True)
    log("ingest + build 2023")
    matcher("ingest", before, "--mapping", YC_MAPPING, "--home", home)
    matcher("build", "--home", home)
    log("refresh with 2024")
    record, refresh_s, code = matcher("refresh", after, "--mapping", YC_MAPPING, "--home", home)
    snapshot_id = record["snapshot_id"]

    log("full rebuild of the refreshed snapshot from scratch (ingest + build, empty cache)")
    scratch = work / "yc-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    _, ingest_s, _ = matcher("ingest", after, "--mapping", YC_MAPPING, "--home", scratch)
    fresh_home_with_snapshot(scratch, home, snapshot_id, cache=False)  # same rows, same order as the refresh's
    full, build_s, _ = matcher("build", "--home", scratch)
    log("rebuild of the refreshed snapshot reading the same vectors from the cache")
    cached = fresh_home_with_snapshot(work / "yc-cached", home, snapshot_id, cache=True)
    matcher("build", "--home", cached)
    result = {
        "diff": {k: record["counts"][k] for k in ("enterprises_before", "enterprises", "added", "removed", "changed_text",
                                                  "changed_other", "unchanged", "quarantined")},
        "profiles_embedded_by_refresh": record["counts"]["embedded"],
        "profiles_to_embed": record["counts"].get("profiles_to_embed"),
        "index": record.get("index"),
        "refresh_status": record["status"], "refresh_exit_code": code,
        "refresh_s": round(refresh_s, 1), "refresh_steps_s": record.get("timings"),
        "full_rebuild_s": round(ingest_s + build_s, 1), "full_rebuild_ingest_s": round(ingest_s, 1),
        "full_rebuild_build_s": round(build_s, 1), "full_rebuild_embedded": full["counts"]["embedded"],
        "refresh_over_full": round(refresh_s / (ingest_s + build_s), 3),
        "vs_full_rebuild_from_scratch": compare_standing(standing(home), standing(scratch)),
        "vs_rebuild_same_vectors": compare_standing(standing(home), standing(cached)),
    }
    log(json.dumps(result, default=str))
    return result


def synthetic_export(current: Path, target: Path, seed: int = 0, changed: float = 0.01, added: float = 0.005,
                     numbers: float = 0.02) -> dict:
    """The next night's export: ``changed`` of profiles get a new sentence, ``added`` new firms
    (copies of random firms with new ids and names), ``numbers`` a new head count."""
    rng = np.random.default_rng(seed)
    raw = pd.read_csv(current, dtype=str, keep_default_na=False)
    n = len(raw)
    picks = rng.permutation(n)
    text_rows = picks[: int(changed * n)]
    number_rows = picks[int(changed * n): int(changed * n) + int(numbers * n)]
    extra = ["It recently opened a research centre for industrial AI inspection.",
             "In 2026 it added a subscription service for hospital laboratories.",
             "The company now also exports battery recycling equipment to Europe."]
    raw.loc[text_rows, "business_scope"] = [f"{raw.at[i, 'business_scope']} {extra[k % 3]}" for k, i in enumerate(text_rows)]
    staff = pd.to_numeric(raw.loc[number_rows, "staff_count"], errors="coerce")
    raw.loc[number_rows, "staff_count"] = [str(int(v * 1.3) + 1) if v == v else "12" for v in staff]
    new = raw.iloc[rng.choice(n, size=int(added * n), replace=False)].copy()
    new["uscc"] = [f"NEW{seed:02d}{i:013d}" for i in range(len(new))]
    new["company_name"] = [f"{name} Newco {i}" for i, name in enumerate(new["company_name"])]
    pd.concat([raw, new], ignore_index=True).to_csv(target, index=False)
    return {"rows": n + len(new), "text_changed": len(text_rows), "headcount_changed": len(number_rows), "added": len(new)}


def prefill_cache(home: Path) -> int:
    """Put a stand-in vector for every profile of the newest snapshot into the embedding cache
    (a 384-dimensional signed hashing of the words), so the base build needs no model time."""
    import hashlib
    import re

    from matcher.embedding import EmbeddingCache
    from matcher.embedding_models import encoder_key
    from matcher.snapshot import find_snapshot, load_enterprises, profile_texts

    enterprises = load_enterprises(find_snapshot(home / "models" / "snapshots"))
    texts = profile_texts(enterprises)
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in re.findall(r"[a-z0-9]+", text.lower()):
            digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
            vectors[row, int.from_bytes(digest[:4], "little") % 384] += 1.0 if digest[4] & 1 else -1.0
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cache = EmbeddingCache(home / "models" / "cache" / "embeddings" / encoder_key("all-MiniLM-L6-v2", "auto"), 384)
    cache.add(enterprises["profile_hash"].tolist(), vectors)
    return len(texts)


def embedding_rate(texts: list[str]) -> dict:
    """Profiles per second of the build's encoder (OpenVINO where installed) on these texts."""
    from matcher.embedding import Encoder

    started = time.perf_counter()
    encoder = Encoder("all-MiniLM-L6-v2")
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    encoder.encode(texts)
    seconds = time.perf_counter() - started
    return {"texts": len(texts), "seconds": round(seconds, 1), "per_s": round(len(texts) / seconds, 1),
            "model_load_s": round(load_s, 1), "backend": encoder.backend}


def bench_synthetic(work: Path, n: int, rebuild_new: bool, prefill: bool) -> dict:
    home = work / "synthetic"
    samples = home / "data" / "samples"
    if not (samples / "enterprises.csv").is_file():
        shutil.rmtree(home, ignore_errors=True)
        log(f"sample {n}")
        matcher("sample", "--n", n, "--seed", 11, "--home", home)
    shutil.rmtree(home / "models", ignore_errors=True)
    result: dict = {"n": n}
    _, base_ingest_s, _ = matcher("ingest", samples / "enterprises.csv", "--mapping", SAMPLE_MAPPING, "--home", home)
    if prefill:
        log("prefill the embedding cache of the base snapshot with stand-in vectors")
        result["base_prefilled_profiles"] = prefill_cache(home)
    log("build of the base snapshot")
    base, base_build_s, _ = matcher("build", "--home", home)
    result.update(base_index=base["index"]["factory"], base_ingest_s=round(base_ingest_s, 1), base_build_s=round(base_build_s, 1),
                  base_build_embedded=base["counts"]["embedded"], base_build_timings=base["timings"])
    export = samples / "enterprises-next.csv"
    result["export"] = synthetic_export(samples / "enterprises.csv", export)
    from matcher.snapshot import find_snapshot, load_enterprises, profile_texts

    texts = profile_texts(load_enterprises(find_snapshot(home / "models" / "snapshots")).sample(2000, random_state=0))
    log("embedding throughput of the real model on 2,000 of these profiles (before the refresh)")
    rate_before = embedding_rate(texts)
    log("refresh")
    record, refresh_s, code = matcher("refresh", export, "--mapping", SAMPLE_MAPPING, "--home", home)
    log(f"refresh {refresh_s:.0f} s: {record['counts']} {record.get('timings')}")
    result.update(refresh_s=round(refresh_s, 1), refresh_status=record["status"], refresh_exit_code=code,
                  refresh_steps_s=record.get("timings"), counts=record["counts"], index=record.get("index"))

    log("full rebuild of the new export: ingest, then build with every vector in the cache")
    scratch = work / "synthetic-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    _, ingest_s, _ = matcher("ingest", export, "--mapping", SAMPLE_MAPPING, "--home", scratch)
    cached = fresh_home_with_snapshot(work / "synthetic-cached", home, record["snapshot_id"], cache=True)
    full_cached, cached_s, _ = matcher("build", "--home", cached)
    result.update(full_rebuild_ingest_s=round(ingest_s, 1), full_rebuild_without_embedding_s=round(cached_s, 1),
                  full_rebuild_without_embedding_timings=full_cached["timings"],
                  vs_rebuild_same_vectors=compare_standing(standing(home), standing(cached)))
    log("embedding throughput of the real model on the same 2,000 profiles (after)")
    rate_after = embedding_rate(texts)
    # Load on a shared machine changes within minutes: the mean of the rates measured just before
    # the refresh and just after the rebuild.
    per_s = (rate_before["per_s"] + rate_after["per_s"]) / 2
    rate = {"before": rate_before, "after": rate_after, "per_s_used": round(per_s, 1)}
    embed_all_s = full_cached["counts"]["enterprises"] / per_s + rate_after["model_load_s"]
    full_s = ingest_s + cached_s + embed_all_s
    result.update(embedding_rate=rate, full_rebuild_embedding_estimate_s=round(embed_all_s, 1),
                  full_rebuild_estimate_s=round(full_s, 1), refresh_over_full_rebuild_estimate=round(refresh_s / full_s, 4),
                  refresh_over_full_rebuild_without_embedding=round(refresh_s / (ingest_s + cached_s), 4))
    shutil.rmtree(cached, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    if rebuild_new:
        log("full rebuild of the new export from scratch (ingest + build, empty cache)")
        scratch = work / "synthetic-scratch"
        _, ingest_s, _ = matcher("ingest", export, "--mapping", SAMPLE_MAPPING, "--home", scratch)
        fresh_home_with_snapshot(scratch, home, record["snapshot_id"], cache=False)
        _, build_s, _ = matcher("build", "--home", scratch)
        result.update(full_rebuild_new_s=round(ingest_s + build_s, 1), refresh_over_full_rebuild_new=round(refresh_s / (ingest_s + build_s), 4))
        shutil.rmtree(scratch, ignore_errors=True)
    log(json.dumps(result, default=str))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("yc", "synthetic"), required=True)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rebuild-new", action="store_true", help="also rebuild the new synthetic export from scratch")
    parser.add_argument("--prefill", action="store_true",
                        help="stand-in vectors for the base snapshot (no model time for the base build); the refresh "
                             "still embeds its new and changed profiles with the real model")
    parser.add_argument("--work", type=Path, default=OUT / "refresh-work")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    result = bench_yc(args.work) if args.part == "yc" else bench_synthetic(args.work, args.n, args.rebuild_new, args.prefill)
    payload = {"started": started, "machine": machine(), "result": result}
    (OUT / f"refresh-{args.part}.json").write_text(json.dumps(payload, indent=2, default=str))
    print(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
