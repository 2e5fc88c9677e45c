"""Tokenization cost per 1,000 profiles: Chinese (jieba + character bigrams, boilerplate removed)
against English (stemming), the same tokenizer the lexical index builds with.

    python benchmarks/bench_tokenize.py [--n 1000] [--repeats 5]

Chinese profiles: the real A-share set in ../shared/datasets/cn-listed/ (企业名称。经营范围。主营业务);
English: the real YC 2024-05-11 snapshot (name. short and long description). Skips when ../shared
is absent. Prints ms per 1,000 profiles (best of the repeats, one thread) and the ratio to English.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT / ".." / "shared" / "datasets"
CN = SHARED / "cn-listed" / "cn-listed-companies-2025-10-25.csv"
YC = SHARED / "yc" / "yc-companies-2024-05-11.csv"


def texts(n: int) -> dict[str, list[str]]:
    cn = pd.read_csv(CN, dtype=str, keep_default_na=False).head(n)
    yc = pd.read_csv(YC, dtype=str, keep_default_na=False).head(n)
    return {
        "Chinese (cn-listed)": (cn["企业名称"] + "。" + cn["经营范围"] + "。" + cn["主营业务"]).tolist(),
        "English (YC)": (yc["company_name"] + ". " + yc["short_description"] + " " + yc["long_description"]).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="profiles per language (default 1000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the best is reported (default 5)")
    args = parser.parse_args()
    if not (CN.is_file() and YC.is_file()):
        print(f"skipped: {CN} or {YC} not found (../shared is not beside the project)")
        return
    from matcher.lexical import tokenize

    tokenize(["预热 jieba 词典 warm-up"])  # the dictionary loads once per process, not per profile
    results = {}
    for name, batch in texts(args.n).items():
        best = min(_timed(tokenize, batch) for _ in range(args.repeats))
        chars = sum(map(len, batch)) / len(batch)
        results[name] = {"ms_per_1000": round(best / len(batch) * 1000 * 1000, 1), "mean_chars": round(chars)}
    english = results["English (YC)"]["ms_per_1000"]
    for r in results.values():
        r["vs_english"] = round(r["ms_per_1000"] / english, 2)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), platform.processor())
    import jieba

    print(json.dumps({"machine": model, "python": platform.python_version(), "jieba": jieba.__version__,
                      "profiles": args.n, "results": results}, ensure_ascii=False, indent=2))


def _timed(fn, batch) -> float:
    started = time.perf_counter()
    fn(batch)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
