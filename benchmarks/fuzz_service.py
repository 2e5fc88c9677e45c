"""A longer schema-based fuzz run of the HTTP API than the test suite's.

Runs ``tests/service/test_fuzz.py`` (schemathesis over ASGI against ``/openapi.json``, positive and
negative cases, with generated and real ids, a real admin key; checks: no 5xx, documented status
codes and content types, bodies that match the documented schemas) with a larger example budget
per operation and, unless ``--seed 0``, a random seed (printed, so a failure can be replayed with
``--seed``). On SQLite and, when reachable, PostgreSQL.

    python benchmarks/fuzz_service.py                      # 200 examples per operation and mode mix
    python benchmarks/fuzz_service.py --examples 1000 --backend sqlite
    python benchmarks/fuzz_service.py --seed 12345         # replay a run

Writes the pytest report to ``benchmarks/out/fuzz_service.txt``; the exit code is pytest's.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_FILE = REPO / "benchmarks" / "out" / "fuzz_service.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="hypothesis examples per operation")
    parser.add_argument("--seed", type=int, default=None, help="0: derandomised (as in CI); default: a random seed")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    seed = random.randrange(1, 2**31) if args.seed is None else args.seed
    env = {**os.environ, "FUZZ_MAX_EXAMPLES": str(args.examples), "FUZZ_SEED": str(seed), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pytest", "tests/service/test_fuzz.py", "-q", "-p", "no:cacheprovider",
               "--durations=5"]
    if args.backend != "both":
        command += ["-k", args.backend]
    if seed:
        command += [f"--hypothesis-seed={seed}"]
    print(f"fuzzing with {args.examples} examples per operation, seed {seed}, backend {args.backend}", flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    report = result.stdout + result.stderr
    OUT_FILE.parent.mkdir(exist_ok=True)
    OUT_FILE.write_text(f"examples={args.examples} seed={seed} backend={args.backend} "
                        f"seconds={time.perf_counter() - started:.0f} exit={result.returncode}\n\n{report}")
    print(report[-6000:])
    print(f"{'passed' if result.returncode == 0 else 'FAILED'} in {time.perf_counter() - started:.0f} s; report in {OUT_FILE}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
